"""Mamba3-JEPA (VL-JEPA on Mamba-3): the model, its two-stage training method and selective decoding."""

from mambajepa.methods.vljepa.method import (
    VLJEPA,
    VLBatch,
    VLCollate,
    VLJEPAConfig,
    load_x_encoder,
    model_from_run,
)
from mambajepa.methods.vljepa.model import (
    Mamba3DecoderConfig,
    Mamba3Jepa,
    Mamba3JepaConfig,
    Mamba3Predictor,
    Mamba3PredictorConfig,
    Mamba3TextEncoderConfig,
    VitConfig,
    VLJEPAOutput,
)

__all__ = [
    "VLJEPA",
    "Mamba3DecoderConfig",
    "Mamba3Jepa",
    "Mamba3JepaConfig",
    "Mamba3Predictor",
    "Mamba3PredictorConfig",
    "Mamba3TextEncoderConfig",
    "VLBatch",
    "VLCollate",
    "VLJEPAConfig",
    "VLJEPAOutput",
    "VitConfig",
    "load_x_encoder",
    "model_from_run",
]
