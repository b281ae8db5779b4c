"""Frozen features and labels of a data set, extracted once for every probe.

Dimension legend: ``M`` items, ``N`` tokens per item, ``D`` feature width.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from mambajepa.core.errors import DataError, ShapeError
from mambajepa.masks.collate import split_sample

__all__ = ["FeatureSet", "extract_features", "item_labels", "stack_inputs"]

#: dict keys of an item that are not labels
NON_LABEL_KEYS = ("image", "video", "index", "path", "caption", "question", "answer")


@dataclass
class FeatureSet:
    """Features of ``M`` items with their labels.

    Attributes:
        pooled: ``(M, D)`` mean of the token features over tokens.
        tokens: ``(M, N, D)`` token features (kept for the attentive probe), or None.
        labels: ``{task: (M,) int64}``.
    """

    pooled: torch.Tensor
    tokens: torch.Tensor | None
    labels: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return self.pooled.shape[0]


def item_labels(sample: object) -> dict[str, int]:
    """Integer labels of one dataset item.

    Args:
        sample: a dict item (every int field except the index is a label) or a tuple
            ``(tensor, label, ...)`` (the first int is the label ``"class"``).

    Returns:
        ``{task: label}``; empty for an item without labels.
    """
    if isinstance(sample, dict):
        return {k: int(v) for k, v in sample.items() if k not in NON_LABEL_KEYS and isinstance(v, int)}
    if isinstance(sample, (tuple, list)):
        ints = [v for v in sample[1:] if isinstance(v, int)]
        return {"class": ints[0]} if ints else {}
    return {}


def stack_inputs(items: Sequence[Any]) -> torch.Tensor:
    """``(B, C, ...)``: the image / video tensor of each item (see :func:`~mambajepa.masks.split_sample`)."""
    return torch.stack([split_sample(item)[0] for item in items])


@torch.no_grad()
def extract_features(
    encode: Callable[[Any], torch.Tensor],
    dataset: Dataset,
    num_items: int,
    batch_size: int = 128,
    keep_tokens: bool = True,
    tasks: Sequence[str] | None = None,
    collate: Callable[[list], Any] | None = None,
) -> FeatureSet:
    """Encode the first ``num_items`` items of ``dataset``.

    Args:
        encode: batch -> ``(B, N, D)`` token features or ``(B, D)`` pooled ones (run under ``no_grad``).
        dataset: map-style dataset of dict or tuple items (see :func:`item_labels`).
        num_items: items to encode (at most ``len(dataset)``).
        batch_size: items per forward pass.
        keep_tokens: keep the ``(M, N, D)`` token features as well as the pooled ones (token
            features only).
        tasks: labels to keep (default: every label of the first item).
        collate: items -> the batch ``encode`` reads (default: :func:`stack_inputs`).

    Returns:
        The features and labels.

    Raises:
        DataError: an empty data set, or an item missing one of the ``tasks`` labels.
        ShapeError: features that are not ``(B, N, D)`` or ``(B, D)``.
    """
    total = min(num_items, len(dataset))
    if total < 1:
        raise DataError("cannot extract features from an empty data set")
    pooled, tokens, labels = [], [], {}
    for start in range(0, total, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, total))]
        h = encode((collate or stack_inputs)(items)).float()  # (B, N, D) | (B, D)
        if h.dim() not in (2, 3) or h.shape[0] != len(items):
            raise ShapeError(f"encode returned features of shape {tuple(h.shape)} for {len(items)} items")
        pooled.append(h.mean(dim=1) if h.dim() == 3 else h)  # (B, D)
        keep_tokens = keep_tokens and h.dim() == 3
        if keep_tokens:
            tokens.append(h)
        for item in items:
            found = item_labels(item)
            for task in tasks if tasks is not None else found:
                if task not in found:
                    raise DataError(f"item has no label {task!r} (labels: {sorted(found)})")
                labels.setdefault(task, []).append(found[task])
    return FeatureSet(
        pooled=torch.cat(pooled),
        tokens=torch.cat(tokens) if keep_tokens else None,
        labels={task: torch.tensor(values, dtype=torch.long) for task, values in labels.items()},
    )
