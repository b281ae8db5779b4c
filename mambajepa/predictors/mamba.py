"""A Mamba predictor: context and mask tokens scanned in grid order by bidirectional Mamba-3 blocks.

An SSM mixes tokens in sequence order, so the context tokens and the target mask tokens are
merged and sorted by their grid id (raster order of the full input: frame, row, column) before
the scan; a forward and a time-reversed Mamba-3 per block let every target read the context on
both sides of it. The outputs are put back in input order and the target slots returned.

Dimension legend: ``B`` batch, ``Kc`` context tokens, ``Kt`` target tokens, ``L = Kc + Kt``,
``Dp`` predictor width.
"""

from __future__ import annotations

import torch

from mambajepa.predictors.base import MaskTokenPredictor
from mambajepa.ssm.mixer_model import MixerModel

__all__ = ["MambaPredictor"]


class MambaPredictor(MaskTokenPredictor):
    """Mask-token predictor built from bidirectional Mamba-3 blocks.

    Args:
        embed_dim: encoder width D.
        predictor_dim: predictor width Dp.
        depth: number of bidirectional blocks.
        d_state: Mamba-3 state size per head.
        headdim: Mamba-3 head width.
        expand: Mamba-3 inner width / Dp.
        d_intermediate: gated-MLP width after each mixer (0: none).
        num_mask_tokens: one learned mask token per mask generator.
        drop_path_rate: stochastic depth of the last block (linear from 0).
        context_pool: ``"mean"`` predicts from the mean context token alone (see the base class).
    """

    def __init__(
        self,
        embed_dim: int,
        predictor_dim: int = 64,
        depth: int = 3,
        d_state: int = 16,
        headdim: int = 16,
        expand: int = 2,
        d_intermediate: int = 0,
        num_mask_tokens: int = 1,
        drop_path_rate: float = 0.0,
        context_pool: str = "none",
    ) -> None:
        super().__init__(embed_dim, predictor_dim, num_mask_tokens, context_pool)
        self.mixer = MixerModel(
            predictor_dim,
            depth,
            ssm_cfg={"layer": "Mamba3", "d_state": d_state, "headdim": headdim, "expand": expand},
            d_intermediate=d_intermediate,
            bidirectional=True,
            drop_path_rate=drop_path_rate,
        )
        torch.nn.init.trunc_normal_(self.mask_tokens, std=0.02)

    def mix(
        self,
        context: torch.Tensor,
        targets: torch.Tensor,
        context_ids: torch.Tensor,
        target_ids: torch.Tensor,
    ) -> torch.Tensor:
        """Scan ``[context; targets]`` in grid order and return the target slots ``(B, Kt, Dp)``."""
        x = torch.cat([context, targets], dim=1)  # (B, L, Dp)
        ids = torch.cat([context_ids, target_ids], dim=1)  # (B, L)
        order = ids.argsort(dim=1, stable=True)  # (B, L): slot of the i-th token in grid order
        index = order.unsqueeze(-1).expand_as(x)  # (B, L, Dp)
        y_sorted = self.mixer(inputs_embeds=torch.gather(x, 1, index))  # (B, L, Dp) in grid order
        y = torch.empty_like(y_sorted).scatter_(1, index, y_sorted)  # back to input order
        return y[:, context.shape[1] :]  # (B, Kt, Dp)
