"""Neural-field set encoder: sparse ``(coordinate, value)`` observations -> tokens and a global code.

Each observation becomes one token, ``FourierCoordEmbed(coords) + value MLP(values)``; the tokens
(in the caller's order: raster order for a Mamba scan) run through ``depth`` residual blocks,
``x + Mamba(LayerNorm(x))`` or pre-norm Transformer blocks (``use_mamba=False``), and a final
LayerNorm. ``z_global`` is the mean over tokens.

With ``num_latents > 0`` learnable latent tokens are interleaved with the observations
(Mamba-GINR style): latent ``j`` follows the observation at position ``ceil((j+1)·N/M) - 1``, so
the scan writes into it a summary of every observation before it and the last latent sees them
all; the latents' outputs are returned and ``z_global`` is their mean.

Dimension legend:
    B batch, N observations, A coordinate axes (2 for images), C value channels, F frequencies,
    M latent tokens, D width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.core.pretrained import PretrainedMixin
from mambajepa.nn.block import TransformerBlock
from mambajepa.registry import register_model
from mambajepa.ssm.mamba1 import Mamba1


@dataclass
class NeuralFieldConfig:
    """Architecture of :class:`NeuralFieldEncoder` (defaults: the NF-JEPA CIFAR-10 encoder)."""

    d_model: int = 192  # token width D
    depth: int = 4  # number of blocks
    coord_dim: int = 2  # coordinate axes A, values in [-1, 1]
    value_dim: int = 3  # value channels C (RGB)
    num_freqs: int = 32  # Fourier frequencies F: sin/cos(2^k·π·c), k < F
    use_mamba: bool = True  # Mamba blocks (else Transformer blocks)
    d_state: int = 16  # Mamba state size
    d_conv: int = 4  # Mamba causal conv width
    expand: int = 2  # Mamba inner width / D
    num_heads: int = 4  # attention heads of the Transformer blocks
    mlp_ratio: float = 4.0  # MLP width / D of the Transformer blocks
    num_latents: int = 0  # learnable latent tokens interleaved with the observations (0: none)
    norm_eps: float = 1e-5  # LayerNorm epsilon

    def __post_init__(self) -> None:
        for name in ("d_model", "depth", "coord_dim", "value_dim", "num_freqs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be positive")
        if self.num_latents < 0:
            raise ConfigError(f"num_latents={self.num_latents} must be >= 0")
        if not self.use_mamba and self.d_model % self.num_heads:
            raise ConfigError(f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}")


@dataclass
class FieldEncoding:
    """Result of :meth:`NeuralFieldEncoder.forward`.

    Attributes:
        tokens: ``(B, N, D)`` observation tokens after the final norm, in input order.
        z_global: ``(B, D)`` mean of the latents when there are any, else of the tokens.
        latents: ``(B, M, D)`` latent tokens after the final norm, or None.
    """

    tokens: torch.Tensor
    z_global: torch.Tensor
    latents: torch.Tensor | None = None


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Coordinates of every pixel of a ``height x width`` image, in raster order.

    Pixel ``i`` (row ``i // width``, column ``i % width``) sits at ``(x, y)`` with ``x`` the column
    and ``y`` the row, each mapped linearly onto [-1, 1] (the first pixel at -1, the last at 1).

    Returns:
        ``(height·width, 2)``.

    Raises:
        ConfigError: a side smaller than 1.
    """
    if height < 1 or width < 1:
        raise ConfigError(f"image sides must be >= 1, got {height} x {width}")
    ys = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype) if height > 1 else torch.zeros(1)
    xs = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype) if width > 1 else torch.zeros(1)
    y, x = torch.meshgrid(ys.to(device=device, dtype=dtype), xs.to(device=device, dtype=dtype), indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=-1)


def fourier_features(coords: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """``[c, sin(2^k·π·c), cos(2^k·π·c)]`` for ``k < num_freqs``.

    Args:
        coords: ``(..., A)``.
        num_freqs: F.

    Returns:
        ``(..., A + 2·A·F)``: the coordinates, then all sines (axis-major), then all cosines.
    """
    freqs = (2.0 ** torch.arange(num_freqs, device=coords.device, dtype=torch.float32)) * math.pi  # (F,)
    angles = (coords.float().unsqueeze(-1) * freqs).flatten(-2)  # (..., A·F)
    return torch.cat([coords.float(), angles.sin(), angles.cos()], dim=-1).to(coords.dtype)


class FourierCoordEmbed(nn.Module):
    """Fourier features of coordinates followed by a two-layer MLP: ``(..., A) -> (..., D)``.

    Args:
        coord_dim: A.
        out_dim: D.
        num_freqs: F.
    """

    def __init__(self, coord_dim: int, out_dim: int, num_freqs: int = 32, device=None, dtype=None):
        super().__init__()
        self.num_freqs = num_freqs
        in_dim = coord_dim * (1 + 2 * num_freqs)
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, out_dim, device=device, dtype=dtype),
            nn.GELU(),
            nn.Linear(out_dim, out_dim, device=device, dtype=dtype),
        )

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Embed coordinates ``(..., A)`` in [-1, 1] into ``(..., D)``."""
        return self.mlp(fourier_features(coords, self.num_freqs))


class MambaFieldBlock(nn.Module):
    """``x + Mamba(LayerNorm(x))``.

    Args:
        dim: D.
        d_state, d_conv, expand: Mamba-1 sizes.
        norm_eps: LayerNorm epsilon.
    """

    def __init__(
        self, dim: int, d_state: int, d_conv: int, expand: int, norm_eps: float, device=None, dtype=None
    ):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=norm_eps, device=device, dtype=dtype)
        self.mixer = Mamba1(dim, d_state=d_state, d_conv=d_conv, expand=expand, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, D) -> (B, L, D)``, scanning in sequence order."""
        return x + self.mixer(self.norm(x))


