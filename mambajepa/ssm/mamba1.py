"""Mamba-1 mixer (selective SSM with a causal depthwise conv), ``mamba_ssm`` parameter layout.

Dimensions: ``B`` batch, ``L`` length, ``D`` ``d_model``, ``E`` ``d_inner = expand * d_model``,
``N`` ``d_state``, ``R`` ``dt_rank``, ``K`` ``d_conv``.

Parameters (names and shapes of ``mamba_ssm.modules.mamba_simple.Mamba``): ``in_proj`` D -> 2E
(split ``[x, z]``), ``conv1d`` depthwise over E, ``x_proj`` E -> R + 2N (split ``[dt, B, C]``),
``dt_proj`` R -> E, ``A_log`` (E, N), ``D`` (E,), ``out_proj`` E -> D.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.ssm.conv import causal_conv1d, causal_conv1d_step
from mambajepa.ssm.dispatch import resolve_impl
from mambajepa.ssm.selective_scan import selective_scan


@dataclass
class Mamba1State:
    """Streaming state of a :class:`Mamba1` layer.

    Attributes:
        conv: last ``d_conv`` inputs of the convolution, ``(B, E, K)``.
        ssm: SSM state, ``(B, E, N)`` (fp32, or fp64 for fp64 layers).
    """

    conv: torch.Tensor
    ssm: torch.Tensor


def inverse_softplus_dt(
    n: int, dt_min: float, dt_max: float, dt_init_floor: float, device=None
) -> torch.Tensor:
    """Biases whose softplus is log-uniform in ``[dt_min, dt_max]`` (the Mamba ``dt`` init)."""
    dt = torch.exp(
        torch.rand(n, device=device) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
    ).clamp(min=dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))  # softplus^-1(dt)


def no_weight_decay(*params: nn.Parameter) -> None:
    """Mark parameters that optimisers must not decay (``p._no_weight_decay = True``)."""
    for p in params:
        p._no_weight_decay = True


class Mamba1(nn.Module):
    """Mamba-1 selective state-space mixer (Gu & Dao, 2023).

    Args:
        d_model: model width D.
        d_state: SSM state size N.
        d_conv: width K of the causal depthwise convolution.
        expand: ``d_inner = expand * d_model``.
        dt_rank: rank R of the ``dt`` projection; ``"auto"`` is ``ceil(d_model / 16)``.
        dt_min, dt_max: range of the initial step sizes (log-uniform).
        dt_init: ``"random"`` (uniform ``dt_proj.weight``) or ``"constant"``.
        dt_scale: scale of the ``dt_proj.weight`` init.
        dt_init_floor: lower clamp of the initial step sizes.
        conv_bias: bias in ``conv1d``.
        bias: biases in ``in_proj`` / ``out_proj``.
        use_fast_path: kept for ``mamba_ssm`` compatibility; kernels are chosen by ``impl``.
        layer_idx: index of the layer in its stack (informational).
        impl: ``"auto"`` | ``"ref"`` | ``"chunked"`` | ``"fused"`` (see :mod:`mambajepa.ssm.dispatch`).
        chunk_size: chunk length of the chunked scan; None picks ``~sqrt(L)``.
        device, dtype: factory arguments of the parameters.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        use_fast_path: bool = True,
        layer_idx: int | None = None,
        impl: str = "auto",
        chunk_size: int | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.use_fast_path = use_fast_path
        self.layer_idx = layer_idx
        self.impl = impl
        self.chunk_size = chunk_size
        if dt_init not in ("random", "constant"):
            raise ConfigError(f"dt_init={dt_init!r} is not one of ('random', 'constant')")

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias, **factory)
        # kept so that subclasses (BiMamba) can build a second direction with the same init
        self._ssm_init_args = (dt_init, dt_scale, dt_min, dt_max, dt_init_floor, conv_bias, factory)
        self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D = self._ssm_params(*self._ssm_init_args)
        self.act = nn.SiLU()
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **factory)

    def _ssm_params(self, dt_init, dt_scale, dt_min, dt_max, dt_init_floor, conv_bias, factory):
        """Build one direction's conv, projections, ``A_log`` and ``D`` (shared with BiMamba1)."""
        E, N, R = self.d_inner, self.d_state, self.dt_rank
        conv1d = nn.Conv1d(E, E, self.d_conv, groups=E, padding=self.d_conv - 1, bias=conv_bias, **factory)
        x_proj = nn.Linear(E, R + 2 * N, bias=False, **factory)
        dt_proj = nn.Linear(R, E, bias=True, **factory)
        std = R**-0.5 * dt_scale
        with torch.no_grad():
            if dt_init == "constant":
                nn.init.constant_(dt_proj.weight, std)
            else:
                nn.init.uniform_(dt_proj.weight, -std, std)
            dt_proj.bias.copy_(inverse_softplus_dt(E, dt_min, dt_max, dt_init_floor, factory["device"]))
        dt_proj.bias._no_reinit = True
        # A_log and D: fp32 for low-precision layers like mamba_ssm, fp64 for fp64 ones
        wide_dtype = torch.promote_types(factory["dtype"] or torch.get_default_dtype(), torch.float32)
        wide = {"device": factory["device"], "dtype": wide_dtype}
        A = torch.arange(1, N + 1, **wide).repeat(E, 1)  # (E, N)
        A_log = nn.Parameter(torch.log(A))
        D = nn.Parameter(torch.ones(E, **wide))
        no_weight_decay(A_log, D)
        return conv1d, x_proj, dt_proj, A_log, D

    def init_state(self, batch_size: int, device=None, dtype=None) -> Mamba1State:
        """Zero state for ``batch_size`` sequences (conv in ``dtype``, SSM state in ``promote(dtype, fp32)``)."""
        device = device or self.in_proj.weight.device
        dtype = dtype or self.in_proj.weight.dtype
        cdt = torch.promote_types(dtype, torch.float32)
        return Mamba1State(
            conv=torch.zeros(batch_size, self.d_inner, self.d_conv, device=device, dtype=dtype),
            ssm=torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=cdt),
        )

    def _check_input(self, x: torch.Tensor, ndim: int) -> None:
        if x.ndim != ndim or x.shape[-1] != self.d_model:
            want = "(B, L, d_model)" if ndim == 3 else "(B, d_model)"
            raise ShapeError(
                f"{type(self).__name__} expects {want} with d_model={self.d_model}, got {tuple(x.shape)}"
            )

    def _scan_direction(
        self,
        x: torch.Tensor,
        conv1d: nn.Conv1d,
        x_proj: nn.Linear,
        dt_proj: nn.Linear,
        A_log: torch.Tensor,
        D: torch.Tensor,
        state: Mamba1State | None,
        impl: str,
        channels_last: bool = False,
    ) -> tuple[torch.Tensor, Mamba1State]:
        """conv -> SiLU -> (dt, B, C) -> selective scan -> + D x; no gate.

        Takes x channel-first ``(B, E, L)`` (or ``(B, L, E)`` when ``channels_last``) and returns
        y time-major ``(L, B, E)`` (the scan layout), so that no other transposed copy is made, in
        the compute dtype ``promote(x.dtype, fp32)``.
        """
        cdt = torch.promote_types(x.dtype, torch.float32)
        xc, conv_state = causal_conv1d(
            x,
            conv1d.weight,
            conv1d.bias,
            None if state is None else state.conv,
            activation=None,
            use_kernel=impl == "fused",
            channels_last=channels_last,
        )
        # SiLU after the one transposed copy, so that it and its backward run on contiguous memory
        u = F.silu((xc.transpose(0, 1) if channels_last else xc.permute(2, 0, 1)).contiguous())  # (L, B, E)
        dt, B, C = x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)  # (L, B, .)
        delta = F.softplus(F.linear(dt, dt_proj.weight, dt_proj.bias).to(cdt))  # (L, B, E), bias in the GEMM
        A = -torch.exp(A_log.to(cdt))  # (E, N)
        y, ssm_state = selective_scan(
            u,
            delta,
            A,
            B,
            C,
            None if state is None else state.ssm,
            impl=impl,
            chunk_size=self.chunk_size,
            time_major=True,
        )
        y = torch.addcmul(y.to(cdt), u.to(cdt), D.to(cdt))  # + D u
        return y, Mamba1State(conv_state, ssm_state)

    def _in_proj_parts(
        self, x: torch.Tensor, channels_last: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``in_proj`` as two matmuls: x channel-first ``(B, E, L)`` (``(B, L, E)`` when
        ``channels_last``) and the gate time-major ``(L, B, E)``."""
        w_x, w_z = self.in_proj.weight.chunk(2)
        b_x, b_z = self.in_proj.bias.chunk(2) if self.in_proj.bias is not None else (None, None)
        if channels_last:
            xs = F.linear(x, w_x, b_x)  # (B, L, E)
        else:
            xs = torch.matmul(w_x, x.transpose(1, 2))  # (B, E, L)
            if b_x is not None:
                xs = xs + b_x.unsqueeze(-1)
        z = F.linear(x.transpose(0, 1), w_z, b_z)  # (L, B, E)
        return xs, z

    def forward(
        self, x: torch.Tensor, state: Mamba1State | None = None, return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, Mamba1State]:
        """Mix a sequence, optionally continuing from ``state``.

        Args:
            x: ``(B, L, D)``.
            state: state left by a previous call (or :meth:`init_state`); None starts fresh.
            return_state: also return the state after the last position.

        Returns:
            y ``(B, L, D)``, or ``(y, state)`` when ``return_state``.

        Raises:
            ShapeError: x is not ``(B, L, d_model)``.
        """
        self._check_input(x, 3)
        impl = resolve_impl(self.impl, x.device, x.dtype)
        xs, z = self._in_proj_parts(x, channels_last=True)  # (B, L, E), (L, B, E)
        y, new_state = self._scan_direction(
            xs, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D, state, impl, channels_last=True
        )
        out = self.out_proj((y * F.silu(z.to(y.dtype))).to(x.dtype))  # (L, B, D)
        out = out.transpose(0, 1).contiguous()  # (B, L, D)
        return (out, new_state) if return_state else out

    def _step_direction(
        self, x_t, conv1d, x_proj, dt_proj, A_log, D, state: Mamba1State
    ) -> tuple[torch.Tensor, Mamba1State]:
        cdt = torch.promote_types(x_t.dtype, torch.float32)
        xc, conv_state = causal_conv1d_step(x_t, conv1d.weight, conv1d.bias, state.conv)  # (B, E)
        dt, B, C = x_proj(xc).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(F.linear(dt, dt_proj.weight).to(cdt) + dt_proj.bias.to(cdt))  # (B, E)
        A = -torch.exp(A_log.to(cdt))
        decay = torch.exp(delta.unsqueeze(-1) * A)  # (B, E, N)
        h = decay * state.ssm + (delta * xc.to(cdt)).unsqueeze(-1) * B.to(cdt).unsqueeze(1)
        y = (h * C.to(cdt).unsqueeze(1)).sum(-1) + xc.to(cdt) * D.to(cdt)  # (B, E)
        return y, Mamba1State(conv_state, h)

    def step(self, x_t: torch.Tensor, state: Mamba1State) -> tuple[torch.Tensor, Mamba1State]:
        """Advance one position in O(1) time and memory.

        Args:
            x_t: ``(B, D)``.
            state: current state.

        Returns:
            ``(y_t, new_state)`` with y_t ``(B, D)``.

        Raises:
            ShapeError: x_t is not ``(B, d_model)``.
        """
        self._check_input(x_t, 2)
        xs, z = self.in_proj(x_t).chunk(2, dim=-1)
        y, new_state = self._step_direction(
            xs, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D, state
        )
        return self.out_proj((y * F.silu(z.to(y.dtype))).to(x_t.dtype)), new_state
