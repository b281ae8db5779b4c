"""Mamba-2 mixer (SSD: scalar decay per head, grouped B/C, gated RMSNorm), ``mamba_ssm`` layout.

Dimensions: ``B`` batch, ``L`` length, ``D`` ``d_model``, ``E`` ``d_inner = expand * d_model``,
``S`` ``d_ssm`` (channels through the SSM, default E), ``H = S / headdim`` heads, ``P`` headdim,
``G`` ngroups, ``N`` d_state, ``K`` d_conv, ``M = (E - S)`` channels of the optional gated MLP.

Parameters (names and shapes of ``mamba_ssm.modules.mamba2.Mamba2``): ``in_proj`` D -> 2E + 2GN + H,
split ``[z0 (M), x0 (M), z (S), xBC (S + 2GN), dt (H)]``; ``conv1d`` depthwise over ``S + 2GN``
channels (split ``[x, B, C]`` after it); ``dt_bias`` (H,); ``A_log`` (H,); ``D`` (H,) or (S,);
``norm.weight`` (S,); ``out_proj`` E -> D.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.ssm.conv import causal_conv1d, causal_conv1d_step
from mambajepa.ssm.dispatch import resolve_impl
from mambajepa.ssm.mamba1 import inverse_softplus_dt, no_weight_decay
from mambajepa.ssm.norm import RMSNormGated
from mambajepa.ssm.ssd import ssd_scan

# The PyTorch chunked form is fastest with chunks of at most this length (the attention-like
# intra-chunk product grows with T^2); the result does not depend on the chunk length.
CHUNKED_MAX_CHUNK = 64


class _GatedRMSNorm(torch.autograd.Function):
    """``rmsnorm(y * silu(z)) * weight`` over groups of channels, with a hand-written backward.

    Same result as :class:`~mambajepa.ssm.norm.RMSNormGated` with ``norm_before_gate=False``,
    in fewer passes over ``(..., S)``: the row statistics are one batched dot product and the
    backward reuses the normalised activations instead of replaying every element-wise step.
    """

    @staticmethod
    def forward(ctx, y, z, weight, group_size, eps):
        # y, z: (R, S) fp32 rows; weight: (S,)
        gated = y * F.silu(z)  # (R, S)
        grouped = gated.view(gated.shape[0], -1, group_size)  # (R, G, gs)
        sq = torch.matmul(grouped.unsqueeze(-2), grouped.unsqueeze(-1)).squeeze(-1)  # (R, G, 1)
        rstd = torch.rsqrt(sq / group_size + eps)  # (R, G, 1)
        normed = (grouped * rstd).view_as(gated)  # (R, S)
        ctx.save_for_backward(y, z, weight, normed, rstd)
        ctx.group_size = group_size
        return normed * weight

    @staticmethod
    def backward(ctx, grad):
        y, z, weight, normed, rstd = ctx.saved_tensors
        rows, gs = grad.shape[0], ctx.group_size
        grad = grad.contiguous()
        grad_weight = (grad * normed).sum(0)  # (S,)
        gn = (grad * weight).view(rows, -1, gs)  # (R, G, gs)
        n = normed.view(rows, -1, gs)
        dot = torch.matmul(gn.unsqueeze(-2), n.unsqueeze(-1)).squeeze(-1) / gs  # (R, G, 1)
        d_gated = torch.addcmul(gn, n, dot, value=-1.0).mul_(rstd).view_as(grad)  # (R, S)
        grad_y = d_gated * F.silu(z)
        grad_z = torch.ops.aten.silu_backward(d_gated * y, z)
        return grad_y, grad_z, grad_weight, None, None


def gated_rms_norm(y: torch.Tensor, z: torch.Tensor, norm: RMSNormGated) -> torch.Tensor:
    """``norm(y, z)`` for a ``norm_before_gate=False`` :class:`RMSNormGated`, computed by :class:`_GatedRMSNorm`.

    Args:
        y: ``(..., S)`` values.
        z: ``(..., S)`` gate.
        norm: the module whose ``weight``, ``eps`` and ``group_size`` are used.

    Returns:
        ``(..., S)`` in y's dtype.
    """
    shape = y.shape
    cdt = torch.promote_types(y.dtype, torch.float32)  # fp32 statistics (fp64 for fp64 inputs)
    out = _GatedRMSNorm.apply(
        y.to(cdt).reshape(-1, shape[-1]),
        z.to(cdt).reshape(-1, shape[-1]),
        norm.weight.to(cdt),
        norm.group_size,
        norm.eps,
    )
    return out.view(shape).to(y.dtype)


@dataclass
class Mamba2State:
    """Streaming state of a :class:`Mamba2` layer.

    Attributes:
        conv: last ``d_conv`` inputs of the convolution, ``(B, S + 2GN, K)``.
        ssm: SSM state, ``(B, H, P, N)`` (fp32, or fp64 for fp64 layers).
    """

    conv: torch.Tensor
    ssm: torch.Tensor


class Mamba2(nn.Module):
    """Mamba-2 mixer (Dao & Gu, 2024).

    Args:
        d_model: model width D.
        d_state: SSM state size N.
        d_conv: width K of the causal depthwise convolution.
        conv_init: if set, ``conv1d.weight`` is uniform in ``[-conv_init, conv_init]``.
        expand: ``d_inner = expand * d_model``.
        headdim: channels P per head.
        d_ssm: channels through the SSM (None: all of ``d_inner``); the rest forms a gated MLP.
        ngroups: groups G of heads sharing B and C.
        A_init_range: range of the uniform init of ``-A``.
        D_has_hdim: one skip weight per channel instead of per head.
        rmsnorm: gated RMSNorm before ``out_proj`` (else ``y * silu(z)``).
        norm_before_gate: ``norm(y) * silu(z)`` instead of ``norm(y * silu(z))``.
        dt_min, dt_max, dt_init_floor: initial step sizes (log-uniform, clamped).
        dt_limit: clamp range of the step sizes in the forward pass.
        bias: biases in ``in_proj`` / ``out_proj``.
        conv_bias: bias in ``conv1d``.
        chunk_size: chunk length of the fused scan; the PyTorch chunked scan uses at most
            ``CHUNKED_MAX_CHUNK`` (faster on CPU, same result).
        use_mem_eff_path: kept for ``mamba_ssm`` compatibility; kernels are chosen by ``impl``.
        layer_idx: index of the layer in its stack (informational).
        process_group: tensor parallelism is not supported; must be None.
        sequence_parallel: kept for ``mamba_ssm`` compatibility.
        impl: ``"auto"`` | ``"ref"`` | ``"chunked"`` | ``"fused"``.
        device, dtype: factory arguments of the parameters.

    Raises:
        ConfigError: inconsistent sizes or an unsupported option.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 128,
        d_conv: int = 4,
        conv_init: float | None = None,
        expand: int = 2,
        headdim: int = 64,
        d_ssm: int | None = None,
        ngroups: int = 1,
        A_init_range: tuple[float, float] = (1, 16),
        D_has_hdim: bool = False,
        rmsnorm: bool = True,
        norm_before_gate: bool = False,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_limit: tuple[float, float] = (0.0, float("inf")),
        bias: bool = False,
        conv_bias: bool = True,
        chunk_size: int = 256,
        use_mem_eff_path: bool = True,
        layer_idx: int | None = None,
        process_group=None,
        sequence_parallel: bool = True,
        impl: str = "auto",
        device=None,
        dtype=None,
    ):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        if process_group is not None:
            raise ConfigError("process_group: tensor-parallel Mamba2 is not supported; pass None")
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.d_ssm = self.d_inner if d_ssm is None else d_ssm
        self.headdim = headdim
        self.ngroups = ngroups
        if self.d_ssm % headdim:
            raise ConfigError(f"d_ssm={self.d_ssm} is not a multiple of headdim={headdim}")
        self.nheads = self.d_ssm // headdim
        if self.nheads % ngroups:
            raise ConfigError(f"nheads={self.nheads} is not a multiple of ngroups={ngroups}")
        if self.d_ssm > self.d_inner:
            raise ConfigError(f"d_ssm={self.d_ssm} exceeds d_inner={self.d_inner}")
        self.d_mlp = self.d_inner - self.d_ssm
        self.D_has_hdim = D_has_hdim
        self.rmsnorm = rmsnorm
        self.norm_before_gate = norm_before_gate
        self.dt_limit = tuple(dt_limit)
        self.chunk_size = chunk_size
        self.use_mem_eff_path = use_mem_eff_path
        self.layer_idx = layer_idx
        self.sequence_parallel = sequence_parallel
        self.impl = impl

        d_in_proj = 2 * self.d_inner + 2 * ngroups * d_state + self.nheads
        self.in_proj = nn.Linear(d_model, d_in_proj, bias=bias, **factory)
        self.conv_dim = self.d_ssm + 2 * ngroups * d_state
        self.conv1d = nn.Conv1d(
            self.conv_dim,
            self.conv_dim,
            d_conv,
            groups=self.conv_dim,
            padding=d_conv - 1,
            bias=conv_bias,
            **factory,
        )
        if conv_init is not None:
            nn.init.uniform_(self.conv1d.weight, -conv_init, conv_init)
        self.act = nn.SiLU()
        # dt_bias and D: fp32 for low-precision layers like mamba_ssm, fp64 for fp64 ones
        wide_dtype = torch.promote_types(dtype or torch.get_default_dtype(), torch.float32)
        wide = {"device": device, "dtype": wide_dtype}
        dt_bias = inverse_softplus_dt(self.nheads, dt_min, dt_max, dt_init_floor, device)
        self.dt_bias = nn.Parameter(dt_bias.to(wide_dtype))
        lo, hi = A_init_range
        if not 0 < lo <= hi:
            raise ConfigError(f"A_init_range={A_init_range} must satisfy 0 < low <= high")
        A = torch.empty(self.nheads, dtype=torch.float32, device=device).uniform_(lo, hi)
        self.A_log = nn.Parameter(torch.log(A).to(dtype=dtype))
        self.D = nn.Parameter(torch.ones(self.d_ssm if D_has_hdim else self.nheads, **wide))
        no_weight_decay(self.dt_bias, self.A_log, self.D)
        if rmsnorm:
            self.norm = RMSNormGated(
                self.d_ssm,
                eps=1e-5,
                norm_before_gate=norm_before_gate,
                group_size=self.d_ssm // ngroups,
                **factory,
            )
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **factory)

    def init_state(self, batch_size: int, device=None, dtype=None) -> Mamba2State:
        """Zero state for ``batch_size`` sequences (conv in ``dtype``, SSM state in ``promote(dtype, fp32)``)."""
        device = device or self.in_proj.weight.device
        dtype = dtype or self.in_proj.weight.dtype
        cdt = torch.promote_types(dtype, torch.float32)
        return Mamba2State(
            conv=torch.zeros(batch_size, self.conv_dim, self.d_conv, device=device, dtype=dtype),
            ssm=torch.zeros(batch_size, self.nheads, self.headdim, self.d_state, device=device, dtype=cdt),
        )

    def _check_input(self, x: torch.Tensor, ndim: int) -> None:
        if x.ndim != ndim or x.shape[-1] != self.d_model:
            want = "(B, L, d_model)" if ndim == 3 else "(B, d_model)"
            raise ShapeError(f"Mamba2 expects {want} with d_model={self.d_model}, got {tuple(x.shape)}")

    def _in_proj_parts(self, x: torch.Tensor):
        """``in_proj`` of a sequence as one matmul per part, so every part is contiguous.

        Returns ``z0, x0, z, xBC, dt``, each ``(B, L, .)`` and contiguous (no strided element-wise
        ops downstream; the convolution runs channels-last on ``xBC``).
        """
        sizes = [self.d_mlp, self.d_mlp, self.d_ssm, self.conv_dim, self.nheads]
        weights = self.in_proj.weight.split(sizes)
        biases = self.in_proj.bias.split(sizes) if self.in_proj.bias is not None else [None] * len(sizes)
        z0, x0, z, xBC, dt = (F.linear(x, w, b) for w, b in zip(weights, biases))
        return z0, x0, z, xBC, dt

    def _split_in_proj(self, zxbcdt: torch.Tensor):
        """``[z0, x0, z, xBC, dt]`` along the last dimension (the ``mamba_ssm`` order)."""
        return zxbcdt.split([self.d_mlp, self.d_mlp, self.d_ssm, self.conv_dim, self.nheads], dim=-1)

    def _discretise_dt(self, dt: torch.Tensor) -> torch.Tensor:
        """``softplus(dt + dt_bias)``, clamped to ``dt_limit``, in ``promote(dt.dtype, fp32)``."""
        cdt = torch.promote_types(dt.dtype, torch.float32)
        dt = F.softplus(dt.to(cdt) + self.dt_bias.to(cdt))
        if self.dt_limit != (0.0, float("inf")):
            dt = dt.clamp(*self.dt_limit)
        return dt

    def _skip_weight(self, dtype: torch.dtype) -> torch.Tensor:
        """``D`` in ``dtype``, shaped to multiply x ``(..., H, P)``: ``(H, P)`` or ``(H, 1)``."""
        D = self.D.to(dtype)
        return D.view(self.nheads, self.headdim) if self.D_has_hdim else D.unsqueeze(-1)

    def _output(
        self, y: torch.Tensor, z: torch.Tensor, z0: torch.Tensor, x0: torch.Tensor, dtype
    ) -> torch.Tensor:
        """Gate/norm the SSM output ``(..., S)`` (compute dtype), prepend the gated MLP part, project
        out to ``dtype``."""
        cdt = y.dtype
        if self.rmsnorm and not self.norm_before_gate:
            y = gated_rms_norm(y, z, self.norm)
        elif self.rmsnorm:
            y = self.norm(y, z)
        else:
            y = y * F.silu(z.to(cdt))
        if self.d_mlp > 0:
            y = torch.cat([F.silu(z0.to(cdt)) * x0.to(cdt), y], dim=-1)
        return self.out_proj(y.to(dtype))

    def forward(
        self, x: torch.Tensor, state: Mamba2State | None = None, return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, Mamba2State]:
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
        batch, length, _ = x.shape
        cdt = torch.promote_types(x.dtype, torch.float32)
        impl = resolve_impl(self.impl, x.device, x.dtype)
        z0, x0, z, xBC, dt = self._in_proj_parts(x)
        xBC, conv_state = causal_conv1d(
            xBC,
            self.conv1d.weight,
            self.conv1d.bias,
            None if state is None else state.conv,
            activation="silu",
            use_kernel=impl == "fused",
            channels_last=True,
        )  # (B, L, S + 2GN)
        xs, B, C = xBC.split([self.d_ssm, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        xs = xs.reshape(batch, length, self.nheads, self.headdim)  # (B, L, H, P)
        y, ssm_state = ssd_scan(
            xs,
            self._discretise_dt(dt),  # (B, L, H)
            -torch.exp(self.A_log.to(cdt)),
            B.reshape(batch, length, self.ngroups, self.d_state),  # (B, L, G, N)
            C.reshape(batch, length, self.ngroups, self.d_state),
            None if state is None else state.ssm,
            impl=impl,
            chunk_size=self.chunk_size if impl == "fused" else min(self.chunk_size, CHUNKED_MAX_CHUNK),
        )
        y = torch.addcmul(y.to(cdt), xs.to(cdt), self._skip_weight(cdt)).reshape(
            batch, length, self.d_ssm
        )  # + D x
        out = self._output(y, z, z0, x0, x.dtype)
        return (out, Mamba2State(conv_state, ssm_state)) if return_state else out

    def step(self, x_t: torch.Tensor, state: Mamba2State) -> tuple[torch.Tensor, Mamba2State]:
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
        batch = x_t.shape[0]
        cdt = torch.promote_types(x_t.dtype, torch.float32)
        z0, x0, z, xBC, dt = self._split_in_proj(self.in_proj(x_t))
        xBC, conv_state = causal_conv1d_step(xBC, self.conv1d.weight, self.conv1d.bias, state.conv)
        xs, B, C = xBC.split([self.d_ssm, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        xs = xs.to(cdt).view(batch, self.nheads, self.headdim)  # (B, H, P)
        rep = self.nheads // self.ngroups
        B = B.to(cdt).view(batch, self.ngroups, self.d_state).repeat_interleave(rep, dim=1)  # (B, H, N)
        C = C.to(cdt).view(batch, self.ngroups, self.d_state).repeat_interleave(rep, dim=1)
        dt = self._discretise_dt(dt)  # (B, H)
        decay = torch.exp(dt * -torch.exp(self.A_log.to(cdt)))[:, :, None, None]  # (B, H, 1, 1)
        h = decay * state.ssm + (dt.unsqueeze(-1) * xs).unsqueeze(-1) * B.unsqueeze(2)  # (B, H, P, N)
        y = torch.addcmul(torch.einsum("bhpn,bhn->bhp", h, C), xs, self._skip_weight(cdt))
        out = self._output(y.reshape(batch, self.d_ssm), z, z0, x0, x_t.dtype)
        return out, Mamba2State(conv_state, h)
