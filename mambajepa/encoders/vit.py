"""Vision Transformer for images and videos in the V-JEPA 2 layout, with strict masked encoding.

An image ``(B, C, H, W)`` is a one-frame clip repeated to the tubelet depth, so images and
videos ``(B, C, T, H, W)`` share one ``Conv3d`` tubelet embedding and one token grid
``(gt, gh, gw)``. Positions are 3-axis RoPE inside attention exactly as V-JEPA 2 (see
:mod:`mambajepa.nn.rope`), or an absolute sine-cosine or learned embedding added to the tokens.

``forward(x, keep_indices)`` encodes only the kept tokens: they are embedded from their own pixels,
placed at their original grid coordinates, and attend only to one another, so hidden pixels cannot
influence the output (the strict context encoding of V-JEPA).

Parameter names equal those of the official V-JEPA 2 encoder once its wrapper prefixes are
stripped (``patch_embed.proj``, ``blocks.{i}.attn.qkv`` ..., ``norm``).

Dimension legend:
    B batch, C channels, T frames, H height, W width, gt/gh/gw token grid, N = gt·gh·gw tokens,
    K kept tokens, D width, Dh head width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.core.pretrained import PretrainedMixin
from mambajepa.nn.block import TransformerBlock, init_transformer_weights
from mambajepa.nn.patch_embed import PatchEmbed3D
from mambajepa.nn.positions import grid_coords, grid_ids, sincos_embedding
from mambajepa.nn.rope import RotaryEmbedding
from mambajepa.registry import register_model


@dataclass
class ViTConfig:
    """Architecture of :class:`VisionTransformer`."""

    img_size: int = 224  # training crop side; sizes the learned position table (RoPE/sin-cos take any size)
    num_frames: int = 16  # training frames per clip; sizes the learned position table
    patch_size: int = 16  # spatial side of a tubelet
    tubelet_size: int = 2  # frames per tubelet; images are repeated to this depth
    in_chans: int = 3  # input channels
    embed_dim: int = 768  # token width D
    depth: int = 12  # number of transformer blocks
    num_heads: int = 12  # attention heads; must divide embed_dim
    mlp_ratio: float = 4.0  # MLP inner width / D (V-JEPA 2 ViT-g: 48/11)
    qkv_bias: bool = True  # bias on the fused q/k/v projection
    norm_eps: float = 1e-6  # LayerNorm epsilon
    act: str = "gelu"  # MLP activation: gelu | gelu_tanh | silu
    pos_embed: Literal["rope", "sincos", "learned", "none"] = "rope"  # position encoding
    rope_base: float = 10000.0  # RoPE frequency base
    drop_path_rate: float = 0.0  # stochastic depth of the last block (linear from 0 over depth)
    init_std: float = 0.02  # std of the truncated-normal weight initialisation
    grad_checkpointing: bool = False  # recompute block activations in backward to save memory

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Cross-check fields.

        Raises:
            ConfigError: naming the inconsistent fields.
        """
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}")
        head_dim = self.embed_dim // self.num_heads
        if self.pos_embed == "rope" and (head_dim % 2 or head_dim < 6):
            raise ConfigError(f"pos_embed='rope' needs an even head width >= 6, got {head_dim}")
        if self.pos_embed not in ("rope", "sincos", "learned", "none"):
            raise ConfigError(f"pos_embed={self.pos_embed!r}; expected rope, sincos, learned or none")
        for name in ("img_size", "num_frames", "patch_size", "tubelet_size", "depth", "in_chans"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be positive")
        if self.img_size % self.patch_size or self.num_frames % self.tubelet_size:
            raise ConfigError(
                f"img_size={self.img_size} / num_frames={self.num_frames} are not multiples of "
                f"patch_size={self.patch_size} / tubelet_size={self.tubelet_size}"
            )
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ConfigError(f"drop_path_rate={self.drop_path_rate} must be in [0, 1)")


class VisionTransformer(PretrainedMixin, nn.Module):
    """Image and video ViT with tubelets, V-JEPA 2 RoPE and strict masked encoding.

    Args:
        config: the architecture.
    """

    config_class = ViTConfig

    def __init__(self, config: ViTConfig, device=None, dtype=None):
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        D = config.embed_dim
        self.patch_embed = PatchEmbed3D(config.in_chans, D, config.patch_size, config.tubelet_size, **factory)
        self.rope = None
        if config.pos_embed == "rope":
            self.rope = RotaryEmbedding(
                D // config.num_heads, n_axes=3, base=config.rope_base, style="vjepa2"
            )
        if config.pos_embed == "learned":
            n = math.prod(self.default_grid)
            self.pos_embed = nn.Parameter(torch.zeros(1, n, D, **factory))
            self.pos_embed._no_weight_decay = True
        rates = [config.drop_path_rate * i / max(config.depth - 1, 1) for i in range(config.depth)]
        self.blocks = nn.ModuleList(
            TransformerBlock(
                D,
                config.num_heads,
                config.mlp_ratio,
                config.qkv_bias,
                rate,
                config.norm_eps,
                config.act,
                **factory,
            )
            for rate in rates
        )
        self.norm = nn.LayerNorm(D, eps=config.norm_eps, **factory)
        self.reset_parameters()

    @property
    def embed_dim(self) -> int:
        """Token width D of the output."""
        return self.config.embed_dim

    @property
    def default_grid(self) -> tuple[int, int, int]:
        """Token grid of a training clip (``num_frames × img_size × img_size``)."""
        c = self.config
        return c.num_frames // c.tubelet_size, c.img_size // c.patch_size, c.img_size // c.patch_size

    def reset_parameters(self) -> None:
        """Truncated-normal (``init_std``) weights, zero biases, output projections scaled by depth."""
        init_transformer_weights(self, self.blocks, self.config.init_std)
        if self.config.pos_embed == "learned":
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def grid_size(self, shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int]:
        """Token grid of an input shape.

        Args:
            shape: ``(B, C, H, W)`` (one temporal token) or ``(B, C, T, H, W)`` (T a multiple of
                the tubelet depth, or 1 for a single frame).

        Returns:
            ``(gt, gh, gw)``.

        Raises:
            ShapeError: for another rank or sides that are not whole tubelets.
        """
        return self.patch_embed.input_grid(shape)

    def num_tokens(self, shape: torch.Size | tuple[int, ...]) -> int:
        """Number of tokens N of an input of ``shape`` (see :meth:`grid_size`).

        Args:
            shape: image or video shape.

        Returns:
            ``gt * gh * gw``.
        """
        return math.prod(self.grid_size(shape))

    @staticmethod
    def token_coords(ids: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """Grid coordinates of token ids (e.g. the JEPA predictor's target positions).

        Args:
            ids: integer tensor ``(...)`` of ids on ``grid``.
            grid: ``(gt, gh, gw)`` from :meth:`grid_size`.

        Returns:
            ``(..., 3)`` int64 (frame, row, col).
        """
        return grid_coords(ids, grid)

    def forward(self, x: torch.Tensor, keep_indices: torch.Tensor | None = None) -> torch.Tensor:
        """Encode an image or video, optionally only the kept tokens.

        Args:
            x: ``(B, C, H, W)`` or ``(B, C, T, H, W)`` (T a multiple of the tubelet depth, or 1).
            keep_indices: optional ``(B, K)`` int64 token ids into the grid (see :meth:`grid_size`;
                ids run frame-major, then row, then column). Only these tokens are embedded and
                attended, each at its own grid coordinates.

        Returns:
            ``(B, N, D)``, or ``(B, K, D)`` in the order of ``keep_indices``, after the final norm.

        Raises:
            ShapeError: for a malformed input or indices, or (learned positions) a grid larger
                than the training grid.
        """
        grid = self.grid_size(x.shape)
        clip = self.patch_embed.as_clip(x)  # (B, C, T, H, W)
        tokens = self.patch_embed(clip, keep_indices)  # (B, N|K, D); checks keep_indices
        if keep_indices is not None:
            keep_indices = keep_indices.long()
        ids = grid_ids(grid, device=clip.device) if keep_indices is None else keep_indices  # (N,) | (B, K)
        coords = grid_coords(ids, grid)  # (N, 3) | (B, K, 3)
        rope = self.rope(coords) if self.rope is not None else None
        if self.config.pos_embed == "sincos":
            tokens = tokens + sincos_embedding(coords, self.embed_dim).to(tokens.dtype)
        elif self.config.pos_embed == "learned":
            table_grid = self.default_grid
            if any(g > d for g, d in zip(grid, table_grid)):
                raise ShapeError(f"learned positions cover a grid of at most {table_grid}, got grid {grid}")
            t, r, c = coords.unbind(-1)
            table_ids = (t * table_grid[1] + r) * table_grid[2] + c  # ids on the training grid
            tokens = tokens + self.pos_embed[0, table_ids]  # (N, D) | (B, K, D)
        for block in self.blocks:
            if self.config.grad_checkpointing and self.training and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, rope, use_reentrant=False)
            else:
                tokens = block(tokens, rope)
        return self.norm(tokens)


def _factory(**preset):
    def build(**overrides) -> VisionTransformer:
        return VisionTransformer(ViTConfig(**{**preset, **overrides}))

    return build


_PRESETS = {
    # 32 px ShapesWorld images and clips on a CPU: 8×8 patches per frame.
    "vit_tiny_patch4": dict(img_size=32, num_frames=8, patch_size=4, embed_dim=192, depth=6, num_heads=3),
    "vit_small": dict(img_size=224, embed_dim=384, depth=12, num_heads=6),
    "vit_base": dict(img_size=224, embed_dim=768, depth=12, num_heads=12),
    "vit_l16_vjepa2": dict(img_size=256, num_frames=64, embed_dim=1024, depth=24, num_heads=16),
    "vit_h16_vjepa2": dict(img_size=256, num_frames=64, embed_dim=1280, depth=32, num_heads=16),
    "vit_g16_vjepa2": dict(
        img_size=256, num_frames=64, embed_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11
    ),
    "vit_g16_384_vjepa2": dict(
        img_size=384, num_frames=64, embed_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11
    ),
}
for _name, _preset in _PRESETS.items():
    register_model(_name, config_cls=ViTConfig)(_factory(**_preset))


def vit_preset(name: str) -> dict:
    """The architecture fields of preset ``name`` (a copy).

    Raises:
        ConfigError: for an unknown preset.
    """
    if name not in _PRESETS:
        raise ConfigError(f"unknown ViT preset {name!r} (known: {', '.join(_PRESETS)})")
    return dict(_PRESETS[name])
