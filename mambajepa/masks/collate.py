"""Batching masked samples and gathering the tokens a mask selects.

Each sample of a batch gets its own masks, but encoders need rectangular index tensors, so
per-sample index lists are cut to the shortest one in the batch by keeping their first
entries, as I-JEPA's collator does (indices are sorted, so the cut drops the highest ones).

Dimension legend: ``B`` batch, ``N`` tokens of the full input, ``D`` channels,
``Kc``/``Kt``/``Kb`` context/target/target-block indices per sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import default_collate

from mambajepa.core.errors import ShapeError
from mambajepa.masks.base import MaskStrategy
from mambajepa.masks.spec import IndexOutOfBounds, MaskError, MaskSpec

#: keys under which a dict sample holds its image or video, tried in order
INPUT_KEYS = ("image", "video")


@dataclass
class BatchMasks:
    """The masks of one generator for a whole batch.

    Attributes:
        context: ``(B, Kc)`` int64 token indices visible to the context encoder.
        target: ``(B, Kt)`` int64 token indices to predict.
        target_blocks: ``(B, Kb)`` int64 indices per target block (empty when the generator
            draws one target set), each cut to its own batch minimum.
        total_tokens: tokens of the full input.
    """

    context: torch.Tensor
    target: torch.Tensor
    total_tokens: int
    target_blocks: tuple[torch.Tensor, ...] = ()


@dataclass
class MaskedBatch:
    """A collated batch with its masks.

    Attributes:
        inputs: ``(B, C, H, W)`` images or ``(B, C, T, H, W)`` videos.
        masks: one :class:`BatchMasks` per mask generator of the collator.
        extras: the other fields of the samples, collated with ``default_collate`` and kept in
            the samples' layout: a tuple of the entries after the first for tuple samples, a
            dict of the other keys for dict samples, empty for bare tensors.
    """

    inputs: torch.Tensor
    masks: list[BatchMasks]
    extras: tuple | dict = field(default_factory=tuple)


def stack_masks(specs: Sequence[MaskSpec]) -> BatchMasks:
    """Stack per-sample masks into ``(B, K)`` index tensors cut to the batch minimum.

    Args:
        specs: masks of the samples, all over the same number of tokens and with the same
            number of target blocks.

    Returns:
        The batch masks.

    Raises:
        MaskError: an empty list, differing ``total_tokens`` or differing block counts.
    """
    if not specs:
        raise MaskError("cannot stack an empty list of masks")
    totals = {s.total_tokens for s in specs}
    if len(totals) != 1:
        raise MaskError(f"masks of one batch index different token counts {sorted(totals)}")
    block_counts = {len(s.target_blocks) for s in specs}
    if len(block_counts) != 1:
        raise MaskError(f"masks of one batch have different numbers of target blocks {sorted(block_counts)}")

    def cut(rows: list[torch.Tensor]) -> torch.Tensor:
        keep = min(r.numel() for r in rows)
        return torch.stack([r[:keep] for r in rows])  # (B, keep)

    blocks = tuple(cut([s.target_blocks[i] for s in specs]) for i in range(block_counts.pop()))
    return BatchMasks(
        context=cut([s.context_indices for s in specs]),
        target=cut([s.target_indices for s in specs]),
        total_tokens=totals.pop(),
        target_blocks=blocks,
    )


def split_sample(sample: Any) -> tuple[torch.Tensor, Any]:
    """Separate the image/video tensor of a dataset item from its other fields.

    Args:
        sample: a tensor, a tuple/list whose first entry is the tensor, or a dict holding it
            under ``"image"`` or ``"video"``.

    Returns:
        ``(tensor, rest)`` with ``rest`` a tuple (tuple items), a dict (dict items) or ``()``.

    Raises:
        ShapeError: the item holds no tensor where one is expected.
    """
    if isinstance(sample, torch.Tensor):
        return sample, ()
    if isinstance(sample, Mapping):
        for key in INPUT_KEYS:
            if key in sample and isinstance(sample[key], torch.Tensor):
                return sample[key], {k: v for k, v in sample.items() if k != key}
        raise ShapeError(f"dict sample with keys {sorted(sample)} has no tensor under any of {INPUT_KEYS}")
    if isinstance(sample, Sequence) and sample and isinstance(sample[0], torch.Tensor):
        return sample[0], tuple(sample[1:])
    raise ShapeError(
        f"sample of type {type(sample).__name__} is not a tensor, a tuple starting with one, or a dict"
    )


class MaskCollator:
    """Collate images or videos and draw each sample's masks.

    Args:
        strategies: one mask generator or several (V-JEPA draws a short-range and a
            long-range mask per clip; predictors keep one mask token per generator).
        validate: check every drawn mask with :meth:`MaskSpec.validate`.

    Example:
        >>> collate = MaskCollator(MultiBlock2D((14, 14)))
        >>> batch = collate(samples, torch.Generator().manual_seed(0))
        >>> ctx = apply_masks(tokens, batch.masks[0].context)
    """

    def __init__(self, strategies: MaskStrategy | Sequence[MaskStrategy], validate: bool = True) -> None:
        self.strategies = [strategies] if isinstance(strategies, MaskStrategy) else list(strategies)
        if not self.strategies:
            raise MaskError("MaskCollator needs at least one mask strategy")
        self.validate = validate

    def __call__(self, samples: Sequence[Any], generator: torch.Generator | None) -> MaskedBatch:
        """Collate ``samples`` and draw their masks.

        Args:
            samples: dataset items (see :func:`split_sample`), all of the same kind and shape.
            generator: source of every random choice (``None``: torch's global generator).

        Returns:
            The batch.

        Raises:
            ShapeError: an empty batch, or items whose tensors differ in shape.
            MaskError: a drawn mask is invalid (with ``validate``).
        """
        if not samples:
            raise ShapeError("cannot collate an empty list of samples")
        tensors, rests = zip(*(split_sample(s) for s in samples))
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) != 1:
            raise ShapeError(f"samples of one batch must share a shape, got {sorted(shapes)}")
        masks = []
        for strategy in self.strategies:
            specs = strategy.sample_batch(len(samples), generator)
            if self.validate:
                for spec in specs:
                    spec.validate()
            masks.append(stack_masks(specs))
        first = rests[0]
        if isinstance(first, dict):
            extras: tuple | dict = {k: default_collate([r[k] for r in rests]) for k in first}
        else:
            extras = tuple(default_collate(list(column)) for column in zip(*rests))
        return MaskedBatch(inputs=torch.stack(tensors), masks=masks, extras=extras)


def apply_masks(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Gather the tokens of each sample at its indices.

    Args:
        x: ``(B, N, D)`` tokens.
        indices: ``(B, K)`` integer token indices per sample.

    Returns:
        ``(B, K, D)`` with ``out[b, k] = x[b, indices[b, k]]``.

    Raises:
        ShapeError: ``x`` not 3-D, ``indices`` not 2-D integers, or differing batch sizes.
        IndexOutOfBounds: an index outside ``[0, N)``.
    """
    if x.dim() != 3:
        raise ShapeError(f"apply_masks expects tokens of shape (B, N, D), got {tuple(x.shape)}")
    if indices.dim() != 2 or indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ShapeError(
            f"apply_masks expects integer indices of shape (B, K), got {tuple(indices.shape)} {indices.dtype}"
        )
    if indices.shape[0] != x.shape[0]:
        raise ShapeError(f"indices {tuple(indices.shape)} and tokens {tuple(x.shape)} differ in batch size")
    n = x.shape[1]
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
        raise IndexOutOfBounds(
            f"indices span [{int(indices.min())}, {int(indices.max())}], outside [0, {n}) for {n} tokens"
        )
    index = indices.long().unsqueeze(-1).expand(-1, -1, x.shape[-1])  # (B, K, D)
    return torch.gather(x, 1, index)
