"""Rotary position embeddings (RoPE) over one, two or three integer axes.

Each axis (e.g. frame, row, column) owns a contiguous slice of ``d`` channels at the start of
every attention head, in axis order; the channels left over after ``A`` slices are not rotated.
Three pairings of frequencies and channels are supported:

* ``"vjepa2"``: the layout of the released V-JEPA 2 weights. The cos/sin tables of an axis are
  its ``d/2`` angles repeated as two concatenated halves, while the rotation pairs adjacent
  channels ``(x[2j], x[2j+1]) -> (-x[2j+1], x[2j])``. Channel ``2j`` therefore turns by angle
  ``(2j) mod d/2`` rather than ``j``; the weights depend on this, so it is kept exactly.
* ``"interleaved"``: the textbook pairing (RoFormer / GPT-J): pair ``j`` turns by angle ``j``.
* ``"half"``: the GPT-NeoX pairing: channel ``j`` is paired with ``j + d/2`` within its axis slice.

Dimension legend:
    B batch (or 1 when the positions are shared), H heads, N tokens, Dh head width,
    A axes, d rotated channels per axis (even), F = d / 2 frequencies per axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

RopeStyle = Literal["vjepa2", "interleaved", "half"]
_STYLES = ("vjepa2", "interleaved", "half")


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """Map adjacent channel pairs ``(a, b) -> (-b, a)`` over the last dimension.

    Args:
        x: ``(..., Dh)`` with Dh even.

    Returns:
        Tensor of the same shape.
    """
    a, b = x.unflatten(-1, (-1, 2)).unbind(-1)  # (..., Dh/2) each
    return torch.stack((-b, a), dim=-1).flatten(-2)


def rotate_halves(x: torch.Tensor, n_axes: int, axis_dim: int) -> torch.Tensor:
    """Within each axis slice of width ``axis_dim`` map halves ``(u, v) -> (-v, u)``.

    Channels after the ``n_axes * axis_dim`` rotated ones are returned as zeros: their sine is
    zero, so what this function puts there never reaches the output.

    Args:
        x: ``(..., Dh)``.
        n_axes: number of axis slices A at the start of the last dimension.
        axis_dim: width d of each slice (even).

    Returns:
        Tensor of the same shape.
    """
    rot = n_axes * axis_dim
    u, v = x[..., :rot].unflatten(-1, (n_axes, 2, axis_dim // 2)).unbind(-2)  # (..., A, F) each
    out = torch.stack((-v, u), dim=-2).flatten(-3)  # (..., A*d)
    if rot < x.shape[-1]:
        out = torch.cat([out, torch.zeros_like(x[..., rot:])], dim=-1)
    return out


@dataclass
class RopeTables:
    """Cosine and sine tables for one set of token positions, ready to rotate q and k.

    Attributes:
        cos: ``(B, 1, N, Dh)``; ones on the channels that are not rotated.
        sin: ``(B, 1, N, Dh)``; zeros on the channels that are not rotated.
        style: the pairing of channels (see the module docstring).
        n_axes: number of position axes A.
        axis_dim: rotated channels per axis d.
    """

    cos: torch.Tensor
    sin: torch.Tensor
    style: RopeStyle
    n_axes: int
    axis_dim: int

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate per-head queries or keys ``x`` of shape ``(..., B, H, N, Dh)``; returns the same shape."""
        if self.style == "half":
            rotated = rotate_halves(x, self.n_axes, self.axis_dim)
        else:
            rotated = rotate_pairs(x)
        return torch.addcmul(x * self.cos.to(x.dtype), rotated, self.sin.to(x.dtype))


class RotaryEmbedding(nn.Module):
    """Builds :class:`RopeTables` from integer (or fractional) token coordinates.

    Args:
        head_dim: per-head width Dh (even).
        n_axes: number of position axes A (1 for sequences, 2 for images, 3 for videos).
        base: frequency base; angle of frequency ``i`` is ``p / base ** (i / F)``.
        style: ``"vjepa2"``, ``"interleaved"`` or ``"half"`` (see the module docstring).

    Raises:
        ValueError: for an odd head width, an unknown style, or fewer than 2 channels per axis.
    """

    def __init__(self, head_dim: int, n_axes: int = 1, base: float = 10000.0, style: RopeStyle = "vjepa2"):
        super().__init__()
        if style not in _STYLES:
            raise ValueError(f"unknown RoPE style {style!r}; expected one of {_STYLES}")
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head width, got {head_dim}")
        axis_dim = 2 * ((head_dim // n_axes) // 2)
        if axis_dim < 2:
            raise ValueError(f"head width {head_dim} leaves no channel pair for each of {n_axes} axes")
        self.head_dim, self.n_axes, self.axis_dim = head_dim, n_axes, axis_dim
        self.base, self.style = base, style
        freqs = axis_dim // 2
        inv_freq = 1.0 / base ** (torch.arange(freqs, dtype=torch.float64) / freqs)
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)  # (F,)

    def forward(self, coords: torch.Tensor) -> RopeTables:
        """Tables for tokens at ``coords``.

        Args:
            coords: ``(N, A)`` positions shared by the batch, or ``(B, N, A)`` per sample.

        Returns:
            :class:`RopeTables` with ``(B or 1, 1, N, Dh)`` cos/sin in float32.

        Raises:
            ValueError: if the last dimension of ``coords`` is not ``n_axes``.
        """
        if coords.shape[-1] != self.n_axes:
            raise ValueError(f"coords must end with {self.n_axes} axes, got shape {tuple(coords.shape)}")
        if coords.ndim == 2:
            coords = coords.unsqueeze(0)  # (1, N, A)
        angles = coords.float().unsqueeze(-1) * self.inv_freq  # (B, N, A, F)
        if self.style == "interleaved":
            angles = angles.repeat_interleave(2, dim=-1)  # (B, N, A, d): f0 f0 f1 f1 ...
        else:
            angles = torch.cat([angles, angles], dim=-1)  # (B, N, A, d): f0 f1 ... f0 f1 ...
        angles = angles.flatten(-2)  # (B, N, A*d)
        cos, sin = angles.cos(), angles.sin()
        rest = self.head_dim - angles.shape[-1]
        if rest:
            cos = torch.cat([cos, cos.new_ones(*cos.shape[:-1], rest)], dim=-1)  # (B, N, Dh)
            sin = torch.cat([sin, sin.new_zeros(*sin.shape[:-1], rest)], dim=-1)
        return RopeTables(cos.unsqueeze(1), sin.unsqueeze(1), self.style, self.n_axes, self.axis_dim)

    def extra_repr(self) -> str:
        return (
            f"head_dim={self.head_dim}, n_axes={self.n_axes}, axis_dim={self.axis_dim}, style={self.style!r}"
        )
