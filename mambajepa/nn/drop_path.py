"""Stochastic depth: drop whole residual branches per sample (Huang et al., 2016)."""

from __future__ import annotations

import torch
from torch import nn


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Zero the residual branch ``x`` for a random subset of samples and rescale the rest.

    Args:
        x: branch output, batch first ``(B, ...)``.
        drop_prob: probability of dropping a sample's branch, in ``[0, 1)``.
        training: identity when False.

    Returns:
        ``x`` with each sample either zeroed or divided by ``1 - drop_prob``.
    """
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one draw per sample, broadcast over the rest
    keep = x.new_empty(shape).bernoulli_(keep_prob)
    return x * keep.div_(keep_prob)


class DropPath(nn.Module):
    """Module form of :func:`drop_path` (identity in eval mode or with ``drop_prob=0``)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
