"""Encoders: the image/video ViT (V-JEPA 2 layout), VideoMamba, the Mamba-3 text encoder and
decoder, and the neural-field set encoder."""

from mambajepa.encoders.field import NeuralFieldConfig, NeuralFieldEncoder
from mambajepa.encoders.text import TextDecoder, TextDecoderConfig, TextEncoder, TextEncoderConfig
from mambajepa.encoders.videomamba import VideoMamba, VideoMambaConfig, videomamba_config
from mambajepa.encoders.vit import VisionTransformer, ViTConfig, vit_preset

__all__ = [
    "NeuralFieldConfig",
    "NeuralFieldEncoder",
    "TextDecoder",
    "TextDecoderConfig",
    "TextEncoder",
    "TextEncoderConfig",
    "ViTConfig",
    "VideoMamba",
    "VideoMambaConfig",
    "VisionTransformer",
    "videomamba_config",
    "vit_preset",
]
