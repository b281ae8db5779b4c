"""Export state dicts as safetensors or in the C++ layout, and read the C++ layout back.

C++ layout (a folder): one raw ``<name>.bin`` per tensor holding its values as little-endian
float32 in C (row-major) order, plus ``metadata.json`` mapping each name to
``{"path": "<name>.bin", "shape": [...], "dtype": "float32", "source_dtype": "..."}``. Paths are
relative to the folder so that it can be moved; ``source_dtype`` records the tensor's dtype
before the cast so that reading back can restore it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from mambajepa.core.errors import CheckpointError
from mambajepa.core.files import atomic_write_bytes, atomic_write_json, read_json, save_state_dict

METADATA_NAME = "metadata.json"


def export_safetensors(state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Write ``state`` to one safetensors file, atomically.

    Args:
        state: name -> tensor.
        path: destination ``.safetensors`` file.

    Returns:
        ``path``.
    """
    save_state_dict(state, path, metadata={"format": "pt"})
    return Path(path)


def export_cpp(state: Mapping[str, torch.Tensor], out_dir: str | os.PathLike) -> Path:
    """Write ``state`` in the C++ layout.

    Args:
        state: name -> tensor (any floating or integer dtype; values are cast to float32).
        out_dir: destination folder, created if needed.

    Returns:
        The path of ``metadata.json``.

    Raises:
        CheckpointError: for a name that cannot be a file name or a value that is not a tensor.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metadata = {}
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"state entry {name!r} is a {type(tensor).__name__}, expected a tensor")
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise CheckpointError(f"tensor name {name!r} cannot be used as a file name")
        array = tensor.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False)
        atomic_write_bytes(out_dir / f"{name}.bin", array.tobytes(order="C"))
        metadata[name] = {
            "path": f"{name}.bin",
            "shape": list(tensor.shape),
            "dtype": "float32",
            "source_dtype": str(tensor.dtype).removeprefix("torch."),
        }
    atomic_write_json(out_dir / METADATA_NAME, metadata)
    return out_dir / METADATA_NAME


def read_cpp(out_dir: str | os.PathLike, restore_dtype: bool = True) -> dict[str, torch.Tensor]:
    """Read a folder written by :func:`export_cpp`.

    Args:
        out_dir: the folder.
        restore_dtype: cast each tensor back to its recorded ``source_dtype``; False keeps float32.

    Returns:
        name -> tensor, in the order of ``metadata.json``.

    Raises:
        CheckpointError: for missing or malformed metadata, a missing file, or a file whose size
            does not match its recorded shape.
    """
    out_dir = Path(out_dir)
    meta_path = out_dir / METADATA_NAME
    metadata = read_json(meta_path)
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{meta_path} holds a {type(metadata).__name__}, expected a JSON object")
    state = {}
    for name, entry in metadata.items():
        try:
            rel, shape, dtype = entry["path"], [int(s) for s in entry["shape"]], entry["dtype"]
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"malformed metadata entry {name!r} in {meta_path}: {err}") from err
        if dtype != "float32":
            raise CheckpointError(f"{name!r} has dtype {dtype!r} in {meta_path}; the layout stores float32")
        file = out_dir / rel
        if not file.is_file():
            raise CheckpointError(f"{name!r}: file {file} is missing")
        expected = 4 * int(np.prod(shape, dtype=np.int64))
        if file.stat().st_size != expected:
            raise CheckpointError(
                f"{name!r}: {file} has {file.stat().st_size} bytes, expected {expected} for shape {shape}"
            )
        array = np.fromfile(file, dtype="<f4").reshape(shape)
        tensor = torch.from_numpy(array.astype(np.float32))
        source = entry.get("source_dtype")
        if restore_dtype and source:
            target = getattr(torch, source, None)
            if not isinstance(target, torch.dtype):
                raise CheckpointError(f"{name!r}: unknown source_dtype {source!r} in {meta_path}")
            tensor = tensor.to(target)
        state[name] = tensor
    return state
