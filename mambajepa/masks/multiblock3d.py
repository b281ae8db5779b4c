"""V-JEPA multi-block masking of a video tubelet grid.

Bardes et al., "Revisiting Feature Prediction for Learning Visual Representations from Video"
(V-JEPA, 2024), section 3.2: several spatial blocks are removed from the clip, each extended
over (by default) every frame so that the masked regions are tubes and the model cannot copy
a patch from the neighbouring frame. The context is everything left; the target is the union
of the blocks. V-JEPA uses two mask generators per clip, "short-range" (8 blocks at scale
0.15) and "long-range" (2 blocks at scale 0.7), for an average masking ratio the paper puts
near 90 % (:func:`vjepa_mask_generators`). Blocks overlap, so each generator hides less than
``num_blocks * scale``: on a 8x14x14 grid about 63 % (short) and 82 % (long) of the tokens.

Dimension legend: ``T`` frames (in tubelets), ``H``/``W`` patch rows/columns,
``N = T * H * W`` (row-major ``(T, H, W)``).
"""

from __future__ import annotations

import torch

from mambajepa.core.errors import ConfigError
from mambajepa.masks.base import MaskStrategy, block_hw, check_grid, check_range, complement, randint, uniform
from mambajepa.masks.spec import MaskError, MaskSpec


class MultiBlock3D(MaskStrategy):
    """V-JEPA spatio-temporal multi-block mask generator.

    Args:
        grid: ``(T, H, W)`` tubelet grid of the clip.
        num_blocks: number of blocks whose union is the target.
        spatial_scale: range of the fraction of the ``H x W`` frame each block covers.
        temporal_scale: range of the fraction of the ``T`` frames each block spans
            (``(1.0, 1.0)``: tubes through the whole clip).
        aspect: range of the ``h / w`` ratio of each block.
        min_keep: fewest context tokens left once the blocks are removed.
        max_tries: placements tried per sample before giving up.

    Raises:
        ConfigError: a range outside its bounds, a bad grid, or ``min_keep`` larger than the grid.
    """

    def __init__(
        self,
        grid: tuple[int, int, int],
        num_blocks: int = 8,
        spatial_scale: tuple[float, float] = (0.15, 0.15),
        temporal_scale: tuple[float, float] = (1.0, 1.0),
        aspect: tuple[float, float] = (0.75, 1.5),
        min_keep: int = 1,
        max_tries: int = 200,
    ) -> None:
        self.frames, self.height, self.width = check_grid("grid", grid, 3)
        self.num_tokens = self.frames * self.height * self.width
        if num_blocks < 1:
            raise ConfigError(f"num_blocks={num_blocks} must be at least 1")
        if not 1 <= min_keep < self.num_tokens:
            raise ConfigError(f"min_keep={min_keep} must be in [1, {self.num_tokens}) for grid {grid}")
        self.num_blocks = num_blocks
        self.spatial_scale = check_range("spatial_scale", spatial_scale, 0.0, 1.0)
        self.temporal_scale = check_range("temporal_scale", temporal_scale, 0.0, 1.0)
        self.aspect = check_range("aspect", aspect, 1e-3, 1e3)
        self.min_keep = min_keep
        self.max_tries = max_tries

    def block_size(self, generator: torch.Generator) -> tuple[int, int, int]:
        """Draw the ``(t, h, w)`` size of a block."""
        t = max(1, round(self.frames * uniform(generator, *self.temporal_scale)))
        h, w = block_hw(generator, self.spatial_scale, self.aspect, self.height, self.width)
        return min(t, self.frames), h, w

    def sample(self, generator: torch.Generator) -> MaskSpec:
        """Draw one mask (block size drawn for this sample alone)."""
        return self.sample_batch(1, generator)[0]

    def sample_batch(self, batch_size: int, generator: torch.Generator) -> list[MaskSpec]:
        """Draw one block size for the batch, then block positions per sample.

        Raises:
            MaskError: no placement left ``min_keep`` context tokens within ``max_tries``.
        """
        size = self.block_size(generator)
        return [self._place(size, generator) for _ in range(batch_size)]

    def _place(self, size: tuple[int, int, int], generator: torch.Generator) -> MaskSpec:
        t, h, w = size
        for _ in range(self.max_tries):
            hidden = torch.zeros(self.frames, self.height, self.width, dtype=torch.bool)  # (T, H, W)
            for _ in range(self.num_blocks):
                start = randint(generator, self.frames - t + 1)
                top = randint(generator, self.height - h + 1)
                left = randint(generator, self.width - w + 1)
                hidden[start : start + t, top : top + h, left : left + w] = True
            target = hidden.reshape(-1).nonzero().squeeze(1)  # (Kt,), sorted
            if self.num_tokens - target.numel() >= self.min_keep:
                return MaskSpec(complement(target, self.num_tokens), target, self.num_tokens)
        raise MaskError(
            f"no placement of {self.num_blocks} blocks of {size} on a {self.frames}x{self.height}x"
            f"{self.width} grid kept min_keep={self.min_keep} context tokens in {self.max_tries} tries"
        )


def vjepa_mask_generators(grid: tuple[int, int, int], min_keep: int = 1) -> list[MultiBlock3D]:
    """The two V-JEPA mask generators: 8 short-range blocks at 0.15, 2 long-range blocks at 0.7.

    Args:
        grid: ``(T, H, W)`` tubelet grid of the clip.
        min_keep: fewest context tokens per mask.

    Returns:
        ``[short_range, long_range]``; a collator draws one mask from each per clip.
    """
    return [
        MultiBlock3D(grid, num_blocks=8, spatial_scale=(0.15, 0.15), min_keep=min_keep),
        MultiBlock3D(grid, num_blocks=2, spatial_scale=(0.7, 0.7), min_keep=min_keep),
    ]
