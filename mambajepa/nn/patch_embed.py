"""Tubelet (3-D patch) embedding of videos with a ``Conv3d`` whose kernel equals its stride.

With ``keep_indices`` only the kept tubelets are embedded: the clip is cut into flat tubelets,
the kept ones are gathered and multiplied by the flattened kernel. This gives the same values as
the convolution followed by a gather, but pixels of dropped tubelets are never read.

Dimension legend:
    B batch, C channels, T frames, H height, W width, t/p tubelet depth / patch side,
    gt/gh/gw token grid (T/t, H/p, W/p), N = gt·gh·gw tokens, K kept tokens, D embedding width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.errors import ShapeError


class PatchEmbed3D(nn.Module):
    """``(B, C, T, H, W) -> (B, N, D)`` tokens in frame-major, row, column order.

    Args:
        in_chans: input channels C.
        embed_dim: token width D.
        patch_size: spatial side p of a tubelet.
        tubelet_size: temporal depth t of a tubelet (1 makes it a per-frame patch embedding).
    """

    def __init__(
        self, in_chans: int, embed_dim: int, patch_size: int, tubelet_size: int = 1, device=None, dtype=None
    ):
        super().__init__()
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(
            in_chans, embed_dim, kernel_size=kernel, stride=kernel, device=device, dtype=dtype
        )

    def grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Token grid ``(gt, gh, gw)`` of a ``frames × height × width`` clip.

        Raises:
            ShapeError: if a side is not a multiple of the tubelet.
        """
        t, p = self.tubelet_size, self.patch_size
        if frames % t or height % p or width % p or min(frames, height, width) <= 0:
            raise ShapeError(
                f"clip of {frames} frames × {height} × {width} px is not a whole number of "
                f"{t}×{p}×{p} tubelets"
            )
        return frames // t, height // p, width // p

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """Cut ``(B, C, T, H, W)`` into flat tubelets ``(B, N, C·t·p·p)`` in the kernel's layout."""
        B, C, T, H, W = x.shape
        gt, gh, gw = self.grid(T, H, W)
        t, p = self.tubelet_size, self.patch_size
        x = x.reshape(B, C, gt, t, gh, p, gw, p)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, gt, gh, gw, C, t, p, p)
        return x.reshape(B, gt * gh * gw, C * t * p * p)  # (B, N, C·t·p·p)

    def forward(self, x: torch.Tensor, keep_indices: torch.Tensor | None = None) -> torch.Tensor:
        """Embed all tubelets, or only those listed in ``keep_indices``.

        Args:
            x: ``(B, C, T, H, W)``.
            keep_indices: optional ``(B, K)`` int64 token ids into the grid.

        Returns:
            ``(B, N, D)``, or ``(B, K, D)`` in the order of ``keep_indices``.

        Raises:
            ShapeError: for a non-5-D input, a wrong channel count, or a clip that is not a whole
                number of tubelets.
        """
        if x.ndim != 5 or x.shape[1] != self.proj.in_channels:
            raise ShapeError(f"expected a (B, {self.proj.in_channels}, T, H, W) clip, got {tuple(x.shape)}")
        x = x.to(self.proj.weight.dtype)
        if keep_indices is None:
            self.grid(*x.shape[2:])
            # (B, D, gt, gh, gw) -> (B, N, D); contiguous, or every residual add and norm after it
            # would keep the transposed layout and copy.
            return self.proj(x).flatten(2).transpose(1, 2).contiguous()
        patches = self.patchify(x)  # (B, N, C·t·p·p)
        index = keep_indices.unsqueeze(-1).expand(-1, -1, patches.shape[-1])  # (B, K, C·t·p·p)
        kept = patches.gather(1, index)  # (B, K, C·t·p·p)
        weight = self.proj.weight.flatten(1)  # (D, C·t·p·p)
        return F.linear(kept, weight, self.proj.bias)  # (B, K, D)
