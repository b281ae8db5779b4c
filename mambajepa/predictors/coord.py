"""Coordinate-conditioned heads of a neural field: a latent predictor and an INR decoder.

:class:`CoordPredictor` predicts the target encoder's embedding at query coordinates from an
encoding of the observed pixels (NF-JEPA's predictor); :class:`INRDecoder` maps a global code and
coordinates to pixel values (the implicit neural representation that reconstructs the image).

Two predictor modes:

* ``cross_attn``: each query coordinate, Fourier-embedded, cross-attends to the projected context
  tokens, then a feed-forward layer; ``depth`` such layers (queries do not see each other);
* ``pool``: the projected ``z_global`` plus the query's coordinate embedding runs through
  ``depth`` residual MLP blocks; everything the predictor knows of the image is the pooled code.

Both end in a LayerNorm and a projection to the encoder width.

Dimension legend: ``B`` batch, ``Kc`` context tokens, ``Kt`` query coordinates, ``A`` coordinate
axes, ``D`` encoder width, ``W`` predictor / decoder width, ``C`` value channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.encoders.field import FourierCoordEmbed, fourier_features
from mambajepa.nn.mlp import Mlp

__all__ = ["CoordPredictor", "CoordPredictorConfig", "INRDecoder", "INRDecoderConfig"]


@dataclass
class CoordPredictorConfig:
    """Architecture of :class:`CoordPredictor` (the encoder width comes from the method)."""

    mode: Literal["cross_attn", "pool"] = "cross_attn"  # how the queries read the context
    width: int = 96  # predictor width W
    depth: int = 3  # cross-attention + FF layers, or residual MLP blocks
    num_heads: int = 4  # attention heads (cross_attn)
    mlp_ratio: float = 4.0  # FF inner width / W
    num_freqs: int = 32  # Fourier frequencies of the query coordinates

    def validate(self) -> None:
        if self.mode not in ("cross_attn", "pool"):
            raise ConfigError(f"predictor.mode={self.mode!r}; expected 'cross_attn' or 'pool'")
        if self.width < 1 or self.depth < 1 or self.num_freqs < 1:
            raise ConfigError(
                f"need width, depth and num_freqs >= 1; got {self.width}, {self.depth}, {self.num_freqs}"
            )
        if self.mode == "cross_attn" and self.width % self.num_heads:
            raise ConfigError(f"predictor.width={self.width} is not divisible by num_heads={self.num_heads}")


@dataclass
class INRDecoderConfig:
    """Architecture of :class:`INRDecoder`."""

    hidden: int = 256  # hidden width of the MLP
    depth: int = 4  # linear layers with an activation (then one output layer)
    num_freqs: int = 32  # Fourier frequencies of the coordinates

    def validate(self) -> None:
        if self.hidden < 1 or self.depth < 1 or self.num_freqs < 1:
            raise ConfigError(
                f"need decoder hidden, depth and num_freqs >= 1; got {self.hidden}, {self.depth}, {self.num_freqs}"
            )


def _check_coords(coords: torch.Tensor, batch: int, coord_dim: int) -> None:
    if coords.ndim != 3 or coords.shape[0] != batch or coords.shape[-1] != coord_dim:
        raise ShapeError(f"coords must be ({batch}, K, {coord_dim}), got {tuple(coords.shape)}")


class _CrossAttentionLayer(nn.Module):
    """``q + Attn(LN(q), LN(ctx))`` then ``q + FF(LN(q))``."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm_q = nn.LayerNorm(width)
        self.norm_kv = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, num_heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = Mlp(width, int(width * mlp_ratio))

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(context)
        queries = queries + self.attn(self.norm_q(queries), kv, kv, need_weights=False)[0]
        return queries + self.ff(self.norm_ff(queries))


