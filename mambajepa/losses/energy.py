"""Energies between predicted and target embeddings (the JEPA prediction losses).

A JEPA scores a prediction by a distance in representation space (LeCun, "A Path Towards
Autonomous Machine Intelligence", 2022). I-JEPA (Assran et al., 2023) uses the mean squared
error; V-JEPA (Bardes et al., 2024) the L1 distance; smooth-L1 (Girshick, "Fast R-CNN", 2015)
interpolates between them; the cosine energy ``1 - cos`` (BYOL, Grill et al., 2020) ignores
the norm of the embeddings.

Every function takes ``pred`` and ``target`` of the same shape ``(..., D)`` and returns the
mean over all elements (tokens for the cosine energy) as a 0-d tensor.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.core.errors import ConfigError
from mambajepa.losses.checks import check_pair

EnergyKind = Literal["l2", "l1", "smooth_l1", "cosine"]
ENERGIES = ("l2", "l1", "smooth_l1", "cosine")


def l2_energy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error ``mean((pred - target)^2)``.

    Args:
        pred: ``(..., D)`` predicted embeddings.
        target: ``(..., D)`` target embeddings.

    Returns:
        0-d tensor.

    Raises:
        ShapeError: different shapes, empty or non-float inputs.
    """
    check_pair("l2_energy", pred, target)
    return F.mse_loss(pred, target)


def l1_energy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error ``mean(|pred - target|)``.

    Args:
        pred: ``(..., D)`` predicted embeddings.
        target: ``(..., D)`` target embeddings.

    Returns:
        0-d tensor.

    Raises:
        ShapeError: different shapes, empty or non-float inputs.
    """
    check_pair("l1_energy", pred, target)
    return F.l1_loss(pred, target)


def smooth_l1_energy(pred: torch.Tensor, target: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Huber-style energy: ``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``; mean.

    Args:
        pred: ``(..., D)`` predicted embeddings.
        target: ``(..., D)`` target embeddings.
        beta: threshold between the quadratic and the linear part (> 0).

    Returns:
        0-d tensor.

    Raises:
        ShapeError: different shapes, empty or non-float inputs.
        ConfigError: ``beta <= 0``.
    """
    check_pair("smooth_l1_energy", pred, target)
    if beta <= 0:
        raise ConfigError(f"smooth_l1 beta={beta} must be positive")
    return F.smooth_l1_loss(pred, target, beta=beta)


def cosine_energy(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over tokens of ``1 - cos(pred, target)`` along the last dim.

    Args:
        pred: ``(..., D)`` predicted embeddings.
        target: ``(..., D)`` target embeddings.
        eps: lower bound on the norms.

    Returns:
        0-d tensor in ``[0, 2]``.

    Raises:
        ShapeError: different shapes, empty or non-float inputs.
    """
    check_pair("cosine_energy", pred, target)
    return (1.0 - F.cosine_similarity(pred, target, dim=-1, eps=eps)).mean()


_WITHOUT_BETA = {"l2": l2_energy, "l1": l1_energy, "cosine": cosine_energy}


def _check_kind(kind: str) -> None:
    if kind not in ENERGIES:
        raise ConfigError(f"energy kind {kind!r} is not one of {ENERGIES}")


def energy(
    pred: torch.Tensor, target: torch.Tensor, kind: EnergyKind = "l2", beta: float = 1.0
) -> torch.Tensor:
    """Dispatch to the energy named ``kind``.

    Args:
        pred: ``(..., D)`` predicted embeddings.
        target: ``(..., D)`` target embeddings.
        kind: one of ``l2``, ``l1``, ``smooth_l1``, ``cosine``.
        beta: smooth-L1 threshold.

    Returns:
        0-d tensor.

    Raises:
        ConfigError: unknown ``kind``.
        ShapeError: different shapes, empty or non-float inputs.
    """
    _check_kind(kind)
    if kind == "smooth_l1":
        return smooth_l1_energy(pred, target, beta)
    return _WITHOUT_BETA[kind](pred, target)


class Energy(nn.Module):
    """Module form of :func:`energy`.

    Args:
        kind: one of ``l2``, ``l1``, ``smooth_l1``, ``cosine``.
        beta: smooth-L1 threshold.

    Raises:
        ConfigError: unknown ``kind``.
    """

    def __init__(self, kind: EnergyKind = "l2", beta: float = 1.0) -> None:
        super().__init__()
        _check_kind(kind)
        if beta <= 0:
            raise ConfigError(f"smooth_l1 beta={beta} must be positive")
        self.kind = kind
        self.beta = beta

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Energy between ``pred`` and ``target`` (both ``(..., D)``) as a 0-d tensor."""
        return energy(pred, target, self.kind, self.beta)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}" + (f", beta={self.beta}" if self.kind == "smooth_l1" else "")
