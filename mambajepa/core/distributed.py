"""Collectives that layers below the trainer may use (no-ops in a single process)."""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["is_distributed", "world_size", "rank", "gather_no_grad", "gather_with_grad"]


def is_distributed() -> bool:
    """Whether a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Ranks in the default process group (1 without one)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` of every rank along dim 0, in rank order, keeping gradients.

    The backward pass sends each rank the gradient of its own slice
    (:func:`torch.distributed.nn.functional.all_gather`), so a loss over the gathered rows trains
    every rank's encoder, as CLIP-style contrastive losses with cross-rank negatives need.

    Args:
        x: ``(B, ...)``, the same shape on every rank.

    Returns:
        ``(world_size * B, ...)``; ``x`` itself in a single process.
    """
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` of every rank along dim 0, in rank order, without gradients (labels, ids).

    Args:
        x: ``(B, ...)``, the same shape on every rank.

    Returns:
        ``(world_size * B, ...)``; ``x`` itself in a single process.
    """
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)
