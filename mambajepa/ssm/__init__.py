"""State-space layers: Mamba-1/2/3 mixers, scans, blocks, bidirectional wrappers, stacks, LM head.

Every mixer follows one contract (``y = layer(x)``, ``layer(x, state=s, return_state=True)``,
``layer.step(x_t, s)``, ``layer.init_state(batch_size)``); the scan implementation is chosen by
:func:`mambajepa.ssm.dispatch.resolve_impl`.
"""

from mambajepa.nn.drop_path import DropPath
from mambajepa.ssm.bimamba import Bidirectional, BiMamba
from mambajepa.ssm.block import Block, GatedMLP
from mambajepa.ssm.dispatch import resolve_impl
from mambajepa.ssm.lm import LMOutput, MambaLMConfig, MambaLMHeadModel
from mambajepa.ssm.mamba1 import Mamba1, Mamba1State
from mambajepa.ssm.mamba2 import Mamba2, Mamba2State
from mambajepa.ssm.mixer_model import MixerModel, MixerState, make_mixer_cls, mixer_class
from mambajepa.ssm.norm import RMSNorm, RMSNormGated

__all__ = [
    "BiMamba",
    "Bidirectional",
    "Block",
    "DropPath",
    "GatedMLP",
    "LMOutput",
    "Mamba1",
    "Mamba1State",
    "Mamba2",
    "Mamba2State",
    "Mamba3",
    "MambaLMConfig",
    "MambaLMHeadModel",
    "MixerModel",
    "MixerState",
    "RMSNorm",
    "RMSNormGated",
    "make_mixer_cls",
    "mixer_class",
    "resolve_impl",
]


def __getattr__(name: str):
    # Mamba-3 lives in its own module and is imported on first use
    if name in ("Mamba3", "Mamba3State"):
        from mambajepa.ssm import mamba3

        return getattr(mamba3, name)
    raise AttributeError(f"module 'mambajepa.ssm' has no attribute {name!r}")
