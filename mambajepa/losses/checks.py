"""Input checks shared by the losses: every mismatch raises a ShapeError naming the shapes."""

from __future__ import annotations

import torch

from mambajepa.core.errors import ShapeError


def check_pair(name: str, a: torch.Tensor, b: torch.Tensor, min_dims: int = 1) -> None:
    """Check that two embeddings have the same shape, at least ``min_dims`` dims and a float dtype.

    Args:
        name: loss name used in the error.
        a: first input.
        b: second input.
        min_dims: fewest dims allowed.

    Raises:
        ShapeError: naming ``name`` and both shapes.
    """
    if a.shape != b.shape:
        raise ShapeError(
            f"{name}: inputs must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.dim() < min_dims:
        raise ShapeError(f"{name}: inputs need at least {min_dims} dims, got shape {tuple(a.shape)}")
    if not (a.is_floating_point() and b.is_floating_point()):
        raise ShapeError(f"{name}: inputs must be floating point, got {a.dtype} and {b.dtype}")
    if a.numel() == 0:
        raise ShapeError(f"{name}: inputs are empty (shape {tuple(a.shape)})")


def flatten_batch(name: str, z: torch.Tensor, min_rows: int = 2) -> torch.Tensor:
    """View ``(..., D)`` embeddings as ``(M, D)`` rows and require ``min_rows`` of them.

    Args:
        name: loss name used in the error.
        z: ``(..., D)`` embeddings.
        min_rows: fewest rows allowed.

    Returns:
        ``(M, D)`` view of ``z``.

    Raises:
        ShapeError: fewer than 2 dims or fewer than ``min_rows`` rows.
    """
    if z.dim() < 2:
        raise ShapeError(f"{name}: expected embeddings of shape (..., N, D), got {tuple(z.shape)}")
    rows = z.reshape(-1, z.shape[-1])  # (M, D)
    if rows.shape[0] < min_rows:
        raise ShapeError(
            f"{name}: needs at least {min_rows} embeddings to estimate statistics, got {tuple(z.shape)}"
        )
    return rows
