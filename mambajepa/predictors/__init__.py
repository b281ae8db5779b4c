"""JEPA predictors: a narrow transformer and a bidirectional Mamba-3 stack over context and mask tokens."""

from __future__ import annotations

from mambajepa.predictors.base import MaskTokenPredictor, PredictorConfig
from mambajepa.predictors.mamba import MambaPredictor
from mambajepa.predictors.transformer import TransformerPredictor

__all__ = [
    "MambaPredictor",
    "MaskTokenPredictor",
    "PredictorConfig",
    "TransformerPredictor",
    "build_predictor",
]


def build_predictor(config: PredictorConfig, embed_dim: int, num_mask_tokens: int = 1) -> MaskTokenPredictor:
    """Build the predictor that ``config`` describes.

    Args:
        config: predictor architecture.
        embed_dim: encoder width D (the predictor's input and output width).
        num_mask_tokens: number of mask generators (one learned mask token each).

    Returns:
        A :class:`TransformerPredictor` or a :class:`MambaPredictor`.

    Raises:
        ConfigError: inconsistent sizes.
    """
    config.validate()
    if config.kind == "mamba":
        return MambaPredictor(
            embed_dim,
            config.embed_dim,
            config.depth,
            config.d_state,
            config.headdim,
            config.expand,
            config.d_intermediate,
            num_mask_tokens,
            config.drop_path_rate,
            config.context_pool,
        )
    return TransformerPredictor(
        embed_dim,
        config.embed_dim,
        config.depth,
        config.num_heads,
        config.mlp_ratio,
        num_mask_tokens,
        config.drop_path_rate,
        config.context_pool,
    )
