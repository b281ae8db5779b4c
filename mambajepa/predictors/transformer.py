"""The I-JEPA / V-JEPA transformer predictor: narrow self-attention over context and mask tokens.

Assran et al. (I-JEPA, 2023) and Bardes et al. (V-JEPA, 2024): the predictor is a thin ViT that
reads the context tokens together with one mask token per target position and returns its
outputs at the mask tokens. Positions come from :class:`~mambajepa.predictors.base.MaskTokenPredictor`.

Dimension legend: ``B`` batch, ``Kc`` context tokens, ``Kt`` target tokens, ``Dp`` predictor width.
"""

from __future__ import annotations

import torch
from torch import nn

from mambajepa.nn.block import TransformerBlock, init_transformer_weights
from mambajepa.predictors.base import MaskTokenPredictor

__all__ = ["TransformerPredictor"]


class TransformerPredictor(MaskTokenPredictor):
    """Mask-token predictor built from pre-norm transformer blocks.

    Args:
        embed_dim: encoder width D.
        predictor_dim: predictor width Dp.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP inner width / Dp.
        num_mask_tokens: one learned mask token per mask generator.
        drop_path_rate: stochastic depth of the last block (linear from 0).
        context_pool: ``"mean"`` predicts from the mean context token alone (see the base class).
    """

    def __init__(
        self,
        embed_dim: int,
        predictor_dim: int = 64,
        depth: int = 3,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        num_mask_tokens: int = 1,
        drop_path_rate: float = 0.0,
        context_pool: str = "none",
    ) -> None:
        super().__init__(embed_dim, predictor_dim, num_mask_tokens, context_pool)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            TransformerBlock(predictor_dim, num_heads, mlp_ratio, drop_path=r) for r in rates
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The ViT initialisation (see :func:`init_transformer_weights`), then the mask tokens."""
        init_transformer_weights(self, self.blocks)
        nn.init.trunc_normal_(self.mask_tokens, std=0.02)

    def mix(
        self,
        context: torch.Tensor,
        targets: torch.Tensor,
        context_ids: torch.Tensor,
        target_ids: torch.Tensor,
    ) -> torch.Tensor:
        """Attend over ``[context; targets]`` and return the target slots ``(B, Kt, Dp)``."""
        x = torch.cat([context, targets], dim=1)  # (B, Kc + Kt, Dp)
        for block in self.blocks:
            x = block(x)
        return x[:, context.shape[1] :]  # (B, Kt, Dp)