class NeuralFieldEncoder(PretrainedMixin, nn.Module):
    """Set encoder of a neural field (NF-JEPA): observations -> :class:`FieldEncoding`.

    Args:
        config: the architecture.
        device, dtype: factory arguments.
    """

    config_class = NeuralFieldConfig

    def __init__(self, config: NeuralFieldConfig, device=None, dtype=None):
        super().__init__()
        self.config = config
        factory = {"device": device, "dtype": dtype}
        D = config.d_model
        self.coord_embed = FourierCoordEmbed(config.coord_dim, D, config.num_freqs, **factory)
        self.value_embed = nn.Sequential(
            nn.Linear(config.value_dim, D, **factory), nn.GELU(), nn.Linear(D, D, **factory)
        )
        if config.num_latents:
            self.latent_tokens = nn.Parameter(torch.randn(config.num_latents, D, **factory) * 0.02)
            self.latent_tokens._no_weight_decay = True
        if config.use_mamba:
            self.blocks = nn.ModuleList(
                MambaFieldBlock(D, config.d_state, config.d_conv, config.expand, config.norm_eps, **factory)
                for _ in range(config.depth)
            )
        else:
            self.blocks = nn.ModuleList(
                TransformerBlock(D, config.num_heads, config.mlp_ratio, norm_eps=config.norm_eps, **factory)
                for _ in range(config.depth)
            )
        self.norm = nn.LayerNorm(D, eps=config.norm_eps, **factory)

    @property
    def embed_dim(self) -> int:
        """Token width D."""
        return self.config.d_model

    def latent_slots(self, n: int) -> torch.Tensor:
        """Sequence positions of the latents among ``n`` observations: ``(M,)`` int64, increasing.

        Latent ``j`` comes right after observation ``ceil((j+1)·n/M) - 1``, so in the interleaved
        sequence it sits at that index ``+ j + 1``.
        """
        M = self.config.num_latents
        after = [math.ceil((j + 1) * n / M) - 1 for j in range(M)]
        return torch.tensor([a + j + 1 for j, a in enumerate(after)], dtype=torch.long)

    def embed(self, coords: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Observation tokens before the blocks: ``(B, N, A)``, ``(B, N, C)`` -> ``(B, N, D)``.

        Raises:
            ShapeError: shapes that do not fit the config or each other.
        """
        c = self.config
        if coords.ndim != 3 or coords.shape[-1] != c.coord_dim:
            raise ShapeError(f"coords must be (B, N, {c.coord_dim}), got {tuple(coords.shape)}")
        if values.shape != (*coords.shape[:2], c.value_dim):
            raise ShapeError(
                f"values must be (B, N, {c.value_dim}) matching coords {tuple(coords.shape)}, got {tuple(values.shape)}"
            )
        return self.coord_embed(coords) + self.value_embed(values.to(coords.dtype))

    def forward(self, coords: torch.Tensor, values: torch.Tensor) -> FieldEncoding:
        """Encode observations.

        Args:
            coords: ``(B, N, A)`` in [-1, 1], in scan order (raster order for images).
            values: ``(B, N, C)``.

        Returns:
            :class:`FieldEncoding`.

        Raises:
            ShapeError: shapes that do not fit.
        """
        tokens = self.embed(coords, values)  # (B, N, D)
        B, N, D = tokens.shape
        slots = None
        if self.config.num_latents:
            slots = self.latent_slots(N).to(tokens.device)  # (M,)
            is_latent = torch.zeros(N + len(slots), dtype=torch.bool, device=tokens.device)
            is_latent[slots] = True
            seq = tokens.new_empty(B, N + len(slots), D)  # (B, N + M, D)
            seq[:, is_latent] = self.latent_tokens.to(tokens.dtype).expand(B, -1, -1)
            seq[:, ~is_latent] = tokens
            tokens = seq
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        if slots is None:
            return FieldEncoding(tokens, tokens.mean(dim=1))
        latents = tokens[:, is_latent]  # (B, M, D)
        return FieldEncoding(tokens[:, ~is_latent], latents.mean(dim=1), latents)


@register_model("neural_field_cifar10", config_cls=NeuralFieldConfig)
def neural_field_cifar10(**overrides) -> NeuralFieldEncoder:
    """The NF-JEPA CIFAR-10 set encoder (the :class:`NeuralFieldConfig` defaults), with overrides."""
    return NeuralFieldEncoder(NeuralFieldConfig(**overrides))
