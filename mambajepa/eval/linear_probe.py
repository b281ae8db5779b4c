"""Linear probe: multinomial logistic regression on frozen, standardised features.

The probe is fitted full-batch with L-BFGS (deterministic, no learning rate to tune) and an L2
penalty on the weights, the usual protocol for small frozen-feature evaluations.

Dimension legend: ``M`` items, ``D`` feature width, ``K`` classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mambajepa.core.errors import ShapeError

__all__ = ["LinearProbe", "fit_linear_probe", "linear_probe_accuracy", "accuracy"]


@dataclass
class LinearProbe:
    """A fitted probe: ``logits = ((x - mean) / std) @ weight.T + bias``.

    Attributes:
        mean: ``(D,)`` training feature mean.
        std: ``(D,)`` training feature std (floored).
        weight: ``(K, D)``.
        bias: ``(K,)``.
    """

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(M, D) -> (M, K)`` class scores."""
        return ((x - self.mean) / self.std) @ self.weight.T + self.bias

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``(M, D) -> (M,)`` predicted classes."""
        return self.logits(x).argmax(dim=-1)


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ShapeError(
            f"expected features (M, D) and labels (M,), got {tuple(x.shape)} and {tuple(y.shape)}"
        )


def fit_linear_probe(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, steps: int = 100, weight_decay: float = 1e-4
) -> LinearProbe:
    """Fit a logistic-regression probe.

    Args:
        x: ``(M, D)`` training features.
        y: ``(M,)`` int64 labels in ``[0, num_classes)``.
        num_classes: K.
        steps: L-BFGS iterations.
        weight_decay: L2 penalty ``weight_decay * ||W||^2`` added to the mean cross-entropy.

    Returns:
        The fitted probe.

    Raises:
        ShapeError: mismatched shapes or labels outside ``[0, num_classes)``.
    """
    _check(x, y)
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ShapeError(f"labels span [{int(y.min())}, {int(y.max())}], outside [0, {num_classes})")
    x = x.double()
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-6)
    z = (x - mean) / std  # (M, D)
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z @ weight.T + bias, y) + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return LinearProbe(mean.float(), std.float(), weight.detach().float(), bias.detach().float())


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``pred`` equal to ``y`` (both ``(M,)``)."""
    return float((pred == y).float().mean())


def linear_probe_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    steps: int = 100,
    weight_decay: float = 1e-4,
) -> float:
    """Held-out accuracy of a linear probe fitted on the training features.

    Args:
        train_x: ``(M, D)`` training features.
        train_y: ``(M,)`` training labels.
        test_x: ``(M', D)`` held-out features.
        test_y: ``(M',)`` held-out labels.
        num_classes: K.
        steps: L-BFGS iterations.
        weight_decay: L2 penalty.

    Returns:
        Accuracy in ``[0, 1]``.

    Raises:
        ShapeError: mismatched shapes.
    """
    _check(test_x, test_y)
    probe = fit_linear_probe(train_x, train_y, num_classes, steps, weight_decay)
    return accuracy(probe.predict(test_x), test_y)
