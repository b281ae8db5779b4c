"""Schedules as pure functions of the optimizer step.

A resumed run restores a step counter and recomputes every scheduled value from it, so
there is no scheduler state to save. ``step`` is the 0-based index of the update about to be
applied; ``max_steps`` is the number of updates in the run.
"""

from __future__ import annotations

import math
from typing import Literal

from mambajepa.core.errors import ConfigError

__all__ = ["anneal", "lr_at", "weight_decay_at", "ema_momentum", "KINDS"]

KINDS = ("cosine", "constant", "linear")
Kind = Literal["cosine", "constant", "linear"]


def anneal(progress: float, start: float, end: float, kind: Kind) -> float:
    """Value at ``progress`` in [0, 1] of a curve going from ``start`` to ``end``.

    Args:
        progress: fraction of the schedule done; clamped to [0, 1].
        start: value at progress 0.
        end: value at progress 1 (ignored by ``constant``).
        kind: ``cosine`` (half cosine), ``linear`` or ``constant``.

    Returns:
        The scheduled value.

    Raises:
        ConfigError: unknown ``kind``.
    """
    t = min(max(progress, 0.0), 1.0)
    if kind == "constant":
        return start
    if kind == "linear":
        return start + (end - start) * t
    if kind == "cosine":
        return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * t))
    raise ConfigError(f"schedule kind {kind!r} is not one of {KINDS}")


def lr_at(
    step: int, max_steps: int, lr: float, min_lr: float = 0.0, warmup_steps: int = 0, kind: Kind = "cosine"
) -> float:
    """Learning rate of update ``step``: linear warm-up to ``lr``, then ``kind`` down to ``min_lr``.

    Warm-up reaches ``lr`` exactly at ``step == warmup_steps``; update 0 uses ``lr / warmup_steps``
    so the first update is never a no-op.

    Args:
        step: 0-based update index.
        max_steps: total updates; the decay reaches ``min_lr`` at ``max_steps``.
        lr: peak learning rate.
        min_lr: final learning rate (cosine / linear).
        warmup_steps: length of the linear warm-up.
        kind: shape after warm-up.

    Returns:
        The learning rate.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(1, max_steps - warmup_steps)
    return anneal((step - warmup_steps) / decay_steps, lr, min_lr, kind)


def weight_decay_at(
    step: int, max_steps: int, weight_decay: float, final_weight_decay: float | None, kind: Kind = "cosine"
) -> float:
    """Weight decay of update ``step``: constant, or ``kind`` from the start to the final value.

    Args:
        step: 0-based update index.
        max_steps: total updates.
        weight_decay: value at step 0.
        final_weight_decay: value at the end; ``None`` keeps ``weight_decay`` throughout.
        kind: curve shape when ``final_weight_decay`` is set.

    Returns:
        The weight-decay coefficient.
    """
    if final_weight_decay is None:
        return weight_decay
    return anneal(step / max(1, max_steps), weight_decay, final_weight_decay, kind)


def ema_momentum(step: int, max_steps: int, start: float, end: float, kind: Kind = "linear") -> float:
    """Momentum of an EMA target network at update ``step`` (I-JEPA: linear 0.996 -> 1.0).

    Args:
        step: 0-based update index.
        max_steps: total updates; the momentum reaches ``end`` at ``max_steps``.
        start: momentum at step 0.
        end: momentum at the end.
        kind: ``linear``, ``cosine`` (BYOL's half-cosine ramp) or ``constant``.

    Returns:
        The momentum in [min(start, end), max(start, end)].
    """
    return anneal(step / max(1, max_steps), start, end, kind)
