"""VICReg: variance-invariance-covariance regularization.

Bardes, Ponce and LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning" (ICLR 2022), eq. (1)-(6). For two batches of embeddings
``Z, Z'`` of shape ``(M, D)``:

- invariance ``s = mean((Z - Z')^2)``;
- variance ``v = mean_j relu(gamma - sqrt(Var(Z_j) + eps))``, averaged over both branches;
- covariance ``c = sum_{i != j} Cov(Z)_{ij}^2 / D``, summed over both branches
  (unbiased covariance);
- loss ``lambda s + mu v + nu c`` with ``(lambda, mu, nu) = (25, 25, 1)``.

In a JEPA the branches are the predicted and the target embeddings, and the variance and
covariance terms keep the representations from collapsing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.losses.checks import check_pair, flatten_batch


@dataclass
class VICRegTerms:
    """The weighted total and the three unweighted VICReg terms (0-d tensors)."""

    loss: torch.Tensor
    invariance: torch.Tensor
    variance: torch.Tensor
    covariance: torch.Tensor


def _variance(z: torch.Tensor, gamma: float, eps: float) -> torch.Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)  # (D,)
    return F.relu(gamma - std).mean()


def _covariance(z: torch.Tensor) -> torch.Tensor:
    m, d = z.shape
    centered = z - z.mean(dim=0)
    cov = centered.T @ centered / (m - 1)  # (D, D)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / d


def variance_loss(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg's variance hinge ``mean_d relu(gamma - std_d)`` over the rows of ``z`` ``(M, D)``.

    Raises:
        ShapeError: non-float input or fewer than two rows.
    """
    return _variance(flatten_batch("variance", z), gamma, eps)


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """VICReg's covariance term: squared off-diagonal covariances of ``z`` ``(M, D)`` summed, over D.

    Raises:
        ShapeError: non-float input or fewer than two rows.
    """
    return _covariance(flatten_batch("covariance", z))


def vicreg_terms(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
) -> VICRegTerms:
    """VICReg loss with its terms.

    Args:
        z_a: ``(..., D)`` embeddings of the first branch (leading dims are flattened into rows).
        z_b: ``(..., D)`` embeddings of the second branch, same shape.
        sim_weight: weight of the invariance term (lambda).
        var_weight: weight of the variance term (mu).
        cov_weight: weight of the covariance term (nu).
        gamma: target standard deviation per dimension.
        eps: numerical floor inside the square root.

    Returns:
        The weighted loss and the unweighted terms.

    Raises:
        ShapeError: different shapes, non-float inputs or fewer than two rows.
    """
    check_pair("vicreg", z_a, z_b, min_dims=2)
    a = flatten_batch("vicreg", z_a)  # (M, D)
    b = flatten_batch("vicreg", z_b)  # (M, D)
    invariance = F.mse_loss(a, b)
    variance = 0.5 * (_variance(a, gamma, eps) + _variance(b, gamma, eps))
    covariance = _covariance(a) + _covariance(b)
    loss = sim_weight * invariance + var_weight * variance + cov_weight * covariance
    return VICRegTerms(loss, invariance, variance, covariance)


def vicreg_loss(z_a: torch.Tensor, z_b: torch.Tensor, **weights: float) -> torch.Tensor:
    """Weighted VICReg loss (see :func:`vicreg_terms` for the arguments).

    Returns:
        0-d tensor.
    """
    return vicreg_terms(z_a, z_b, **weights).loss


class VICRegLoss(nn.Module):
    """Module form of :func:`vicreg_loss`.

    Args:
        sim_weight: weight of the invariance term.
        var_weight: weight of the variance term.
        cov_weight: weight of the covariance term.
        gamma: target standard deviation per dimension.
        eps: numerical floor inside the square root.
    """

    def __init__(
        self,
        sim_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
    ) -> None:
        super().__init__()
        self.sim_weight, self.var_weight, self.cov_weight = sim_weight, var_weight, cov_weight
        self.gamma, self.eps = gamma, eps

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """Weighted VICReg loss of two ``(..., D)`` embedding batches as a 0-d tensor."""
        return vicreg_terms(
            z_a, z_b, self.sim_weight, self.var_weight, self.cov_weight, self.gamma, self.eps
        ).loss
