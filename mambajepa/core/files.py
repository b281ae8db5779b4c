"""File readers and atomic writers: safetensors state dicts, JSON records, weights-only torch files.

Every file the package writes outside a checkpoint's temp directory goes through
:func:`atomic_path` (or the ``atomic_write_*`` helpers on top of it), so no reader ever sees a
half-written file and a failed write leaves the previous one in place.

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


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file, or a folder's entries, to disk.

    Args:
        path: a file or a directory. On Windows, where a directory cannot be opened, directories
            are left to the file system.
    """
    if not os.path.isdir(path):
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())
        return
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` in place and fsync it, with no rename.

    For files inside a folder that is itself renamed into place once complete (a checkpoint's
    temp directory): the folder rename is the atomic step. Anywhere else use :func:`atomic_path`.

    Args:
        path: destination file.
        data: bytes, or text written as UTF-8.
    """
    with open(path, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` for the body to write; then publish it.

    On success the temporary file is fsynced, renamed over ``path`` and the folder is fsynced, so
    ``path`` is either the old file or the complete new one, also after a crash. If the body (or
    the rename) raises, the temporary file is removed and ``path`` is left untouched. Every call
    gets its own temporary name, so concurrent writers never write into the same temporary file.

    Example::

        with atomic_path(run_dir / "model.safetensors") as tmp:
            save_file(tensors, str(tmp))

    Args:
        path: destination file; its folder is created if needed.

    Yields:
        The temporary path (an empty file already exists there).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)  # makes the rename itself durable


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`).

    Args:
        path: destination file; its folder is created if needed.
        data: the bytes.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_path`).

    Args:
        path: destination file; its folder is created if needed.
        text: the content.
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (see :func:`atomic_path`).

    Args:
        path: destination file.
        obj: JSON-serialisable value.
    """
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


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
    with atomic_path(path) as tmp:
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
