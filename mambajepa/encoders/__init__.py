"""Encoders: the image/video ViT (V-JEPA 2 layout) and, beside it, the SSM-based encoders."""

from mambajepa.encoders.vit import VisionTransformer, ViTConfig, vit_preset

__all__ = ["ViTConfig", "VisionTransformer", "vit_preset"]
