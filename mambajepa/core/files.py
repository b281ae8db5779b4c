"""File readers and atomic writers: safetensors state dicts, JSON records, weights-only torch files.

Every failure is a typed error naming the file (:class:`~mambajepa.core.errors.CheckpointError`, or
the type a caller of :func:`read_json` asks for).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from mambajepa.core.errors import CheckpointError


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the body has written it, fsync it and rename it.

    The temporary file is removed if the body (or the rename) fails, so ``path`` is either the old
    file or the complete new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync and rename.

    Args:
        path: destination file; its folder is created if needed.
        data: the bytes.
    """
    with _atomic_target(Path(path)) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically.

    Args:
        path: destination file.
        obj: JSON-serialisable value.
    """
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | os.PathLike, error: type[Exception] = CheckpointError) -> Any:
    """Parse a UTF-8 JSON file (a config, an index, a checkpoint record, an annotation file).

    Args:
        path: the file.
        error: the exception type to raise (e.g. :class:`~mambajepa.core.errors.DataError` for data).

    Returns:
        The parsed value.

    Raises:
        CheckpointError: (or ``error``) naming the file when it is missing, unreadable or not
            valid JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError covers JSON and UTF-8 decoding errors
        raise error(f"{path} is not valid JSON: {err}") from err


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
    with _atomic_target(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


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


def load_torch_file(path: str | os.PathLike) -> Any:
    """Read a ``torch.save`` file with ``weights_only=True``, so reading it runs no code.

    Args:
        path: the file.

    Returns:
        The stored object (tensors, containers and numbers only), on the CPU.

    Raises:
        CheckpointError: naming the file when torch cannot read it.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # bad files raise UnpicklingError, RuntimeError, EOFError, KeyError, OSError
        raise CheckpointError(f"cannot read {path} as a weights-only torch file: {err}") from err


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
        weight_map = read_json(index)["weight_map"]
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"malformed shard index {index}: no 'weight_map' object ({err!r})") from err
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        state.update(load_state_dict(folder / shard, device))
    return state
