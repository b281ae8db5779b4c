"""mambajepa: JEPA world models on state-space (Mamba) backbones."""

__version__ = "0.1.0"
