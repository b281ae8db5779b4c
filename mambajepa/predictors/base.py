"""What every JEPA predictor shares: mask tokens, grid positions, and the in/out projections.

A predictor receives the context encoder's tokens with their grid ids and the grid ids of the
tokens to predict. Context tokens are projected to the (narrow) predictor width; every target
slot starts as the learned mask token of its mask generator; both get a fixed sine-cosine
embedding of their grid coordinates, so the predictor knows *where* each target lies. A mixer
(transformer or bidirectional Mamba) runs over context and target slots together, and the
target slots are normed and projected back to the encoder width. With ``context_pool="mean"`` the
predictor reads one slot, the mean of the context tokens, instead of the tokens themselves, so
all it knows about the image passes through the pooled code that linear probes read.

Dimension legend: ``B`` batch, ``Kc`` context tokens, ``Kt`` target tokens, ``D`` encoder width,
``Dp`` predictor width, ``(gt, gh, gw)`` token grid.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.nn.positions import grid_coords, sincos_embedding

__all__ = ["PredictorConfig", "MaskTokenPredictor"]


@dataclass
class PredictorConfig:
    """Architecture of a JEPA predictor (the encoder width and mask-token count come from the method)."""

    kind: Literal["transformer", "mamba"] = "transformer"  # mixer over context + mask tokens
    embed_dim: int = 64  # predictor width Dp (narrower than the encoder)
    depth: int = 3  # transformer blocks or bidirectional Mamba-3 blocks
    num_heads: int = 4  # attention heads (transformer)
    mlp_ratio: float = 4.0  # MLP inner width / Dp (transformer)
    d_state: int = 16  # Mamba-3 state size per head (mamba)
    headdim: int = 16  # Mamba-3 head width (mamba)
    expand: int = 2  # Mamba-3 inner width / Dp (mamba)
    d_intermediate: int = 0  # gated-MLP width after each Mamba block, 0 for none (mamba)
    drop_path_rate: float = 0.0  # stochastic depth of the last block
    context_pool: Literal["none", "mean"] = "none"  # "mean": predict from the mean context token only

    def validate(self) -> None:
        """Cross-check fields.

        Raises:
            ConfigError: naming the inconsistent fields.
        """
        if self.embed_dim < 1 or self.depth < 1:
            raise ConfigError(f"embed_dim={self.embed_dim} and depth={self.depth} must be >= 1")
        if self.kind == "transformer" and self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}")
        if self.kind == "mamba" and (self.expand * self.embed_dim) % self.headdim:
            raise ConfigError(
                f"expand*embed_dim={self.expand * self.embed_dim} is not a multiple of headdim={self.headdim}"
            )
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ConfigError(f"drop_path_rate={self.drop_path_rate} must be in [0, 1)")


class MaskTokenPredictor(nn.Module, abc.ABC):
    """Base of the mask-token predictors; subclasses supply :meth:`mix`.

    Args:
        embed_dim: encoder width D (input and output).
        predictor_dim: predictor width Dp.
        num_mask_tokens: one learned mask token per mask generator.
    """

    def __init__(
        self, embed_dim: int, predictor_dim: int, num_mask_tokens: int = 1, context_pool: str = "none"
    ) -> None:
        super().__init__()
        if num_mask_tokens < 1:
            raise ConfigError(f"num_mask_tokens={num_mask_tokens} must be >= 1")
        if context_pool not in ("none", "mean"):
            raise ConfigError(f"context_pool={context_pool!r} must be 'none' or 'mean'")
        self.context_pool = context_pool
        self.embed_dim = embed_dim
        self.predictor_dim = predictor_dim
        self.embed = nn.Linear(embed_dim, predictor_dim)
        self.mask_tokens = nn.Parameter(torch.zeros(num_mask_tokens, predictor_dim))
        self.mask_tokens._no_weight_decay = True
        self.norm = nn.LayerNorm(predictor_dim, eps=1e-6)
        self.proj = nn.Linear(predictor_dim, embed_dim)

    @property
    def num_mask_tokens(self) -> int:
        """Number of mask generators this predictor has a token for."""
        return self.mask_tokens.shape[0]

    def _positions(self, ids: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        coords = grid_coords(ids, grid)  # (B, K, 3)
        return sincos_embedding(coords, self.predictor_dim)  # (B, K, Dp)

    @abc.abstractmethod
    def mix(
        self,
        context: torch.Tensor,
        targets: torch.Tensor,
        context_ids: torch.Tensor,
        target_ids: torch.Tensor,
    ) -> torch.Tensor:
        """Mix context and target slots and return the target slots.

        Args:
            context: ``(B, Kc, Dp)`` embedded context tokens.
            targets: ``(B, Kt, Dp)`` mask tokens at the target positions.
            context_ids: ``(B, Kc)`` grid ids of the context tokens.
            target_ids: ``(B, Kt)`` grid ids of the targets.

        Returns:
            ``(B, Kt, Dp)``.
        """

    def forward(
        self,
        context: torch.Tensor,
        context_ids: torch.Tensor,
        target_ids: torch.Tensor,
        grid: tuple[int, int, int],
        mask_index: int = 0,
    ) -> torch.Tensor:
        """Predict the encoder's tokens at ``target_ids`` from the context tokens.

        Args:
            context: ``(B, Kc, D)`` context encoder output.
            context_ids: ``(B, Kc)`` grid ids of those tokens.
            target_ids: ``(B, Kt)`` grid ids to predict.
            grid: ``(gt, gh, gw)`` token grid the ids index (row-major).
            mask_index: which mask generator drew the mask (selects the mask token).

        Returns:
            ``(B, Kt, D)`` predicted target tokens.

        Raises:
            ShapeError: mismatched batch sizes, id counts or widths, or a bad ``mask_index``.
        """
        B, Kc, D = context.shape
        if D != self.embed_dim:
            raise ShapeError(f"context width {D} != predictor's encoder width {self.embed_dim}")
        if context_ids.shape != (B, Kc) or target_ids.dim() != 2 or target_ids.shape[0] != B:
            raise ShapeError(
                f"context {tuple(context.shape)} needs context_ids (B, Kc)={(B, Kc)} and target_ids (B, Kt); "
                f"got {tuple(context_ids.shape)} and {tuple(target_ids.shape)}"
            )
        if not 0 <= mask_index < self.num_mask_tokens:
            raise ShapeError(f"mask_index={mask_index} outside [0, {self.num_mask_tokens}) mask tokens")
        Kt = target_ids.shape[1]
        if self.context_pool == "mean":
            # one summary slot without a position: everything about the targets must pass through it
            ctx = self.embed(context.mean(dim=1, keepdim=True))  # (B, 1, Dp)
            context_ids = context_ids.new_full((B, 1), -1)  # before every grid id in scan order
        else:
            ctx = self.embed(context) + self._positions(context_ids, grid).to(context.dtype)  # (B, Kc, Dp)
        tgt = self.mask_tokens[mask_index].expand(B, Kt, -1)  # (B, Kt, Dp)
        tgt = tgt + self._positions(target_ids, grid).to(tgt.dtype)
        out = self.mix(ctx, tgt, context_ids, target_ids)  # (B, Kt, Dp)
        return self.proj(self.norm(out))  # (B, Kt, D)
