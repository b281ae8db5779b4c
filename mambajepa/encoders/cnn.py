"""A small convolutional frame encoder: one latent vector per image (world models on pixels).

``depth`` stride-2 convolutions (kernel 4, padding 1) with GroupNorm and GELU halve the image side
each time; the flattened feature map is projected to the latent width.

Dimension legend: ``B`` batch, ``S`` image side, ``C`` channels, ``Z`` latent width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.core.pretrained import PretrainedMixin
from mambajepa.registry import register_model

__all__ = ["ConvEncoder", "ConvEncoderConfig"]


@dataclass
class ConvEncoderConfig:
    """Architecture of :class:`ConvEncoder`."""

    image_size: int = 64  # side S of the input images
    in_chans: int = 3  # input channels C
    width: int = 32  # channels of the first convolution (doubling up to 4x)
    depth: int = 4  # stride-2 convolutions
    latent_dim: int = 32  # output width Z

    def __post_init__(self) -> None:
        if min(self.image_size, self.in_chans, self.width, self.depth, self.latent_dim) < 1:
            raise ConfigError(f"ConvEncoderConfig sizes must be positive, got {self}")
        if self.image_size % (2**self.depth):
            raise ConfigError(f"image_size={self.image_size} is not divisible by 2**depth={2**self.depth}")


class ConvEncoder(PretrainedMixin, nn.Module):
    """``(B, C, S, S) -> (B, Z)``.

    Args:
        config: the architecture.
    """

    config_class = ConvEncoderConfig

    def __init__(self, config: ConvEncoderConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels = config.in_chans
        for i in range(config.depth):
            out = config.width * min(2**i, 4)
            layers += [
                nn.Conv2d(channels, out, 4, stride=2, padding=1),
                nn.GroupNorm(min(8, out), out),
                nn.GELU(),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        side = config.image_size // 2**config.depth
        self.head = nn.Linear(channels * side * side, config.latent_dim)

    @property
    def embed_dim(self) -> int:
        """Latent width Z."""
        return self.config.latent_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode images ``(B, C, S, S)`` into latents ``(B, Z)``.

        Raises:
            ShapeError: inputs of another shape.
        """
        c = self.config
        if x.ndim != 4 or x.shape[1:] != (c.in_chans, c.image_size, c.image_size):
            raise ShapeError(
                f"expected images (B, {c.in_chans}, {c.image_size}, {c.image_size}), got {tuple(x.shape)}"
            )
        return self.head(self.features(x).flatten(1))


@register_model("conv_encoder_64", config_cls=ConvEncoderConfig)
def conv_encoder_64(**overrides) -> ConvEncoder:
    """The 64-px frame encoder of the Two Rooms world model (the :class:`ConvEncoderConfig` defaults)."""
    return ConvEncoder(ConvEncoderConfig(**overrides))
