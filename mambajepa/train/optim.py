"""AdamW with explicit, exhaustive parameter groups.

Each :class:`~mambajepa.methods.base.ParamGroupSpec` of a method becomes two optimizer groups:
one with weight decay and one without. No decay goes to biases, normalisation weights, every
parameter with fewer than two dimensions, and every parameter tagged
``p._no_weight_decay = True`` (``A_log``, ``D``, ``dt_bias``, learned tokens). Frozen
parameters (``requires_grad=False``) are left out. Every trainable parameter of the method
must land in exactly one group; anything else is an error naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mambajepa.core.errors import ConfigError
from mambajepa.methods.base import ParamGroupSpec

__all__ = ["OptimGroup", "split_param_groups", "build_optimizer", "set_group_hparams"]


@dataclass
class OptimGroup:
    """One optimizer group: parameters with their names and multipliers."""

    name: str  # "<spec name>" or "<spec name>.no_decay"
    names: list[str]  # fully qualified parameter names (as in the method's state dict)
    params: list[nn.Parameter]
    lr_mult: float
    wd_mult: float  # 0 for no-decay groups
    decay: bool


def _is_norm(module: nn.Module) -> bool:
    norm_types = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.LocalResponseNorm)
    return isinstance(module, norm_types) or "Norm" in type(module).__name__


def _no_decay_ids(module: nn.Module) -> set[int]:
    ids = set()
    for sub in module.modules():
        is_norm = _is_norm(sub)
        for pname, p in sub.named_parameters(recurse=False):
            if is_norm or pname == "bias" or pname.endswith("_bias") or p.ndim < 2:
                ids.add(id(p))
            elif getattr(p, "_no_weight_decay", False):
                ids.add(id(p))
    return ids


def split_param_groups(method: nn.Module, specs: list[ParamGroupSpec]) -> list[OptimGroup]:
    """Turn a method's group specs into decay / no-decay optimizer groups.

    Args:
        method: the module owning every parameter (names are taken relative to it).
        specs: the method's ``param_groups()``.

    Returns:
        Non-empty groups, in spec order, decay group before no-decay group.

    Raises:
        ConfigError: a trainable parameter of ``method`` is in no group or in two groups, a
            group holds a parameter that does not belong to ``method``, or names repeat.
    """
    names = {id(p): n for n, p in method.named_parameters(remove_duplicate=True)}
    trainable = {id(p) for n, p in method.named_parameters() if p.requires_grad}
    owner: dict[int, str] = {}
    groups: list[OptimGroup] = []
    seen_names: set[str] = set()
    for spec in specs:
        if spec.name in seen_names:
            raise ConfigError(f"parameter group name {spec.name!r} is used twice")
        seen_names.add(spec.name)
        no_decay = _no_decay_ids(spec.module)
        decay_group = OptimGroup(spec.name, [], [], spec.lr_mult, spec.wd_mult, True)
        plain_group = OptimGroup(f"{spec.name}.no_decay", [], [], spec.lr_mult, 0.0, False)
        for p in spec.module.parameters():
            if not p.requires_grad:
                continue
            pid = id(p)
            if pid not in names:
                raise ConfigError(
                    f"parameter group {spec.name!r} holds a parameter of shape {tuple(p.shape)} "
                    "that is not registered in the method"
                )
            if pid in owner:
                raise ConfigError(
                    f"parameter {names[pid]!r} is in two groups: {owner[pid]!r} and {spec.name!r}"
                )
            owner[pid] = spec.name
            group = plain_group if pid in no_decay else decay_group
            group.names.append(names[pid])
            group.params.append(p)
        groups.extend(g for g in (decay_group, plain_group) if g.params)
    missing = [names[pid] for pid in trainable if pid not in owner]
    if missing:
        shown = ", ".join(sorted(missing)[:8]) + (" ..." if len(missing) > 8 else "")
        raise ConfigError(f"{len(missing)} trainable parameter(s) are in no optimizer group: {shown}")
    return groups


def build_optimizer(
    groups: list[OptimGroup], lr: float, weight_decay: float, betas: tuple[float, float], eps: float
) -> torch.optim.AdamW:
    """AdamW over ``groups``; ``lr`` and ``weight_decay`` are set again every step by the trainer.

    Args:
        groups: from :func:`split_param_groups`.
        lr: base learning rate (multiplied by each group's ``lr_mult``).
        weight_decay: base weight decay (multiplied by each group's ``wd_mult``).
        betas: AdamW betas.
        eps: AdamW epsilon.

    Returns:
        The optimizer; each torch param group carries ``name``, ``lr_mult`` and ``wd_mult``.
    """
    torch_groups = [
        {
            "params": list(zip(g.names, g.params)),  # named: torch records ``param_names``
            "name": g.name,
            "lr_mult": g.lr_mult,
            "wd_mult": g.wd_mult,
            "lr": lr * g.lr_mult,
            "weight_decay": weight_decay * g.wd_mult,
        }
        for g in groups
    ]
    return torch.optim.AdamW(torch_groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def set_group_hparams(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    """Apply the scheduled base ``lr`` and ``weight_decay`` to every group, with its multipliers."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]
        group["weight_decay"] = weight_decay * group["wd_mult"]
