"""Barlow Twins redundancy-reduction loss.

Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy Reduction" (ICML
2021), eq. (1)-(2): standardize each embedding dimension over the batch, form the
cross-correlation ``C = Z_a^T Z_b / M`` (``(D, D)``) and penalize
``sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2`` with ``lambda = 0.005``.
Standardization uses the biased batch variance, as the paper's BatchNorm without affine does.
"""

from __future__ import annotations

import torch
from torch import nn

from mambajepa.losses.checks import check_pair, flatten_batch


def _standardize(z: torch.Tensor, eps: float) -> torch.Tensor:
    mean = z.mean(dim=0)
    var = z.var(dim=0, unbiased=False)
    return (z - mean) / torch.sqrt(var + eps)


def barlow_twins_loss(
    z_a: torch.Tensor, z_b: torch.Tensor, lambd: float = 0.005, eps: float = 1e-5
) -> torch.Tensor:
    """Barlow Twins loss of two embedding batches.

    Args:
        z_a: ``(..., D)`` embeddings of the first branch (leading dims are flattened into rows).
        z_b: ``(..., D)`` embeddings of the second branch, same shape.
        lambd: weight of the off-diagonal (redundancy) term.
        eps: numerical floor of the variance in the standardization.

    Returns:
        0-d tensor.

    Raises:
        ShapeError: different shapes, non-float inputs or fewer than two rows.
    """
    check_pair("barlow_twins", z_a, z_b, min_dims=2)
    a = _standardize(flatten_batch("barlow_twins", z_a), eps)  # (M, D)
    b = _standardize(flatten_batch("barlow_twins", z_b), eps)  # (M, D)
    c = a.T @ b / a.shape[0]  # (D, D)
    diagonal = torch.diagonal(c)
    on_diagonal = (1.0 - diagonal).pow(2).sum()
    off_diagonal = c.pow(2).sum() - diagonal.pow(2).sum()
    return on_diagonal + lambd * off_diagonal


class BarlowTwinsLoss(nn.Module):
    """Module form of :func:`barlow_twins_loss`.

    Args:
        lambd: weight of the off-diagonal term.
        eps: numerical floor of the variance.
    """

    def __init__(self, lambd: float = 0.005, eps: float = 1e-5) -> None:
        super().__init__()
        self.lambd, self.eps = lambd, eps

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """Barlow Twins loss of two ``(..., D)`` embedding batches as a 0-d tensor."""
        return barlow_twins_loss(z_a, z_b, self.lambd, self.eps)
