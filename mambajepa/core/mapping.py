"""The one place where foreign state dicts are turned into ours.

A :class:`CheckpointMapping` says, in order: which keys belong to another model and are set
aside on purpose (``ignore``), which wrapper prefixes to strip (``module.`` from DDP,
``_orig_mod.`` from ``torch.compile``, ``backbone.`` ...), which regular-expression renames to
apply, and which split projections to concatenate (``query``/``key``/``value`` → ``qkv``).
:func:`load_mapped` then compares the result with the model and raises a
:class:`~mambajepa.core.errors.CheckpointError` listing every missing, unexpected and wrongly-shaped
key; nothing is dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from mambajepa.core.errors import CheckpointError


@dataclass(frozen=True)
class Merge:
    """Concatenate sibling tensors ``<prefix>.<part>.<leaf>`` along dim 0 into ``<prefix>.<into>.<leaf>``.

    Attributes:
        parts: the sibling names in concatenation order, e.g. ``("query", "key", "value")``.
        into: the merged name, e.g. ``"qkv"``.
    """

    parts: tuple[str, ...]
    into: str


@dataclass(frozen=True)
class CheckpointMapping:
    """How to turn a foreign state dict into ours (applied in the order of the fields).

    Attributes:
        ignore: regexes (matched with ``re.match`` on the original key) of entries that belong to
            another model (a predictor, an optimizer) and are set aside on purpose.
        strip_prefixes: prefixes removed repeatedly from the start of every key.
        renames: ``(pattern, replacement)`` pairs applied with ``re.sub`` in order.
        merges: split projections to concatenate.
    """

    ignore: tuple[str, ...] = ()
    strip_prefixes: tuple[str, ...] = ("module.", "_orig_mod.")
    renames: tuple[tuple[str, str], ...] = ()
    merges: tuple[Merge, ...] = ()


@dataclass
class MismatchReport:
    """Differences between a mapped state dict and a model's.

    Attributes:
        missing: keys the model has and the checkpoint lacks.
        unexpected: keys the checkpoint has and the model lacks.
        wrong_shape: ``(key, checkpoint shape, model shape)``.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong_shape)

    def format(self, limit: int = 20) -> str:
        """Human-readable listing, ``limit`` keys per category at most."""
        lines = []
        for title, items in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            (
                "wrong shape (checkpoint vs model)",
                [f"{k}: {tuple(a)} vs {tuple(b)}" for k, a, b in self.wrong_shape],
            ),
        ):
            if items:
                shown = ", ".join(items[:limit]) + (
                    f", ... ({len(items) - limit} more)" if len(items) > limit else ""
                )
                lines.append(f"{len(items)} {title}: {shown}")
        return "; ".join(lines)


def _strip(key: str, prefixes: tuple[str, ...]) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in prefixes:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    return key


def _merge(state: dict[str, torch.Tensor], merge: Merge) -> dict[str, torch.Tensor]:
    first = re.compile(rf"^(.*\.)?{re.escape(merge.parts[0])}\.([^.]+)$")
    out = dict(state)
    for key in list(state):
        match = first.match(key)
        if match is None:
            continue
        prefix, leaf = match.group(1) or "", match.group(2)
        names = [f"{prefix}{part}.{leaf}" for part in merge.parts]
        if all(name in state for name in names):
            out[f"{prefix}{merge.into}.{leaf}"] = torch.cat([state[name] for name in names], dim=0)
            for name in names:
                del out[name]
    return out


def map_state_dict(
    state: Mapping[str, torch.Tensor], mapping: CheckpointMapping
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Apply ``mapping`` to a foreign state dict.

    Args:
        state: the foreign name -> tensor dict.
        mapping: what to ignore, strip, rename and merge.

    Returns:
        ``(mapped, ignored)``: the renamed state dict and the original keys set aside by
        ``mapping.ignore``.

    Raises:
        CheckpointError: if two keys map to the same name.
    """
    ignore = [re.compile(p) for p in mapping.ignore]
    renames = [(re.compile(p), r) for p, r in mapping.renames]
    mapped: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in state.items():
        if any(p.match(key) for p in ignore):
            ignored.append(key)
            continue
        new = _strip(key, mapping.strip_prefixes)
        for pattern, replacement in renames:
            new = pattern.sub(replacement, new)
        if new in mapped:
            raise CheckpointError(f"checkpoint keys collide after mapping: {key!r} -> {new!r} appears twice")
        mapped[new] = value
    for merge in mapping.merges:
        mapped = _merge(mapped, merge)
    return mapped, ignored


def compare_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> MismatchReport:
    """Compare a state dict with a model's own.

    Args:
        model: the destination module.
        state: an already mapped state dict.

    Returns:
        The keys missing from ``state``, the unexpected ones, and those of another shape.
    """
    expected = model.state_dict()
    report = MismatchReport(
        missing=sorted(set(expected) - set(state)),
        unexpected=sorted(set(state) - set(expected)),
    )
    for key in sorted(set(expected) & set(state)):
        if tuple(state[key].shape) != tuple(expected[key].shape):
            report.wrong_shape.append((key, tuple(state[key].shape), tuple(expected[key].shape)))
    return report


def load_mapped(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    mapping: CheckpointMapping | None = None,
    source: str = "checkpoint",
) -> list[str]:
    """Map ``state`` and load it into ``model``, refusing any mismatch.

    Args:
        model: destination module; its parameters keep their dtype and device.
        state: foreign (or our own) state dict.
        mapping: the mapping to apply; None strips wrapper prefixes only.
        source: a name for the checkpoint used in error messages (e.g. its path).

    Returns:
        The original keys set aside by ``mapping.ignore``.

    Raises:
        CheckpointError: listing every missing, unexpected and wrongly-shaped key.
    """
    mapped, ignored = map_state_dict(state, mapping or CheckpointMapping())
    report = compare_state_dict(model, mapped)
    if report:
        raise CheckpointError(f"{source} does not match {type(model).__name__}: {report.format()}")
    model.load_state_dict(mapped, strict=True)
    return ignored
