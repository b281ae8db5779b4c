"""Checks of a collated batch's masks against its input, before any encoder runs.

:class:`~mambajepa.masks.MaskCollator` already validates every mask it draws (on the CPU, in the
data-loader workers); these checks are for masks that come from elsewhere (hand-made batches,
tests, a method's ``debug`` mode), and they read index tensors back to the host.

Dimension legend: ``B`` batch, ``N`` tokens of the input's grid, ``K`` indices per sample.
"""

from __future__ import annotations

import torch

from mambajepa.masks.collate import BatchMasks
from mambajepa.masks.spec import (
    DuplicateIndex,
    EmptyContext,
    EmptyTarget,
    IndexOutOfBounds,
    MaskError,
    OverlappingMasks,
)

__all__ = ["check_batch_masks"]


def _check_indices(
    name: str, ids: torch.Tensor, batch: int, total: int, empty_error: type[MaskError]
) -> None:
    if ids.dim() != 2 or ids.shape[0] != batch or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise MaskError(
            f"{name} must be integer indices (B={batch}, K), got {ids.dtype} of shape {tuple(ids.shape)}"
        )
    if ids.shape[1] == 0:
        raise empty_error(f"{name} is empty (total_tokens={total})")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= total:
        raise IndexOutOfBounds(f"{name} spans [{low}, {high}], outside [0, {total}) for total_tokens={total}")
    ordered = ids.sort(dim=1).values  # (B, K)
    repeated = ordered[:, 1:] == ordered[:, :-1]  # (B, K-1)
    if repeated.any():
        row = int(repeated.any(dim=1).nonzero()[0])
        value = int(ordered[row, 1:][repeated[row]][0])
        raise DuplicateIndex(f"{name} of sample {row} repeats index {value}; each token may appear once")


def check_batch_masks(masks: list[BatchMasks], batch: int, total_tokens: int, num_generators: int) -> None:
    """Check a batch's masks against its input.

    Args:
        masks: one :class:`~mambajepa.masks.BatchMasks` per mask generator.
        batch: batch size B of the input.
        total_tokens: tokens N of the input's grid.
        num_generators: mask generators the predictor has a mask token for.

    Raises:
        MaskError: wrong number of mask sets, or masks over another token count.
        EmptyContext: a context with no index.
        EmptyTarget: a target with no index.
        IndexOutOfBounds: an index outside ``[0, N)``.
        DuplicateIndex: an index repeated within one sample's context or target.
        OverlappingMasks: a token of one sample both in its context and in its target.
    """
    if len(masks) != num_generators:
        raise MaskError(
            f"got {len(masks)} mask sets for a model trained with {num_generators} mask generator(s)"
        )
    for g, m in enumerate(masks):
        if m.total_tokens != total_tokens:
            raise MaskError(f"masks[{g}] index {m.total_tokens} tokens but the input has {total_tokens}")
        _check_indices(f"masks[{g}].context", m.context, batch, total_tokens, EmptyContext)
        targets = [("target", m.target)] + [(f"target_blocks[{i}]", b) for i, b in enumerate(m.target_blocks)]
        for name, ids in targets:
            _check_indices(f"masks[{g}].{name}", ids, batch, total_tokens, EmptyTarget)
            overlap = (m.context.unsqueeze(2) == ids.unsqueeze(1)).any(dim=2)  # (B, Kc)
            if overlap.any():
                row = int(overlap.any(dim=1).nonzero()[0])
                shared = m.context[row][overlap[row]].tolist()[:8]
                raise OverlappingMasks(
                    f"masks[{g}]: indices {shared} of sample {row} are in both the context and {name}; "
                    "they must be disjoint"
                )
