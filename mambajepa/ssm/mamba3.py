"""Mamba-3 layer (Lahoti et al., 2026): exponential-trapezoidal SSM with a rotating state.

Parameter names, shapes and the ``in_proj`` split order are those of
``mamba_ssm.modules.mamba3.Mamba3``, so its state dicts load with ``strict=True``. The equations
are those of ``specs/mamba3.md``: data-dependent decay ``A``, step ``dt`` and trapezoid weight
``lambda``; keys/queries from RMS-normed ``B``/``C`` plus per-head biases, rotated by a cumulative
data-dependent angle; SISO or MIMO (rank ``R``); no short convolution.

Dimension legend:
    B  batch        L  sequence length    D  d_model        E  d_inner = expand * d_model
    H  heads        P  headdim            N  d_state        G  ngroups (B/C heads)
    R  MIMO rank    S  rotation angles

The scans themselves live in :mod:`mambajepa.ssm.mamba3_scan`; ``impl`` picks one through
:func:`mambajepa.ssm.dispatch.resolve_impl` (``fused`` runs the chunked form: the ``mamba_ssm``
Mamba-3 kernels are not wired here).

Everything after ``in_proj`` runs in the compute dtype ``promote(input dtype, fp32)``: fp32 for
fp32, bf16 and fp16 inputs, fp64 for fp64 ones; the output has the input's dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.ssm.dispatch import resolve_impl
from mambajepa.ssm.mamba3_scan import ScanState, mamba3_scan_chunked, mamba3_scan_ref
from mambajepa.ssm.norm import RMSNorm, RMSNormGated


@dataclass
class Mamba3State:
    """Recurrent state of one :class:`Mamba3` layer (the ``mamba_ssm`` inference-cache layout).

    Attributes (``angle``, ``ssm`` and ``k_prev`` in the compute dtype, fp32 or fp64):
        angle: ``(B, H, S)`` cumulative rotation angle, wrapped to [0, 2pi).
        ssm: ``(B, H, P, N)`` SSM state ``h``.
        k_prev: ``(B, R, H, N)`` rotated key of the last position (R = 1 for SISO).
        v_prev: ``(B, H, P)`` input ``x`` of the last position (per-rank values are
            ``x * mimo_x``, so one copy serves every rank).
    """

    angle: torch.Tensor
    ssm: torch.Tensor
    k_prev: torch.Tensor
    v_prev: torch.Tensor


def heavy_tail(a: torch.Tensor) -> torch.Tensor:
    """``1 + a`` for ``a >= 0`` and ``1 / (1 - a)`` for ``a < 0``: positive, smooth at 0.

    Each branch sees its input clamped to its own side of 0, so the branch that is not taken
    stays finite and sends no ``inf * 0 = nan`` into the gradient.
    """
    return torch.where(a >= 0, 1.0 + a.clamp(min=0.0), 1.0 / (1.0 - a.clamp(max=0.0)))


class Mamba3(nn.Module):
    """Mamba-3 mixer: ``(B, L, D) -> (B, L, D)``, streamable, with ``ref``/``chunked`` scans.

    Args:
        d_model: model width ``D``.
        d_state: state size ``N`` per head.
        expand: ``d_inner = expand * d_model``.
        headdim: head dim ``P``; ``d_inner`` must be a multiple of it.
        ngroups: heads of ``B``/``C`` (``G``), broadcast to the ``H`` heads; must divide ``H``.
        rope_fraction: fraction of ``N`` that is rotated, 0.5 or 1.0.
        dt_min, dt_max, dt_init_floor: range of the initial step sizes behind ``dt_bias``.
        A_floor: the decay rate is at least this (``A <= -A_floor``).
        is_outproj_norm: gated RMSNorm (group ``P``) on the output instead of a plain gate.
        is_mimo: multi-input multi-output state update of rank ``mimo_rank``.
        mimo_rank: ``R`` when ``is_mimo`` (otherwise 1).
        chunk_size: chunk length of the chunked scan.
        trapezoidal_alpha: a fixed trapezoid weight ``lambda`` in [0, 1] for every position (1:
            exponential Euler on the current input alone, 0.5: the trapezoid rule); None: the data-dependent
            ``sigmoid(in_proj)`` of Mamba-3. ``in_proj`` keeps its ``trap`` rows either way, so
            state dicts load in both modes.
        layer_idx: index of the layer in a stack (kept for callers that key caches by it).
        device, dtype: factory arguments of the projections and norms.
        impl: ``"auto"``, ``"ref"``, ``"chunked"`` or ``"fused"`` (see the dispatch module).

    Raises:
        ConfigError: sizes that do not fit together.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 128,
        expand: int = 2,
        headdim: int = 64,
        ngroups: int = 1,
        rope_fraction: float = 0.5,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        A_floor: float = 1e-4,
        is_outproj_norm: bool = False,
        is_mimo: bool = False,
        mimo_rank: int = 4,
        chunk_size: int = 64,
        trapezoidal_alpha: float | None = None,
        layer_idx: int | None = None,
        device=None,
        dtype=None,
        impl: str = "auto",
    ):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.d_state = d_state
        self.expand = expand
        self.headdim = headdim
        self.d_inner = int(expand * d_model)
        self.ngroups = ngroups
        self.rope_fraction = rope_fraction
        self.A_floor = A_floor
        self.is_outproj_norm = is_outproj_norm
        self.is_mimo = is_mimo
        self.mimo_rank = mimo_rank if is_mimo else 1
        self.chunk_size = chunk_size
        if trapezoidal_alpha is not None and not 0.0 <= trapezoidal_alpha <= 1.0:
            raise ConfigError(f"trapezoidal_alpha={trapezoidal_alpha} must lie in [0, 1] (or be None)")
        self.trapezoidal_alpha = trapezoidal_alpha
        self.layer_idx = layer_idx
        self.impl = impl
        if self.d_inner % headdim:
            raise ConfigError(
                f"d_inner={self.d_inner} (expand*d_model) is not a multiple of headdim={headdim}"
            )
        self.nheads = self.d_inner // headdim
        if ngroups < 1 or self.nheads % ngroups:
            raise ConfigError(f"ngroups={ngroups} must divide the number of heads {self.nheads}")
        if rope_fraction not in (0.5, 1.0):
            raise ConfigError(f"rope_fraction={rope_fraction} is not one of (0.5, 1.0)")
        if self.mimo_rank < 1:
            raise ConfigError(f"mimo_rank={mimo_rank} must be >= 1")
        if chunk_size < 1:
            raise ConfigError(f"chunk_size={chunk_size} must be >= 1")
        split = int(d_state * rope_fraction)
        split -= split % 2
        self.num_rope_angles = split // 2
        if self.num_rope_angles < 1:
            raise ConfigError(
                f"d_state={d_state} with rope_fraction={rope_fraction} leaves no angle to rotate"
            )

        H, R, G, N = self.nheads, self.mimo_rank, ngroups, d_state
        # in_proj order: [z, x, B, C, dd_dt, dd_A, trap, angle]
        self.split_sizes = [self.d_inner, self.d_inner, R * G * N, R * G * N, H, H, H, self.num_rope_angles]
        self.in_proj = nn.Linear(d_model, sum(self.split_sizes), bias=False, **factory)

        # dt_bias, B/C biases, MIMO weights and D: fp32 for low-precision layers like mamba_ssm,
        # fp64 for fp64 ones
        wide_dtype = torch.promote_types(dtype or torch.get_default_dtype(), torch.float32)
        wide = {"device": device, "dtype": wide_dtype}
        # dt_bias = softplus^{-1}(dt), dt log-uniform in [dt_min, dt_max]
        log_dt = torch.rand(H, device=device) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        dt = torch.exp(log_dt).clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter((dt + torch.log(-torch.expm1(-dt))).to(wide_dtype))
        self.B_bias = nn.Parameter(torch.ones(H, R, N, **wide))
        self.C_bias = nn.Parameter(torch.ones(H, R, N, **wide))
        self.B_norm = RMSNorm(N, eps=1e-5, **factory)
        self.C_norm = RMSNorm(N, eps=1e-5, **factory)
        if is_mimo:
            self.mimo_x = nn.Parameter(torch.full((H, R, headdim), 1.0 / R, **wide))
            self.mimo_z = nn.Parameter(torch.ones(H, R, headdim, **wide))
            self.mimo_o = nn.Parameter(torch.full((H, R, headdim), 1.0 / R, **wide))
        self.D = nn.Parameter(torch.ones(H, **wide))
        if is_outproj_norm:
            self.norm = RMSNormGated(
                self.d_inner, eps=1e-5, group_size=headdim, norm_before_gate=True, **factory
            )
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False, **factory)
        for name in ("dt_bias", "D", "B_bias", "C_bias", "mimo_x", "mimo_z", "mimo_o"):
            if hasattr(self, name):
                getattr(self, name)._no_weight_decay = True

    # ------------------------------------------------------------------ state

    def init_state(self, batch_size: int, device=None, dtype=None) -> Mamba3State:
        """A zero state for ``batch_size`` sequences.

        Args:
            batch_size: ``B``.
            device: defaults to the parameters' device.
            dtype: dtype of ``v_prev`` (a copy of the input); defaults to the parameters' dtype.
                The other fields are in ``promote(dtype, fp32)``.

        Returns:
            A :class:`Mamba3State` of zeros.
        """
        device = self.in_proj.weight.device if device is None else device
        dtype = self.in_proj.weight.dtype if dtype is None else dtype
        H, P, N, R, S = self.nheads, self.headdim, self.d_state, self.mimo_rank, self.num_rope_angles
        compute = {"device": device, "dtype": torch.promote_types(dtype, torch.float32)}
        return Mamba3State(
            angle=torch.zeros(batch_size, H, S, **compute),
            ssm=torch.zeros(batch_size, H, P, N, **compute),
            k_prev=torch.zeros(batch_size, R, H, N, **compute),
            v_prev=torch.zeros(batch_size, H, P, device=device, dtype=dtype),
        )

    def _check_state(self, state: Mamba3State, batch: int) -> None:
        H, P, N, R, S = self.nheads, self.headdim, self.d_state, self.mimo_rank, self.num_rope_angles
        expected = {
            "angle": (batch, H, S),
            "ssm": (batch, H, P, N),
            "k_prev": (batch, R, H, N),
            "v_prev": (batch, H, P),
        }
        for name, shape in expected.items():
            got = tuple(getattr(state, name).shape)
            if got != shape:
                raise ShapeError(f"Mamba3State.{name} has shape {got}, expected {shape}")

    # ------------------------------------------------------------------ forward

    def _rank_weights(self, name: str) -> torch.Tensor | None:
        """``mimo_x``/``mimo_z``/``mimo_o`` as ``(R, H, P)``, or None for SISO."""
        return getattr(self, name).transpose(0, 1) if self.is_mimo else None

    def _scan_inputs(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """Project ``u (B, L, D)`` and derive the per-position scan inputs (compute dtype except
        ``z``/``x``, which keep the projection's dtype)."""
        H, P, N, G, R = self.nheads, self.headdim, self.d_state, self.ngroups, self.mimo_rank
        cdt = torch.promote_types(u.dtype, torch.float32)
        z, x, b, c, dd_dt, dd_a, trap, ang = self.in_proj(u).split(self.split_sizes, dim=-1)
        x = x.unflatten(-1, (H, P))  # (B, L, H, P)
        z = z.unflatten(-1, (H, P))  # (B, L, H, P)

        A = torch.clamp(-heavy_tail(dd_a.to(cdt)), max=-self.A_floor)  # (B, L, H)
        dt = F.softplus(dd_dt.to(cdt) + self.dt_bias.to(cdt))  # (B, L, H)
        if self.trapezoidal_alpha is None:
            lam = torch.sigmoid(trap.to(cdt))  # (B, L, H)
        else:
            lam = torch.full_like(dt, self.trapezoidal_alpha)  # (B, L, H)
        dtheta = dt[..., None] * math.pi * torch.tanh(ang.to(cdt))[:, :, None, :]  # (B, L, H, S)

        def heads(proj: torch.Tensor, norm: RMSNorm, bias: torch.Tensor) -> torch.Tensor:
            normed = norm(proj.unflatten(-1, (R, G, N))).to(cdt)  # (B, L, R, G, N)
            bias = bias.to(cdt).transpose(0, 1).unflatten(1, (G, H // G))  # (H, R, N) -> (R, G, H/G, N)
            # head h reads group h // (H/G)
            return (normed[:, :, :, :, None] + bias).flatten(3, 4)  # (B, L, R, H, N)

        k = heads(b, self.B_norm, self.B_bias)
        q = heads(c, self.C_norm, self.C_bias)
        mimo_x = self._rank_weights("mimo_x")
        v = x.to(cdt)[:, :, None]  # (B, L, 1, H, P)
        if mimo_x is not None:
            v = v * mimo_x.to(cdt)  # (B, L, R, H, P)
        return {"x": x, "z": z, "q": q, "k": k, "v": v, "adt": dt * A, "dt": dt, "lam": lam, "dtheta": dtheta}

    def _output(self, y: torch.Tensor, v: torch.Tensor, z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Skip, gate (or gated norm), rank mix and ``out_proj``: ``y (B, L, R, H, P) -> (B, L, D)``;
        ``y`` and ``v`` are in the compute dtype, the result in ``dtype``."""
        cdt = y.dtype
        y = torch.addcmul(y, v, self.D.to(cdt)[:, None])  # + D v
        mimo_z, mimo_o = self._rank_weights("mimo_z"), self._rank_weights("mimo_o")
        z = z.to(cdt)[:, :, None]  # (B, L, 1, H, P)
        if mimo_z is not None:
            z = z * mimo_z.to(cdt)  # (B, L, R, H, P)
        if self.is_outproj_norm:
            gated = self.norm(y.flatten(-2), z.expand_as(y).flatten(-2))  # (B, L, R, E), per-head groups
            y = gated.unflatten(-1, (self.nheads, self.headdim))  # (B, L, R, H, P)
        else:
            y = y * F.silu(z)
        y = y[:, :, 0] if mimo_o is None else (y * mimo_o.to(cdt)).sum(dim=2)  # (B, L, H, P)
        return self.out_proj(y.flatten(-2).to(dtype))

    def forward(
        self, u: torch.Tensor, state: Mamba3State | None = None, return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, Mamba3State]:
        """Run the layer over a sequence, optionally continuing from a state.

        Args:
            u: ``(B, L, D)`` input.
            state: state after the previous piece of the same sequences (zeros if None).
            return_state: also return the state after the last position.

        Returns:
            ``(B, L, D)`` output, and the new :class:`Mamba3State` when ``return_state``.

        Raises:
            ShapeError: ``u`` is not ``(B, L, d_model)`` with ``L >= 1``, or ``state`` does not fit.
        """
        if u.dim() != 3 or u.shape[-1] != self.d_model or u.shape[1] < 1:
            raise ShapeError(f"Mamba3 input has shape {tuple(u.shape)}, expected (B, L>=1, {self.d_model})")
        impl = resolve_impl(self.impl, u.device, u.dtype)
        out, new_state = self._run(u, state, impl)
        return (out, new_state) if return_state else out

    def step(self, u_t: torch.Tensor, state: Mamba3State) -> tuple[torch.Tensor, Mamba3State]:
        """Advance one position in O(1): ``(B, D) -> (B, D)``.

        Args:
            u_t: ``(B, D)`` input at the next position.
            state: state after the previous position (``init_state`` for the first).

        Returns:
            ``(B, D)`` output and the updated state (a new object; ``state`` is not modified).

        Raises:
            ShapeError: ``u_t`` is not ``(B, d_model)`` or ``state`` does not fit.
        """
        if u_t.dim() != 2 or u_t.shape[-1] != self.d_model:
            raise ShapeError(f"Mamba3.step input has shape {tuple(u_t.shape)}, expected (B, {self.d_model})")
        out, new_state = self._run(u_t[:, None], state, "ref")
        return out[:, 0], new_state

    def _run(self, u: torch.Tensor, state: Mamba3State | None, impl: str) -> tuple[torch.Tensor, Mamba3State]:
        batch = u.shape[0]
        if state is None:
            state = self.init_state(batch, device=u.device, dtype=u.dtype)
        self._check_state(state, batch)
        inputs = self._scan_inputs(u)
        mimo_x = self._rank_weights("mimo_x")
        cdt = inputs["v"].dtype
        v_prev = state.v_prev.to(cdt)[:, None]  # (B, 1, H, P)
        if mimo_x is not None:
            v_prev = v_prev * mimo_x.to(cdt)  # (B, R, H, P)
        scan_state = ScanState(state.angle, state.ssm, state.k_prev, v_prev)
        args = [inputs[name] for name in ("q", "k", "v", "adt", "dt", "lam", "dtheta")]
        if impl == "ref":
            y, final = mamba3_scan_ref(*args, scan_state)
        else:  # "chunked", and "fused" which has no Mamba-3 kernel here
            y, final = mamba3_scan_chunked(*args, scan_state, chunk_size=self.chunk_size)
        out = self._output(y, inputs["v"], inputs["z"], u.dtype)
        new_state = Mamba3State(final.angle, final.ssm, final.k_prev, inputs["x"][:, -1].clone())
        return out, new_state

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, d_state={self.d_state}, heads={self.nheads}x{self.headdim}, "
            f"ngroups={self.ngroups}, rope_angles={self.num_rope_angles}, mimo_rank={self.mimo_rank}, "
            f"outproj_norm={self.is_outproj_norm}, chunk_size={self.chunk_size}, impl={self.impl!r}"
        )
