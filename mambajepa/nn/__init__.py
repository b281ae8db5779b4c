"""Shared layers: SDPA attention with RoPE, rotary and absolute positions, MLP, drop path,
tubelet embedding and the pre-norm transformer block."""

from mambajepa.nn.attention import Attention, attention_reference
from mambajepa.nn.block import TransformerBlock, init_transformer_weights
from mambajepa.nn.drop_path import DropPath, drop_path
from mambajepa.nn.mlp import Mlp
from mambajepa.nn.patch_embed import PatchEmbed3D
from mambajepa.nn.positions import grid_coords, grid_ids, sincos_embedding
from mambajepa.nn.rope import RopeTables, RotaryEmbedding, rotate_halves, rotate_pairs

__all__ = [
    "Attention",
    "DropPath",
    "Mlp",
    "PatchEmbed3D",
    "RopeTables",
    "RotaryEmbedding",
    "TransformerBlock",
    "attention_reference",
    "drop_path",
    "grid_coords",
    "grid_ids",
    "init_transformer_weights",
    "rotate_halves",
    "rotate_pairs",
    "sincos_embedding",
]
