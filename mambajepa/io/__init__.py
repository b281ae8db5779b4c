"""Weights in and out: safetensors helpers, ``save_pretrained``/``from_pretrained``, the foreign
checkpoint mapping, V-JEPA 2 loading and export (safetensors or the C++ layout)."""

from mambajepa.io.export import export_cpp, export_safetensors, read_cpp
from mambajepa.io.mapping import CheckpointMapping, Merge, MismatchReport, load_mapped, map_state_dict
from mambajepa.io.pretrained import PretrainedMixin, load_pretrained
from mambajepa.io.safetensors_io import load_state_dict, save_state_dict

__all__ = [
    "CheckpointMapping",
    "Merge",
    "MismatchReport",
    "PretrainedMixin",
    "export_cpp",
    "export_safetensors",
    "load_mapped",
    "load_pretrained",
    "load_state_dict",
    "load_videomamba",
    "load_vjepa2",
    "map_state_dict",
    "read_cpp",
    "save_state_dict",
]


def __getattr__(name: str):
    # These loaders import encoders, which import this package: load them on first use to avoid a cycle.
    if name == "load_vjepa2":
        from mambajepa.io.vjepa2 import load_vjepa2

        return load_vjepa2
    if name == "load_videomamba":
        from mambajepa.io.videomamba import load_videomamba

        return load_videomamba
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
