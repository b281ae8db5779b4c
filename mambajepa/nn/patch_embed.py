"""Tubelet (3-D patch) embedding of images and videos with a ``Conv3d`` whose kernel equals its stride.

An image ``(B, C, H, W)`` or a one-frame clip is repeated to the tubelet depth, so it becomes one
temporal token. With ``keep_indices`` only the kept tubelets are embedded: the clip is cut into flat tubelets,
the kept ones are gathered and multiplied by the flattened kernel. This gives the same values as
the convolution followed by a gather, but pixels of dropped tubelets are never read.

Dimension legend:
    B batch, C channels, T frames, H height, W width, t/p tubelet depth / patch side,
    gt/gh/gw token grid (T/t, H/p, W/p), N = gt·gh·gw tokens, K kept tokens, D embedding width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.core.errors import ShapeError


def check_keep_indices(keep: torch.Tensor, batch: int, n: int) -> None:
    """Check kept token ids of a masked encoding.

    Args:
        keep: ``(B, K)`` integer ids.
        batch: expected B.
        n: tokens N of the grid; ids must lie in ``[0, N)``.

    Raises:
        ShapeError: naming the dtype and shape, or the range of the ids, that is wrong.
    """
    if keep.ndim != 2 or keep.shape[0] != batch or keep.dtype not in (torch.int32, torch.int64):
        raise ShapeError(
            f"keep_indices must be integer (B={batch}, K), got {keep.dtype} of shape {tuple(keep.shape)}"
        )
    if keep.numel() and (int(keep.min()) < 0 or int(keep.max()) >= n):
        raise ShapeError(
            f"keep_indices must lie in [0, {n}), got range [{int(keep.min())}, {int(keep.max())}]"
        )


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

    def input_grid(self, shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int]:
        """Token grid of an image or video shape.

        Args:
            shape: ``(B, C, H, W)`` (one temporal token) or ``(B, C, T, H, W)`` (T a multiple of the
                tubelet depth, or 1 for a single frame).

        Returns:
            ``(gt, gh, gw)``.

        Raises:
            ShapeError: for another rank or sides that are not whole tubelets.
        """
        if len(shape) == 4:
            return self.grid(self.tubelet_size, shape[2], shape[3])
        if len(shape) == 5:
            frames = self.tubelet_size if shape[2] == 1 else shape[2]
            return self.grid(frames, shape[3], shape[4])
        raise ShapeError(
            f"expected an image (B, C, H, W) or a video (B, C, T, H, W), got shape {tuple(shape)}"
        )

    def as_clip(self, x: torch.Tensor) -> torch.Tensor:
        """An image ``(B, C, H, W)`` or one-frame clip as a clip of one tubelet; other clips unchanged."""
        if x.ndim == 4:
            x = x.unsqueeze(2)  # (B, C, 1, H, W)
        if x.shape[2] == 1 and self.tubelet_size > 1:
            x = x.expand(-1, -1, self.tubelet_size, -1, -1)  # (B, C, t, H, W)
        return x

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """Cut ``(B, C, T, H, W)`` into flat tubelets ``(B, N, C·t·p·p)`` in the kernel's layout."""
        B, C, T, H, W = x.shape
        gt, gh, gw = self.grid(T, H, W)
        t, p = self.tubelet_size, self.patch_size
        x = x.reshape(B, C, gt, t, gh, p, gw, p)  # split each axis into (grid, tubelet)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, gt, gh, gw, C, t, p, p)
        return x.reshape(B, gt * gh * gw, C * t * p * p)  # (B, N, C·t·p·p)

    def forward(self, x: torch.Tensor, keep_indices: torch.Tensor | None = None) -> torch.Tensor:
        """Embed all tubelets, or only those listed in ``keep_indices``.

        Args:
            x: ``(B, C, T, H, W)``.
            keep_indices: optional ``(B, K)`` integer token ids into the grid.

        Returns:
            ``(B, N, D)``, or ``(B, K, D)`` in the order of ``keep_indices``.

        Raises:
            ShapeError: for a non-5-D input, a wrong channel count, a clip that is not a whole
                number of tubelets, or indices that are not integer ``(B, K)`` ids on the grid.
        """
        if x.ndim != 5 or x.shape[1] != self.proj.in_channels:
            raise ShapeError(f"expected a (B, {self.proj.in_channels}, T, H, W) clip, got {tuple(x.shape)}")
        x = x.to(self.proj.weight.dtype)
        n = math.prod(self.grid(*x.shape[2:]))
        if keep_indices is None:
            # (B, D, gt, gh, gw) -> (B, N, D); contiguous, or every residual add and norm after it
            # would keep the transposed layout and copy.
            return self.proj(x).flatten(2).transpose(1, 2).contiguous()
        check_keep_indices(keep_indices, x.shape[0], n)
        patches = self.patchify(x)  # (B, N, C·t·p·p)
        index = keep_indices.long().unsqueeze(-1).expand(-1, -1, patches.shape[-1])  # (B, K, C·t·p·p)
        kept = patches.gather(1, index)  # (B, K, C·t·p·p)
        weight = self.proj.weight.flatten(1)  # (D, C·t·p·p)
        return F.linear(kept, weight, self.proj.bias)  # (B, K, D)
