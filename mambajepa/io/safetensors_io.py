"""Reading and writing state dicts as safetensors files, atomically and with typed errors."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from mambajepa.errors import CheckpointError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync and rename.

    Args:
        path: destination file; its folder is created if needed.
        data: the bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically.

    Args:
        path: destination file.
        obj: JSON-serialisable value.
    """
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def save_state_dict(
    state: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> None:
    """Save tensors to a safetensors file atomically.

    Tensors are detached, moved to CPU and made contiguous; tensors sharing storage (tied weights)
    are written as separate copies, which safetensors requires.

    Args:
        state: name -> tensor.
        path: destination ``.safetensors`` file.
        metadata: optional string -> string header entries.

    Raises:
        CheckpointError: if a value is not a tensor.
    """
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"state entry {name!r} is a {type(value).__name__}, expected a tensor")
        tensors[name] = value.detach().to("cpu").contiguous().clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state_dict(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load every tensor of a safetensors file.

    Args:
        path: a ``.safetensors`` file.
        device: where to place the tensors.

    Returns:
        name -> tensor.

    Raises:
        CheckpointError: if the file is missing or not a valid safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no safetensors file at {path}")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            return {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read safetensors file {path}: {err}") from err


def load_sharded_state_dict(
    folder: str | os.PathLike, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Load ``model.safetensors`` of a folder, or every shard named by ``model.safetensors.index.json``.

    Args:
        folder: a Hugging Face style model folder.
        device: where to place the tensors.

    Returns:
        name -> tensor.

    Raises:
        CheckpointError: if neither file exists or a shard is unreadable.
    """
    folder = Path(folder)
    single = folder / "model.safetensors"
    if single.is_file():
        return load_state_dict(single, device)
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        raise CheckpointError(f"{folder} has neither model.safetensors nor model.safetensors.index.json")
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"malformed shard index {index}: {err}") from err
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        state.update(load_state_dict(folder / shard, device))
    return state
