"""InfoNCE contrastive loss between paired embeddings.

van den Oord et al., "Representation Learning with Contrastive Predictive Coding" (2018);
the bidirectional, temperature-scaled form with L2-normalized embeddings and an optionally
learned temperature is that of CLIP (Radford et al., 2021). Row ``i`` of ``a`` and row ``i``
of ``b`` are a positive pair; every other row of the batch is a negative.

Dimension legend: ``B`` pairs, ``D`` embedding dim.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.core.distributed import gather_no_grad, gather_with_grad, rank
from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.losses.checks import check_pair


def info_nce(
    a: torch.Tensor,
    b: torch.Tensor,
    temperature: float | torch.Tensor = 0.07,
    bidirectional: bool = True,
    gather: bool = False,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE loss of ``B`` positive pairs.

    Args:
        a: ``(B, D)`` embeddings (normalized here).
        b: ``(B, D)`` embeddings paired row by row with ``a``.
        temperature: softmax temperature ``tau`` (float or 0-d tensor, > 0).
        bidirectional: average the ``a -> b`` and ``b -> a`` cross-entropies; otherwise only
            ``a -> b`` (each row of ``a`` classifies its partner among the rows of ``b``).
        gather: in a distributed run, score this rank's rows against the rows of every rank
            (gathered with gradients), so the negatives are the whole global batch. With the
            gradient averaging of data parallelism the result trains exactly as the loss of the
            global batch in one process. No effect in a single process.
        groups: ``(B,)`` integer ids; rows with the same id have the same target (two questions
            both answered "red"), so they are not each other's negatives: those off-diagonal
            logits are left out of both softmaxes. None: every other row is a negative.

    Returns:
        0-d tensor.

    Raises:
        ShapeError: inputs not ``(B, D)`` of the same shape, or ``groups`` not ``(B,)``.
        ConfigError: a non-positive float temperature.
    """
    check_pair("info_nce", a, b, min_dims=2)
    if a.dim() != 2:
        raise ShapeError(f"info_nce expects (B, D) embeddings, got {tuple(a.shape)}")
    if not isinstance(temperature, torch.Tensor) and temperature <= 0:
        raise ConfigError(f"info_nce temperature={temperature} must be positive")
    if groups is not None and (groups.shape != a.shape[:1] or groups.is_floating_point()):
        raise ShapeError(
            f"info_nce groups must be ({a.shape[0]},) integer ids, got {tuple(groups.shape)} {groups.dtype}"
        )
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    a_all, b_all = (gather_with_grad(a), gather_with_grad(b)) if gather else (a, b)  # (R*B, D)
    offset = rank() * a.shape[0] if a_all is not a else 0  # this rank's rows inside the gathered batch
    labels = torch.arange(a.shape[0], device=a.device) + offset
    ab, ba = a @ b_all.T / temperature, b @ a_all.T / temperature  # (B, R*B) logits
    if groups is not None:
        groups_all = gather_no_grad(groups) if a_all is not a else groups
        same = groups[:, None] == groups_all[None, :]  # (B, R*B)
        same[torch.arange(a.shape[0], device=a.device), labels] = False  # the positive stays
        ab, ba = ab.masked_fill(same, float("-inf")), ba.masked_fill(same, float("-inf"))
    loss = F.cross_entropy(ab, labels)
    if bidirectional:
        loss = 0.5 * (loss + F.cross_entropy(ba, labels))
    return loss


class InfoNCE(nn.Module):
    """Module form of :func:`info_nce`, with an optionally learned temperature.

    A learned temperature is stored as ``log_scale = log(1 / tau)`` (as CLIP's logit scale),
    carries ``_no_weight_decay``, and its scale ``1 / tau`` is clamped to ``max_scale``.

    Args:
        temperature: initial (or fixed) temperature.
        learnable: make the temperature a parameter.
        bidirectional: average both directions.
        max_scale: upper bound of ``1 / tau`` for a learned temperature.
        gather: negatives from every rank in a distributed run (see :func:`info_nce`).

    Raises:
        ConfigError: a non-positive temperature.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learnable: bool = False,
        bidirectional: bool = True,
        max_scale: float = 100.0,
        gather: bool = True,
    ) -> None:
        super().__init__()
        self.gather = gather
        if temperature <= 0:
            raise ConfigError(f"InfoNCE temperature={temperature} must be positive")
        self.bidirectional = bidirectional
        self.max_scale = max_scale
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
            self.log_scale._no_weight_decay = True
        else:
            self.register_buffer("log_scale", log_scale, persistent=False)

    @property
    def temperature(self) -> torch.Tensor:
        """Current temperature as a 0-d tensor (differentiable when learned)."""
        return 1.0 / self.log_scale.exp().clamp(max=self.max_scale)

    def forward(self, a: torch.Tensor, b: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """InfoNCE loss of the ``(B, D)`` pairs ``a``, ``b`` (``groups``: see :func:`info_nce`) as a 0-d tensor."""
        return info_nce(a, b, self.temperature, self.bidirectional, self.gather, groups)
