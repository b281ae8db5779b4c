"""Exponential-moving-average (EMA) target networks.

BYOL (Grill et al., 2020), I-JEPA (Assran et al., 2023) and V-JEPA (Bardes et al., 2024)
compute their targets with a copy of the online encoder whose weights follow
``target <- m * target + (1 - m) * online`` after every optimizer step, with a momentum ``m``
that rises from 0.996 to 1.0 over training. The copy is frozen: its parameters have
``requires_grad=False``, it runs under ``no_grad``, and no optimizer ever sees it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from mambajepa.core.errors import ShapeError
from mambajepa.core.schedules import ema_momentum

__all__ = ["EMA", "ema_copy", "ema_update_", "ema_momentum"]


def ema_copy(module: nn.Module) -> nn.Module:
    """Deep-copy ``module`` into a frozen target.

    Args:
        module: the online network.

    Returns:
        An independent copy whose parameters have ``requires_grad=False``.
    """
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """Move ``target`` towards ``online`` in place: ``t <- m * t + (1 - m) * o``.

    Parameters are updated with fused ``torch._foreach_*`` calls; buffers (running
    statistics, caches) are copied from ``online``.

    Args:
        target: the EMA copy.
        online: the trained network with the same parameter names and shapes.
        momentum: ``m`` in ``[0, 1]``; 1 leaves the target unchanged.

    Raises:
        ShapeError: the two modules' parameter names or shapes differ (listing them).
        ValueError: ``momentum`` outside ``[0, 1]``.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"EMA momentum={momentum} must be in [0, 1]")
    target_params = dict(target.named_parameters())
    online_params = dict(online.named_parameters())
    mismatched = sorted(
        set(target_params) ^ set(online_params)
        | {
            n
            for n in target_params.keys() & online_params.keys()
            if target_params[n].shape != online_params[n].shape
        }
    )
    if mismatched:
        raise ShapeError(f"EMA target and online network differ in parameters {mismatched[:10]}")
    names = list(online_params)
    t = [target_params[n] for n in names]
    o = [online_params[n].detach() for n in names]
    if t:
        torch._foreach_mul_(t, momentum)
        torch._foreach_add_(t, o, alpha=1.0 - momentum)
    target_buffers = dict(target.named_buffers())
    for name, buf in online.named_buffers():
        if name in target_buffers:
            target_buffers[name].copy_(buf)


class EMA(nn.Module):
    """A frozen EMA copy of a network and its momentum schedule.

    The copy is the only submodule (``self.target``), so it is saved with the method's
    ``state_dict``; the online network is passed to :meth:`update` and never registered here.
    Pass the unwrapped online module (``ddp_model.module``) so parameter names match.

    Args:
        online: the network to copy.
        start: momentum at step 0.
        end: momentum at ``max_steps``.
        max_steps: updates over which the momentum moves from ``start`` to ``end``.
        kind: ``linear`` (I-JEPA), ``cosine`` (BYOL) or ``constant``.

    Example:
        >>> ema = EMA(encoder, max_steps=10_000)
        >>> with torch.no_grad():
        ...     h = ema(images)
        >>> ...; optimizer.step(); ema.update(encoder, step)
    """

    def __init__(
        self,
        online: nn.Module,
        start: float = 0.996,
        end: float = 1.0,
        max_steps: int = 1,
        kind: str = "linear",
    ) -> None:
        super().__init__()
        for name, value in (("start", start), ("end", end)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"EMA {name} momentum={value} must be in [0, 1]")
        self.target = ema_copy(online)
        self.start, self.end, self.max_steps, self.kind = start, end, max_steps, kind
        ema_momentum(0, max_steps, start, end, kind)  # rejects an unknown kind now, not at the first update

    def momentum(self, step: int) -> float:
        """Momentum used by the update after optimizer step ``step`` (0-based)."""
        return ema_momentum(step, self.max_steps, self.start, self.end, self.kind)

    def update(self, online: nn.Module, step: int) -> float:
        """Move the target towards ``online`` with the momentum of ``step``.

        Args:
            online: the trained network.
            step: 0-based index of the optimizer step just taken.

        Returns:
            The momentum used.
        """
        m = self.momentum(step)
        ema_update_(self.target, online, m)
        return m

    def forward(self, *args, **kwargs):
        """Run the target under ``no_grad``: its outputs never carry gradients."""
        with torch.no_grad():
            return self.target(*args, **kwargs)