class _ResidualMlp(nn.Module):
    """``x + FF(LN(x))``."""

    def __init__(self, width: int, mlp_ratio: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.ff = Mlp(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ff(self.norm(x))


class CoordPredictor(nn.Module):
    """Predict encoder embeddings at query coordinates from an encoding of observed pixels.

    Args:
        embed_dim: encoder width D (input of the context projection, output width).
        config: the architecture.
        coord_dim: coordinate axes A.
    """

    def __init__(self, embed_dim: int, config: CoordPredictorConfig, coord_dim: int = 2):
        super().__init__()
        config.validate()
        self.config, self.embed_dim, self.coord_dim = config, embed_dim, coord_dim
        W = config.width
        self.query_embed = FourierCoordEmbed(coord_dim, W, config.num_freqs)
        self.context_proj = nn.Linear(embed_dim, W)  # the context tokens (cross_attn) or z_global (pool)
        if config.mode == "cross_attn":
            self.layers = nn.ModuleList(
                _CrossAttentionLayer(W, config.num_heads, config.mlp_ratio) for _ in range(config.depth)
            )
        else:
            self.layers = nn.ModuleList(_ResidualMlp(W, config.mlp_ratio) for _ in range(config.depth))
        self.norm = nn.LayerNorm(W)
        self.head = nn.Linear(W, embed_dim)

    @property
    def mode(self) -> str:
        """``cross_attn`` or ``pool``."""
        return self.config.mode

    def forward(self, tokens: torch.Tensor, z_global: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Predict the embeddings at ``coords``.

        Args:
            tokens: ``(B, Kc, D)`` context tokens (read by ``cross_attn``).
            z_global: ``(B, D)`` pooled context code (read by ``pool``).
            coords: ``(B, Kt, A)`` query coordinates in [-1, 1].

        Returns:
            ``(B, Kt, D)``.

        Raises:
            ShapeError: shapes that do not fit the encoder width or each other.
        """
        B = z_global.shape[0]
        if (
            z_global.shape != (B, self.embed_dim)
            or tokens.ndim != 3
            or tokens.shape[::2] != (B, self.embed_dim)
        ):
            raise ShapeError(
                f"expected tokens (B, Kc, {self.embed_dim}) and z_global (B, {self.embed_dim}), "
                f"got {tuple(tokens.shape)} and {tuple(z_global.shape)}"
            )
        _check_coords(coords, B, self.coord_dim)
        queries = self.query_embed(coords)  # (B, Kt, W)
        if self.mode == "cross_attn":
            context = self.context_proj(tokens)  # (B, Kc, W)
            for layer in self.layers:
                queries = layer(queries, context)
        else:
            queries = queries + self.context_proj(z_global).unsqueeze(1)
            for layer in self.layers:
                queries = layer(queries)
        return self.head(self.norm(queries))


class INRDecoder(nn.Module):
    """Implicit neural representation: ``(z_global, coords) -> values``.

    The code is layer-normed first (a mean-pooled code varies little between inputs; the norm puts
    its differences on the scale of the coordinate features) and concatenated with the Fourier
    features of each coordinate; an MLP of ``depth`` ``Linear + GELU`` layers and an output layer
    (no output activation: callers that need a range clamp the result) maps them to values.

    Args:
        latent_dim: width D of the code.
        config: the architecture.
        coord_dim: coordinate axes A.
        out_dim: value channels C.
    """

    def __init__(self, latent_dim: int, config: INRDecoderConfig, coord_dim: int = 2, out_dim: int = 3):
        super().__init__()
        config.validate()
        self.config, self.latent_dim, self.coord_dim = config, latent_dim, coord_dim
        self.norm = nn.LayerNorm(latent_dim)
        width = latent_dim + coord_dim * (1 + 2 * config.num_freqs)
        self.layers = nn.ModuleList()
        for _ in range(config.depth):
            self.layers.append(nn.Linear(width, config.hidden))
            width = config.hidden
        self.out = nn.Linear(width, out_dim)

    def forward(self, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Decode values at coordinates.

        Args:
            z: ``(B, D)`` codes.
            coords: ``(B, K, A)`` or ``(K, A)`` (shared by the batch) coordinates in [-1, 1].

        Returns:
            ``(B, K, C)``.

        Raises:
            ShapeError: shapes that do not fit.
        """
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ShapeError(f"z must be (B, {self.latent_dim}), got {tuple(z.shape)}")
        B = z.shape[0]
        if coords.ndim == 2:
            coords = coords.unsqueeze(0).expand(B, -1, -1)
        _check_coords(coords, B, self.coord_dim)
        h = fourier_features(coords, self.config.num_freqs)  # (B, K, A(1 + 2F))
        code = self.norm(z).to(h.dtype).unsqueeze(1).expand(-1, h.shape[1], -1)  # (B, K, D)
        h = torch.cat([code, h], -1)
        for layer in self.layers:
            h = F.gelu(layer(h))
        return self.out(h)
