"""Block masking on a grid of fixed-size blocks (vision tokens of the hybrid JEPA + LM pipeline).

The patch grid is cut into blocks of ``block_size`` patches (the last row/column of blocks may
be smaller when the grid is not a multiple of the block); a random ``ratio`` of the blocks is
hidden. This is the BEiT-style block-wise masking (Bao et al., "BEiT: BERT Pre-Training of
Image Transformers", ICLR 2022) restricted to an aligned grid, with the 15 % default of the
hybrid pipeline.

Dimension legend: ``H``/``W`` patch rows/columns, ``N = H * W`` (row-major).
"""

from __future__ import annotations

import math

import torch

from mambajepa.core.errors import ConfigError
from mambajepa.masks.base import MaskStrategy, check_grid, complement, rectangle
from mambajepa.masks.spec import MaskSpec


class BlockGrid(MaskStrategy):
    """Hide a random subset of the aligned blocks of a patch grid.

    Args:
        grid: ``(H, W)`` patch grid.
        block_size: ``(bh, bw)`` patches per block.
        ratio: fraction of the blocks hidden (``int(ratio * num_blocks)``, at least one and at
            most ``num_blocks - 1``).

    Raises:
        ConfigError: ``ratio`` outside ``(0, 1)``, a bad grid or block size, or fewer than two blocks.
    """

    def __init__(
        self, grid: tuple[int, int], block_size: tuple[int, int] = (2, 2), ratio: float = 0.15
    ) -> None:
        self.height, self.width = check_grid("grid", grid, 2)
        self.block_h, self.block_w = check_grid("block_size", block_size, 2)
        if not 0.0 < ratio < 1.0:
            raise ConfigError(f"ratio={ratio} must be in (0, 1)")
        self.rows = math.ceil(self.height / self.block_h)
        self.cols = math.ceil(self.width / self.block_w)
        num_blocks = self.rows * self.cols
        if num_blocks < 2:
            raise ConfigError(
                f"block_size={block_size} leaves {num_blocks} block on grid {grid}; need at least 2"
            )
        self.num_tokens = self.height * self.width
        self.num_hidden = min(max(int(ratio * num_blocks), 1), num_blocks - 1)

    def sample(self, generator: torch.Generator) -> MaskSpec:
        """Draw one mask: ``num_hidden`` whole blocks hidden."""
        chosen = torch.randperm(self.rows * self.cols, generator=generator)[: self.num_hidden]
        pieces = []
        for block in chosen.tolist():
            top, left = (block // self.cols) * self.block_h, (block % self.cols) * self.block_w
            h, w = min(self.block_h, self.height - top), min(self.block_w, self.width - left)
            pieces.append(rectangle(top, left, h, w, self.width))
        target = torch.cat(pieces).sort().values  # (Kt,)
        return MaskSpec(complement(target, self.num_tokens), target, self.num_tokens)
