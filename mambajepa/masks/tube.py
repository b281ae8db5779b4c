"""Random tube masking of a video tubelet grid.

Tong et al., "VideoMAE: Masked Autoencoders are Data-Efficient Learners for Self-Supervised
Video Pre-Training" (NeurIPS 2022), section 3.3: a random set of spatial positions is hidden
in every frame, so each hidden position is a tube through time and no frame leaks it.

Dimension legend: ``T`` frames (in tubelets), ``H``/``W`` patch rows/columns,
``N = T * H * W`` (row-major ``(T, H, W)``).
"""

from __future__ import annotations

import torch

from mambajepa.core.errors import ConfigError
from mambajepa.masks.base import MaskStrategy, check_grid, complement
from mambajepa.masks.spec import MaskSpec


class RandomTube(MaskStrategy):
    """Hide the same random spatial positions in every frame.

    Args:
        grid: ``(T, H, W)`` tubelet grid of the clip.
        ratio: fraction of the ``H * W`` positions hidden (rounded, at least one and at most
            ``H * W - 1``).

    Raises:
        ConfigError: ``ratio`` outside ``(0, 1)`` or a bad grid.
    """

    def __init__(self, grid: tuple[int, int, int], ratio: float = 0.9) -> None:
        self.frames, self.height, self.width = check_grid("grid", grid, 3)
        if not 0.0 < ratio < 1.0:
            raise ConfigError(f"ratio={ratio} must be in (0, 1)")
        spatial = self.height * self.width
        if spatial < 2:
            raise ConfigError(f"grid={grid} needs at least 2 spatial positions to hide some and keep some")
        self.num_tokens = self.frames * spatial
        self.num_hidden = min(max(round(ratio * spatial), 1), spatial - 1)

    def sample(self, generator: torch.Generator) -> MaskSpec:
        """Draw one mask: ``num_hidden`` spatial positions, hidden in all ``T`` frames."""
        spatial = self.height * self.width
        positions = torch.randperm(spatial, generator=generator)[: self.num_hidden]  # (S,)
        frame_offsets = torch.arange(self.frames).unsqueeze(1) * spatial  # (T, 1)
        target = (frame_offsets + positions.unsqueeze(0)).reshape(-1).sort().values  # (T*S,)
        return MaskSpec(complement(target, self.num_tokens), target, self.num_tokens)
