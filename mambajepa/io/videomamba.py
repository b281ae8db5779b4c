"""Load checkpoints in the public VideoMamba parameter naming into :class:`VideoMamba`.

The public encoder's names are ours: ``patch_embed.proj.*``, ``cls_token``, ``pos_embed``,
``temporal_pos_embedding``, ``layers.{i}.norm.weight``, ``layers.{i}.mixer.{in_proj, conv1d,
x_proj, dt_proj, A_log, D, out_proj}`` plus the backward scan's ``conv1d_b``, ``x_proj_b``,
``dt_proj_b``, ``A_b_log``, ``D_b``, the final ``norm`` (``norm_f`` in the classification
variant) and ``pool_norm``. Heads that are not part of the encoder (the classifier ``head``, the
CLIP-distillation ``clip_decoder``) are set aside on purpose; anything else that does not fit is
listed in the error. Files are ``torch.save`` dicts (read with ``weights_only=True``, unwrapped
from ``model`` / ``module`` / ``state_dict`` entries) or safetensors files.

When the checkpoint's position tables were trained at another size than the model's, they are
resized as the public loader does: ``pos_embed`` bicubically over the patch grid (the CLS row kept),
``temporal_pos_embedding`` linearly over time.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mambajepa.core.errors import CheckpointError
from mambajepa.core.files import load_state_dict, load_torch_file
from mambajepa.core.mapping import CheckpointMapping, load_mapped, map_state_dict
from mambajepa.encoders.videomamba import VideoMamba, VideoMambaConfig, videomamba_config

# Heads of the classification and CLIP-distillation models that are not the encoder.
_HEADS = (r"^head\.", r"^head_drop\.", r"^clip_decoder\.", r"^clip_(img_)?pos_embed$")

VIDEOMAMBA_MAPPING = CheckpointMapping(
    ignore=tuple(p.replace("^", r"^(module\.)?(_orig_mod\.)?") for p in _HEADS),
    strip_prefixes=("module.", "_orig_mod."),
    renames=((r"^norm_f\.", "norm."),),
)

_WRAPPERS = ("model", "module", "state_dict", "model_state")


def videomamba_mapping(prefix: str | None = None) -> CheckpointMapping:
    """The VideoMamba mapping, optionally for an encoder stored under ``prefix`` in a larger model.

    Args:
        prefix: e.g. ``"vision_encoder."`` for a UMT / video-text checkpoint: only keys under it
            are read (the rest belongs to other modules and is set aside), and it is stripped.

    Returns:
        A :class:`~mambajepa.core.mapping.CheckpointMapping`.
    """
    if not prefix:
        return VIDEOMAMBA_MAPPING
    wrapped = r"^(module\.)?(_orig_mod\.)?" + re.escape(prefix)
    heads = tuple(p.replace("^", wrapped) for p in _HEADS)
    return CheckpointMapping(
        ignore=(rf"^(?!(module\.)?(_orig_mod\.)?{re.escape(prefix)})", *heads),
        strip_prefixes=("module.", "_orig_mod.", prefix),
        renames=VIDEOMAMBA_MAPPING.renames,
    )


def read_videomamba_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a VideoMamba checkpoint file without mapping it.

    Args:
        path: a ``.safetensors`` file or a ``torch.save`` file (a state dict, or a dict holding
            one under ``model`` / ``module`` / ``state_dict`` / ``model_state``).

    Returns:
        The state dict with its original keys.

    Raises:
        CheckpointError: unreadable file or no state dict of tensors in it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no VideoMamba checkpoint at {path}")
    if path.suffix == ".safetensors":
        return load_state_dict(path)
    blob = load_torch_file(path)
    if isinstance(blob, dict):
        for key in _WRAPPERS:
            if isinstance(blob.get(key), dict):
                blob = blob[key]
                break
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        entries = ", ".join(map(str, blob)) if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(f"{path} holds no state dict of tensors (found: {entries})")
    return blob


def infer_videomamba_config(state: Mapping[str, torch.Tensor], **overrides: Any) -> VideoMambaConfig:
    """Read the architecture off a mapped VideoMamba state dict.

    Args:
        state: a state dict in our (= the public encoder's) names.
        **overrides: config fields to set (e.g. ``pool_type``, ``num_frames``, ``img_size``).

    Returns:
        The config: width, depth, patch, ``kernel_size``, channels, training size and frames,
        bidirectionality, norms and the Mamba sizes come from the tensors.

    Raises:
        CheckpointError: a tensor every VideoMamba has is missing.
    """
    try:
        proj = state["patch_embed.proj.weight"]  # (D, C, k, p, p)
        pos = state["pos_embed"]  # (1, 1 + S, D)
        temporal = state["temporal_pos_embedding"]  # (1, T/k, D)
        in_proj = state["layers.0.mixer.in_proj.weight"]  # (2E, D)
        conv = state["layers.0.mixer.conv1d.weight"]  # (E, 1, d_conv)
        A_log = state["layers.0.mixer.A_log"]  # (E, N)
        dt_proj = state["layers.0.mixer.dt_proj.weight"]  # (E, R)
    except KeyError as err:
        nested = [k[: -len(err.args[0])] for k in state if k.endswith("." + err.args[0])]
        hint = f"; the encoder seems to be stored under prefix={nested[0]!r}" if nested else ""
        raise CheckpointError(
            f"not a VideoMamba state dict: no {err.args[0]!r}{hint} (keys: {list(state)[:6]} ...)"
        ) from err
    width, channels, kernel, patch = proj.shape[0], proj.shape[1], proj.shape[2], proj.shape[3]
    side = math.isqrt(pos.shape[1] - 1)
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"layers\.(\d+)\.", k)))
    fields: dict[str, Any] = dict(
        img_size=side * patch,
        patch_size=patch,
        depth=depth,
        embed_dim=width,
        channels=channels,
        kernel_size=kernel,
        num_frames=temporal.shape[1] * kernel,
        bimamba="layers.0.mixer.A_b_log" in state,
        rms_norm="norm.bias" not in state,
        add_pool_norm="pool_norm.weight" in state,
        ssm_cfg={
            "d_state": A_log.shape[1],
            "d_conv": conv.shape[-1],
            "expand": in_proj.shape[0] // 2 // width,
            "dt_rank": dt_proj.shape[1],
            "conv_bias": "layers.0.mixer.conv1d.bias" in state,
            "bias": "layers.0.mixer.in_proj.bias" in state,
        },
    )
    return VideoMambaConfig(**{**fields, **overrides})


def resize_position_tables(
    state: dict[str, torch.Tensor], config: VideoMambaConfig
) -> dict[str, torch.Tensor]:
    """Resize ``pos_embed`` / ``temporal_pos_embedding`` of a mapped state dict to ``config``.

    Args:
        state: mapped state dict (modified copies are returned, the input is not changed).
        config: the destination architecture.

    Returns:
        The state dict with tables of the destination sizes (unchanged when they already fit).
    """
    out = dict(state)
    side = config.img_size // config.patch_size
    pos = state.get("pos_embed")
    if pos is not None and pos.ndim == 3 and pos.shape[1] != side * side + 1:
        old = math.isqrt(pos.shape[1] - 1)
        grid = pos[:, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)  # (1, D, old, old)
        grid = F.interpolate(grid.float(), size=(side, side), mode="bicubic", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, side * side, -1).to(pos.dtype)  # (1, S, D)
        out["pos_embed"] = torch.cat([pos[:, :1], grid], dim=1)
    temporal = state.get("temporal_pos_embedding")
    if temporal is not None and temporal.ndim == 3 and temporal.shape[1] != config.table_frames:
        line = temporal.permute(0, 2, 1).float()  # (1, D, T/k)
        line = F.interpolate(line, size=(config.table_frames,), mode="linear", align_corners=False)
        out["temporal_pos_embedding"] = line.permute(0, 2, 1).to(temporal.dtype)  # (1, T'/k, D)
    return out


def load_videomamba(
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    config: Any = None,
    device: str | torch.device = "cpu",
    prefix: str | None = None,
    **overrides: Any,
) -> VideoMamba:
    """Build a :class:`VideoMamba` from weights in the public VideoMamba naming.

    Args:
        source: a checkpoint file (see :func:`read_videomamba_file`) or a state dict.
        config: the architecture (anything :func:`~mambajepa.encoders.videomamba.videomamba_config`
            accepts); None reads it off the weights (:func:`infer_videomamba_config`).
        device: where to place the model.
        prefix: read only the encoder stored under this key prefix (e.g. ``"vision_encoder."``).
        **overrides: config fields to set or replace (e.g. ``pool_type``, ``num_frames``).

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: unreadable file, or keys that do not fit (every missing, unexpected and
            wrongly-shaped key is listed).
        ConfigError: inconsistent configuration.
    """
    name = "state dict" if isinstance(source, Mapping) else str(source)
    state = dict(source) if isinstance(source, Mapping) else read_videomamba_file(source)
    mapping = videomamba_mapping(prefix)
    mapped, _ = map_state_dict(state, mapping)
    if config is None:
        cfg = infer_videomamba_config(mapped, **overrides)
    else:
        cfg = videomamba_config(config)
        if overrides:
            cfg = VideoMambaConfig(**{**vars(cfg), **overrides})
    cfg = VideoMambaConfig(**{**vars(cfg), "pretrained": None})
    model = VideoMamba(cfg)
    load_mapped(model, resize_position_tables(mapped, cfg), CheckpointMapping(strip_prefixes=()), source=name)
    return model.to(device).eval()


def build_videomamba(config: Any, device: str | torch.device = "cpu") -> VideoMamba:
    """Build a VideoMamba from a configuration, loading ``pretrained`` weights if it names a file.

    Args:
        config: see :func:`videomamba_config` (e.g. ``SimpleNamespace(vision_encoder=...)``).
        device: where to place the model.

    Returns:
        The model (in eval mode when weights were loaded, else in training mode).

    Raises:
        ConfigError: for bad configuration fields.
        CheckpointError: if the pretrained weights do not match (every key listed).
    """
    cfg = videomamba_config(config)
    if cfg.pretrained is None:
        return VideoMamba(cfg).to(device)
    return load_videomamba(cfg.pretrained, config=cfg, device=device)
