"""Context/target masks for JEPA training: the mask type, its errors, strategies and collators."""

from mambajepa.masks.base import MaskStrategy
from mambajepa.masks.block import BlockGrid
from mambajepa.masks.checks import check_batch_masks
from mambajepa.masks.collate import (
    BatchMasks,
    MaskCollator,
    MaskedBatch,
    apply_masks,
    split_sample,
    stack_masks,
)
from mambajepa.masks.multiblock2d import MultiBlock2D
from mambajepa.masks.multiblock3d import MultiBlock3D, vjepa_mask_generators
from mambajepa.masks.random_tokens import RandomTokens
from mambajepa.masks.span import Span
from mambajepa.masks.spec import (
    DuplicateIndex,
    EmptyContext,
    EmptyTarget,
    IndexOutOfBounds,
    MaskError,
    MaskSpec,
    OverlappingMasks,
    mask_ratio,
)
from mambajepa.masks.tube import RandomTube

__all__ = [
    "BatchMasks",
    "BlockGrid",
    "DuplicateIndex",
    "EmptyContext",
    "EmptyTarget",
    "IndexOutOfBounds",
    "MaskCollator",
    "MaskError",
    "MaskSpec",
    "MaskStrategy",
    "MaskedBatch",
    "MultiBlock2D",
    "MultiBlock3D",
    "OverlappingMasks",
    "RandomTokens",
    "RandomTube",
    "Span",
    "apply_masks",
    "check_batch_masks",
    "mask_ratio",
    "split_sample",
    "stack_masks",
    "vjepa_mask_generators",
]
