"""RMS normalisations in the ``mamba_ssm`` layout (parameter ``weight``).

Statistics are computed in ``promote(x.dtype, fp32)`` (fp32 for low-precision inputs, fp64 for
fp64 ones) and the result is returned in x's dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """``x / rms(x) * weight`` over the last dimension, computed in ``promote(x.dtype, fp32)``,
    returned in x's dtype."""
    cdt = torch.promote_types(x.dtype, torch.float32)
    xf = x.to(cdt)
    out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        out = out * weight.to(cdt)
    return out.to(x.dtype)


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale (Zhang & Sennrich, 2019)."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class RMSNormGated(nn.Module):
    """RMSNorm gated by ``silu(z)``, statistics over groups of ``group_size`` channels.

    ``norm_before_gate=True``: ``rmsnorm(x) * silu(z)``; otherwise ``rmsnorm(x * silu(z))``
    (the Mamba-2 default). ``group_size=None`` normalises over the whole last dimension.
    """

    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-5,
        group_size: int | None = None,
        norm_before_gate: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.eps = eps
        self.group_size = group_size or hidden_size
        if hidden_size % self.group_size:
            raise ValueError(f"hidden_size={hidden_size} is not a multiple of group_size={self.group_size}")
        self.norm_before_gate = norm_before_gate
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        dtype = x.dtype
        cdt = torch.promote_types(dtype, torch.float32)
        xf = x.to(cdt)
        if z is not None and not self.norm_before_gate:
            xf = xf * F.silu(z.to(cdt))
        grouped = xf.unflatten(-1, (-1, self.group_size))  # (..., groups, group_size)
        grouped = grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + self.eps)
        out = grouped.flatten(-2) * self.weight.to(cdt)
        if z is not None and self.norm_before_gate:
            out = out * F.silu(z.to(cdt))
        return out.to(dtype)

    def extra_repr(self) -> str:
        return (
            f"{self.weight.shape[0]}, group_size={self.group_size}, norm_before_gate={self.norm_before_gate}"
        )
