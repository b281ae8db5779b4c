"""Collapse statistics of a set of embeddings: per-dimension spread and effective rank.

A collapsed encoder maps every input to (nearly) the same point, or to a low-dimensional
subspace. Two numbers catch both: the mean over dimensions of the per-dimension standard
deviation, and the effective rank of Roy and Vetterli (2007), used as "RankMe" by Garrido et al.
(2023): ``exp(entropy(p))`` with ``p`` the singular values of the centred embeddings normalised
to sum to one. It ranges from 1 (one direction) to ``min(M, D)`` (isotropic).

Dimension legend: ``M`` items, ``D`` feature width.
"""

from __future__ import annotations

import torch

from mambajepa.core.errors import ShapeError

__all__ = ["feature_std", "effective_rank", "is_collapsed"]


def _check(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 2 or x.shape[0] < 2:
        raise ShapeError(f"expected embeddings (M >= 2, D), got {tuple(x.shape)}")
    return x.double()


def feature_std(x: torch.Tensor) -> float:
    """Mean over dimensions of the standard deviation over items.

    Args:
        x: ``(M, D)`` embeddings.

    Returns:
        ``mean_j std_i x[i, j]``; 0 for fully collapsed embeddings.

    Raises:
        ShapeError: not ``(M >= 2, D)``.
    """
    return float(_check(x).std(dim=0).mean())


def effective_rank(x: torch.Tensor, eps: float = 1e-12) -> float:
    """Effective rank ``exp(-sum p log p)`` of the centred embeddings' singular values.

    Args:
        x: ``(M, D)`` embeddings.
        eps: guards the logarithm.

    Returns:
        A value in ``[1, min(M, D)]`` (1 for embeddings without spread).

    Raises:
        ShapeError: not ``(M >= 2, D)``.
    """
    x = _check(x)
    s = torch.linalg.svdvals(x - x.mean(dim=0))  # (min(M, D),)
    total = s.sum()
    if total <= eps:
        return 1.0
    p = s / total
    return float(torch.exp(-(p * (p + eps).log()).sum()))


def is_collapsed(
    std: float, rank: float, dim: int, min_std: float = 1e-3, min_rank_fraction: float = 0.05
) -> bool:
    """Whether collapse statistics indicate a collapsed representation.

    Args:
        std: :func:`feature_std` of the embeddings.
        rank: :func:`effective_rank` of the embeddings.
        dim: feature width D.
        min_std: spread below this counts as collapsed.
        min_rank_fraction: effective rank below ``max(2, fraction * D)`` counts as collapsed.

    Returns:
        True when either statistic is below its floor.
    """
    return std < min_std or rank < max(2.0, min_rank_fraction * dim)
