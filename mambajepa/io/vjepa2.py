"""Load V-JEPA 2 encoders (official ``.pt`` files or Hugging Face folders) into our ViT.

Official files (``vitl.pt`` ...) are ``torch.save`` dicts with ``encoder`` / ``target_encoder``
entries whose keys carry ``module.backbone.``; their names are ours once stripped. Hugging Face
folders (``VJEPA2Model.save_pretrained``) rename the encoder (``encoder.layer.{i}.attention.query``
...) and split ``qkv`` into ``query``/``key``/``value``; the mapping below undoes both and sets the
predictor aside. Our ViT computes RoPE positions from the grid of the actual input; at the training
crop size this equals both reference implementations.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from mambajepa.core.errors import CheckpointError, ConfigError
from mambajepa.core.files import load_sharded_state_dict, load_torch_file, read_json
from mambajepa.core.mapping import CheckpointMapping, Merge, load_mapped, map_state_dict
from mambajepa.encoders.vit import VisionTransformer, ViTConfig

OFFICIAL_MAPPING = CheckpointMapping(strip_prefixes=("module.", "_orig_mod.", "backbone."))

HF_MAPPING = CheckpointMapping(
    ignore=(r"^(vjepa2\.)?predictor\.", r"^pooler\.", r"^classifier\."),
    strip_prefixes=("vjepa2.",),
    renames=(
        (r"^encoder\.embeddings\.patch_embeddings\.", "patch_embed."),
        (r"^encoder\.layer\.", "blocks."),
        (r"^encoder\.layernorm\.", "norm."),
        (r"\.attention\.", ".attn."),
    ),
    merges=(Merge(parts=("query", "key", "value"), into="qkv"),),
)

# Official files store no head count: (width, depth) -> heads of the released sizes.
_RELEASED_HEADS = {(1024, 24): 16, (1280, 32): 16, (1408, 40): 22}


def _config_from_official(state: dict[str, torch.Tensor], overrides: dict[str, Any]) -> ViTConfig:
    try:
        proj = state["patch_embed.proj.weight"]  # (D, C, t, p, p)
        fc1 = state["blocks.0.mlp.fc1.weight"]  # (mlp hidden, D)
    except KeyError as err:
        raise CheckpointError(
            f"not a V-JEPA 2 encoder state dict: no {err.args[0]!r} (keys: {list(state)[:5]} ...)"
        ) from err
    width, chans, tubelet, patch = proj.shape[0], proj.shape[1], proj.shape[2], proj.shape[3]
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    fields: dict[str, Any] = dict(
        embed_dim=width,
        depth=depth,
        in_chans=chans,
        tubelet_size=tubelet,
        patch_size=patch,
        mlp_ratio=fc1.shape[0] / width,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
        img_size=16 * patch,  # the released 256 px crop at patch 16; only metadata for RoPE
        num_frames=32 * tubelet,  # the released 64-frame clips at tubelet 2
    )
    if "num_heads" not in overrides:
        if (width, depth) not in _RELEASED_HEADS:
            raise ConfigError(
                f"cannot infer the head count of a {width}-wide, {depth}-deep encoder; pass num_heads=..."
            )
        fields["num_heads"] = _RELEASED_HEADS[(width, depth)]
    return ViTConfig(**{**fields, **overrides})


def _config_from_hf(hf: dict[str, Any], overrides: dict[str, Any]) -> ViTConfig:
    if hf.get("model_type") != "vjepa2":
        raise CheckpointError(f"config.json has model_type={hf.get('model_type')!r}, expected 'vjepa2'")
    activations = {"gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "silu": "silu"}
    act = hf.get("hidden_act", "gelu")
    if act not in activations:
        raise CheckpointError(f"unsupported hidden_act={act!r} (supported: {sorted(activations)})")
    patch = hf.get("patch_size", 16)
    if isinstance(patch, (list, tuple)):
        if len(set(patch)) != 1:
            raise CheckpointError(f"non-square patch_size={patch} is not supported")
        patch = patch[0]
    fields = dict(
        img_size=hf.get("crop_size", 256),
        num_frames=hf.get("frames_per_clip", 64),
        patch_size=patch,
        tubelet_size=hf.get("tubelet_size", 2),
        in_chans=hf.get("in_chans", 3),
        embed_dim=hf.get("hidden_size", 1024),
        depth=hf.get("num_hidden_layers", 24),
        num_heads=hf.get("num_attention_heads", 16),
        mlp_ratio=float(hf.get("mlp_ratio", 4.0)),
        qkv_bias=hf.get("qkv_bias", True),
        norm_eps=hf.get("layer_norm_eps", 1e-6),
        act=activations[act],
    )
    return ViTConfig(**{**fields, **overrides})


def load_vjepa2_state(path: str | os.PathLike, which: str = "target_encoder") -> dict[str, torch.Tensor]:
    """Read the encoder weights of an official ``.pt`` file, without mapping them.

    Args:
        path: the file.
        which: the entry to read (``"target_encoder"``, ``"encoder"``).

    Returns:
        The entry's state dict with its original keys.

    Raises:
        CheckpointError: if the file is unreadable or lacks the entry.
    """
    blob = load_torch_file(path)
    if not isinstance(blob, dict):
        raise CheckpointError(f"{path} holds a {type(blob).__name__}, expected a dict of entries")
    if which not in blob:
        raise CheckpointError(f"{path} has no entry {which!r} (entries: {', '.join(map(str, blob))})")
    state = blob[which]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"entry {which!r} of {path} is not a state dict of tensors")
    return state


def load_vjepa2(
    path: str | os.PathLike,
    which: str = "target_encoder",
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> VisionTransformer:
    """Build our ViT from V-JEPA 2 weights.

    Args:
        path: an official checkpoint file (``vitl.pt`` ...) or a Hugging Face ``VJEPA2Model``
            folder (``config.json`` + ``model.safetensors`` or its sharded index).
        which: for official files, the entry to load: ``"target_encoder"`` (used by the
            evaluations; default) or ``"encoder"``. Hugging Face folders hold one encoder; any
            other value than these two is refused.
        device: where to place the model.
        **overrides: :class:`ViTConfig` fields to set or replace (e.g. ``num_heads`` for an
            official file of unreleased size, ``img_size``, ``drop_path_rate``).

    Returns:
        The ViT in eval mode.

    Raises:
        CheckpointError: if the files are unreadable or the weights do not match (listing the
            missing, unexpected and wrongly-shaped keys).
        ConfigError: for an unknown ``which`` or an inconsistent configuration.
    """
    if which not in ("target_encoder", "encoder"):
        raise ConfigError(f"which={which!r}; expected 'target_encoder' or 'encoder'")
    path = Path(path)
    if path.is_dir():
        config = _config_from_hf(read_json(path / "config.json"), overrides)
        state, mapping = load_sharded_state_dict(path), HF_MAPPING
    elif path.is_file():
        state, mapping = load_vjepa2_state(path, which), OFFICIAL_MAPPING
        config = _config_from_official(map_state_dict(state, mapping)[0], overrides)
    else:
        raise CheckpointError(f"no V-JEPA 2 checkpoint at {path}")
    model = VisionTransformer(config)
    load_mapped(model, state, mapping, source=str(path))
    return model.to(device).eval()
