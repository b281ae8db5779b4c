"""I-JEPA multi-block masking of an image patch grid.

Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture" (CVPR 2023), section 3: the predictor reconstructs ``M = 4`` rectangular target
blocks (scale 0.15-0.2 of the image, aspect ratio 0.75-1.5); the context is one large block
(scale 0.85-1.0, square) from which every target token is removed. Block sizes are drawn once
per batch so that all samples predict equally large blocks; positions differ per sample.

Dimension legend: ``H``/``W`` patch rows/columns, ``N = H * W``.
"""

from __future__ import annotations

import torch

from mambajepa.core.errors import ConfigError
from mambajepa.masks.base import MaskStrategy, block_hw, check_grid, check_range, randint, rectangle
from mambajepa.masks.spec import MaskError, MaskSpec


class MultiBlock2D(MaskStrategy):
    """I-JEPA multi-block mask generator.

    Args:
        grid: ``(H, W)`` patch grid of the image.
        num_targets: number of target blocks (4 in I-JEPA).
        target_scale: range of the area fraction of each target block.
        target_aspect: range of the ``h / w`` ratio of each target block.
        context_scale: range of the area fraction of the context block.
        context_aspect: range of the ``h / w`` ratio of the context block.
        min_keep: fewest context tokens left once the targets are removed.
        max_tries: placements tried per sample before giving up.

    Raises:
        ConfigError: a range outside its bounds, a bad grid, or ``min_keep`` larger than the grid.
    """

    def __init__(
        self,
        grid: tuple[int, int],
        num_targets: int = 4,
        target_scale: tuple[float, float] = (0.15, 0.2),
        target_aspect: tuple[float, float] = (0.75, 1.5),
        context_scale: tuple[float, float] = (0.85, 1.0),
        context_aspect: tuple[float, float] = (1.0, 1.0),
        min_keep: int = 10,
        max_tries: int = 200,
    ) -> None:
        self.height, self.width = check_grid("grid", grid, 2)
        self.num_tokens = self.height * self.width
        if num_targets < 1:
            raise ConfigError(f"num_targets={num_targets} must be at least 1")
        if not 1 <= min_keep < self.num_tokens:
            raise ConfigError(f"min_keep={min_keep} must be in [1, {self.num_tokens}) for grid {grid}")
        self.num_targets = num_targets
        self.target_scale = check_range("target_scale", target_scale, 0.0, 1.0)
        self.target_aspect = check_range("target_aspect", target_aspect, 1e-3, 1e3)
        self.context_scale = check_range("context_scale", context_scale, 0.0, 1.0)
        self.context_aspect = check_range("context_aspect", context_aspect, 1e-3, 1e3)
        self.min_keep = min_keep
        self.max_tries = max_tries

    def sample(self, generator: torch.Generator) -> MaskSpec:
        """Draw one mask (block sizes drawn for this sample alone)."""
        return self.sample_batch(1, generator)[0]

    def sample_batch(self, batch_size: int, generator: torch.Generator) -> list[MaskSpec]:
        """Draw one block size for the batch, then block positions per sample.

        Raises:
            MaskError: no placement left ``min_keep`` context tokens within ``max_tries``.
        """
        target_hw = block_hw(generator, self.target_scale, self.target_aspect, self.height, self.width)
        context_hw = block_hw(generator, self.context_scale, self.context_aspect, self.height, self.width)
        return [self._place(target_hw, context_hw, generator) for _ in range(batch_size)]

    def _random_block(self, hw: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        h, w = hw
        top = randint(generator, self.height - h + 1)
        left = randint(generator, self.width - w + 1)
        return rectangle(top, left, h, w, self.width)

    def _place(
        self, target_hw: tuple[int, int], context_hw: tuple[int, int], generator: torch.Generator
    ) -> MaskSpec:
        for _ in range(self.max_tries):
            blocks = tuple(self._random_block(target_hw, generator) for _ in range(self.num_targets))
            target = torch.unique(torch.cat(blocks))  # sorted union, (Kt,)
            context = self._random_block(context_hw, generator)
            context = context[~torch.isin(context, target)].sort().values  # (Kc,)
            if context.numel() >= self.min_keep:
                return MaskSpec(context, target, self.num_tokens, target_blocks=blocks)
        raise MaskError(
            f"no placement of {self.num_targets} target blocks of {target_hw} and a context block of "
            f"{context_hw} on a {self.height}x{self.width} grid kept min_keep={self.min_keep} context "
            f"tokens in {self.max_tries} tries; lower min_keep, num_targets or target_scale"
        )
