"""Token grids: ids to coordinates, and fixed sine-cosine absolute position embeddings.

Tokens of a ``(gt, gh, gw)`` grid are numbered frame-major, then row, then column:
``id = (frame * gh + row) * gw + col`` (the order of ``Conv3d(...).flatten(2)``).

Dimension legend:
    N tokens, A axes of the grid, D embedding width.
"""

from __future__ import annotations

import torch


def grid_coords(ids: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """Coordinates of token ``ids`` on a row-major grid.

    Args:
        ids: integer tensor of any shape ``(...)`` with values in ``[0, prod(grid))``.
        grid: grid extent per axis, slowest axis first, e.g. ``(gt, gh, gw)``.

    Returns:
        int64 tensor ``(..., A)``; for a 3-axis grid the columns are (frame, row, col).
    """
    coords = []
    rest = ids.long()
    for extent in reversed(grid):
        coords.append(rest % extent)
        rest = rest // extent
    return torch.stack(coords[::-1], dim=-1)


def grid_ids(grid: tuple[int, ...], device=None) -> torch.Tensor:
    """All token ids of a grid in order.

    Args:
        grid: extent per axis.
        device: device of the result.

    Returns:
        ``(N,)`` int64 with ``N = prod(grid)``.
    """
    n = 1
    for extent in grid:
        n *= extent
    return torch.arange(n, device=device)


def sincos_embedding(coords: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Fixed sine-cosine embedding of multi-axis coordinates (Vaswani et al., 2017; MAE for 2-D).

    Each of the A axes gets ``w = 2 * ((dim // A) // 2)`` channels laid out ``[sin(p ω), cos(p ω)]``
    with ``ω_i = base ** (-i / (w/2))``; channels left over are zero.

    Args:
        coords: ``(..., A)`` positions.
        dim: embedding width D.
        base: frequency base.

    Returns:
        float32 tensor ``(..., D)``.
    """
    n_axes = coords.shape[-1]
    width = 2 * ((dim // n_axes) // 2)
    freqs = width // 2
    omega = base ** (-torch.arange(freqs, dtype=torch.float32, device=coords.device) / max(freqs, 1))
    angles = coords.float().unsqueeze(-1) * omega  # (..., A, F)
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # (..., A*w)
    if emb.shape[-1] < dim:
        emb = torch.cat([emb, emb.new_zeros(*emb.shape[:-1], dim - emb.shape[-1])], dim=-1)
    return emb
