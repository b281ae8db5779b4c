"""Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``, with drop path.

Names match V-JEPA 2 / timm (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``,
``mlp.fc2``). Shapes: ``(B, N, D) -> (B, N, D)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from mambajepa.nn.attention import Attention
from mambajepa.nn.drop_path import DropPath
from mambajepa.nn.mlp import Mlp
from mambajepa.nn.rope import RopeTables


class TransformerBlock(nn.Module):
    """One pre-norm self-attention + MLP block.

    Args:
        dim: model width D.
        num_heads: attention heads.
        mlp_ratio: MLP inner width as a multiple of D (``int(D * mlp_ratio)``).
        qkv_bias: bias on the fused q/k/v projection.
        drop_path: stochastic-depth probability of both residual branches.
        norm_eps: LayerNorm epsilon (V-JEPA 2 uses 1e-6).
        act: MLP activation (see :class:`~mambajepa.nn.mlp.Mlp`).
        attn_drop: dropout on attention weights.
        proj_drop: dropout after the attention and MLP projections.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
        act: str = "gelu",
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, **factory)
        self.attn = Attention(
            dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop, **factory
        )
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps, **factory)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=act, drop=proj_drop, **factory)
        self.drop_path = DropPath(drop_path)

    def forward(
        self, x: torch.Tensor, rope: RopeTables | None = None, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Apply the block.

        Args:
            x: ``(B, N, D)``.
            rope: rotary tables for the N tokens, or None.
            attn_mask: optional attention mask (see :meth:`Attention.forward`).

        Returns:
            ``(B, N, D)``.
        """
        x = x + self.drop_path(self.attn(self.norm1(x), rope=rope, attn_mask=attn_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def init_transformer_weights(root: nn.Module, blocks: Iterable[TransformerBlock], std: float = 0.02) -> None:
    """The ViT / V-JEPA initialisation of a transformer stack, in place.

    Every ``Linear`` and ``Conv3d`` under ``root`` gets truncated-normal (``std``) weights and
    zero biases, every ``LayerNorm`` unit weights and zero biases; then the residual output
    projections (``attn.proj``, ``mlp.fc2``) of the ``l``-th block (from 1) are divided by
    ``sqrt(2 l)`` so the residual stream does not grow with depth.

    Args:
        root: the model whose modules are initialised.
        blocks: its transformer blocks, first to last.
        std: weight std (0.02 in I-JEPA / V-JEPA; small models trained briefly learn faster
            with a larger one).
    """
    for module in root.modules():
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            nn.init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for layer, block in enumerate(blocks, start=1):
        block.attn.proj.weight.data.div_(math.sqrt(2.0 * layer))
        block.mlp.fc2.weight.data.div_(math.sqrt(2.0 * layer))
