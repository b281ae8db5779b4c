"""Foreign checkpoints and export: V-JEPA 2 and VideoMamba loading (through the mapping machinery
of :mod:`mambajepa.core.mapping`) and export as safetensors or in the C++ layout."""

from mambajepa.core.files import load_state_dict, save_state_dict
from mambajepa.core.mapping import CheckpointMapping, Merge, MismatchReport, load_mapped, map_state_dict
from mambajepa.core.pretrained import PretrainedMixin
from mambajepa.io.export import export_cpp, export_safetensors, read_cpp
from mambajepa.io.videomamba import build_videomamba, load_videomamba
from mambajepa.io.vjepa2 import load_vjepa2
from mambajepa.registry import load_pretrained

__all__ = [
    "CheckpointMapping",
    "build_videomamba",
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
