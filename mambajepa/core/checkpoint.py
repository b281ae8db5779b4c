"""Checkpoint directories: atomic writes, integrity records, keep-last-K + best, resume lookup.

Layout of ``<run_dir>/checkpoints/step_<N>/``::

    model.safetensors       the method's state dict (every model, EMA copies, buffers)
    optimizer.safetensors   optimizer tensors, keyed "<param name>.<state key>"
    optimizer.json          optimizer non-tensor state: group names, hyper-parameters, order
    trainer.json            step, epoch, samples seen, RNG states, config hash, file sizes + sha256
    config.yaml             the resolved run config

A checkpoint is written into a hidden temp directory, every file fsynced, then renamed into
place, so a crash leaves either the previous checkpoints or a complete new one; half-written
temp directories are ignored and removed on the next save. ``trainer.json`` is written last and
records each other file's size and sha256; a checkpoint whose files do not match is skipped,
with a warning, in favour of the previous valid one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mambajepa.core.errors import CheckpointError
from mambajepa.core.files import fsync_path, read_json, save_state_dict, write_synced

__all__ = [
    "CHECKPOINT_FILES",
    "save_checkpoint",
    "list_checkpoints",
    "verify_checkpoint",
    "latest_valid_checkpoint",
    "resolve_checkpoint",
    "load_checkpoint_weights",
    "read_trainer_state",
    "read_json",
    "optimizer_state_to_files",
    "optimizer_state_from_files",
    "capture_rng_state",
    "restore_rng_state",
    "prune_checkpoints",
    "best_checkpoint",
    "load_tensors",
    "save_frozen",
    "verify_frozen",
    "is_sharded",
    "save_sharded_checkpoint",
    "load_sharded",
    "load_sharded_weights",
]

CHECKPOINT_FILES = ("model.safetensors", "optimizer.safetensors", "optimizer.json", "config.yaml")
FORMAT_VERSION = 1
_STEP_DIR = re.compile(r"^step_(\d+)$")


# ----------------------------------------------------------------------------------------------
# file helpers


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _untied(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, cloning any that share storage (safetensors refuses aliasing)."""
    out = {}
    seen: set[int] = set()
    for key, tensor in state.items():
        t = tensor.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr() if t.numel() else -len(out) - 1
        if ptr in seen:
            t = t.clone()
        seen.add(ptr)
        out[key] = t
    return out


# ----------------------------------------------------------------------------------------------
# RNG states (JSON, no pickle)


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) generator states as JSON-serialisable data."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": [int(k) for k in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [
            base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()
        ]
    return state


def _bytes_tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["kind"],
            np.asarray(npy["keys"], dtype=np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(_bytes_tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_bytes_tensor(s) for s in state["cuda"]])


# ----------------------------------------------------------------------------------------------
# optimizer state <-> (safetensors, json), keyed by parameter names


def optimizer_state_to_files(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state into named tensors and JSON metadata.

    Groups must carry ``name`` and ``param_names`` (see :func:`mambajepa.train.optim.build_optimizer`),
    so the saved state is keyed by parameter names and survives a change of parameter order.
    """
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    groups = []
    for group in sd["param_groups"]:
        names = group["param_names"]
        for idx, pname in zip(group["params"], names):
            for key, value in sd["state"].get(idx, {}).items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{pname}.{key}"] = value
                else:
                    scalars.setdefault(pname, {})[key] = value
        groups.append(
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "params"}
        )
    return _untied(tensors), {"format": FORMAT_VERSION, "param_groups": groups, "scalars": scalars}


def optimizer_state_from_files(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Load what :func:`optimizer_state_to_files` wrote into ``optimizer``.

    Raises:
        CheckpointError: groups or parameter names differ from the optimizer's (listed).
    """
    current = optimizer.state_dict()
    saved_groups = meta["param_groups"]
    cur_names = [g["name"] for g in current["param_groups"]]
    old_names = [g["name"] for g in saved_groups]
    if cur_names != old_names:
        raise CheckpointError(f"optimizer groups differ: checkpoint has {old_names}, model has {cur_names}")
    by_param: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        pname, skey = key.rsplit(".", 1)
        by_param.setdefault(pname, {})[skey] = value
    state: dict[int, dict[str, Any]] = {}
    groups = []
    for cur, old in zip(current["param_groups"], saved_groups):
        if cur["param_names"] != old["param_names"]:
            gone = sorted(set(old["param_names"]) - set(cur["param_names"]))
            new = sorted(set(cur["param_names"]) - set(old["param_names"]))
            raise CheckpointError(
                f"optimizer group {cur['name']!r} parameters differ: only in checkpoint {gone[:8]}, "
                f"only in model {new[:8]}"
            )
        for idx, pname in zip(cur["params"], cur["param_names"]):
            entry = dict(by_param.get(pname, {}))
            entry.update(meta["scalars"].get(pname, {}))
            if entry:
                state[idx] = entry
        restored = dict(old)
        restored["params"] = cur["params"]
        if "betas" in restored:
            restored["betas"] = tuple(restored["betas"])
        groups.append(restored)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ----------------------------------------------------------------------------------------------
# save


def save_checkpoint(
    ckpt_root: str | os.PathLike,
    step: int,
    model_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None,
    trainer_state: dict[str, Any],
    config_yaml: str,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Atomically write ``<ckpt_root>/step_<step>/``.

    Args:
        ckpt_root: the run's ``checkpoints`` directory (created if missing).
        step: optimizer updates done.
        model_state: the method's state dict.
        optimizer: the optimizer (``None`` writes an empty optimizer state).
        trainer_state: JSON data for ``trainer.json`` (step, epoch, RNG states, ...).
        config_yaml: the resolved config as YAML text.
        extra_files: files the method keeps beside its weights (a ``tokenizer.json``), by name;
            listed with their sha256 in ``trainer.json`` like the others.

    Returns:
        The final checkpoint directory.
    """
    root = Path(ckpt_root)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # left by a crash during an earlier save
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-step_{step}-{os.getpid()}"
    tmp.mkdir()
    save_file(_untied(model_state), str(tmp / "model.safetensors"), metadata={"format": "pt"})
    if optimizer is not None:
        opt_tensors, opt_meta = optimizer_state_to_files(optimizer)
    else:
        opt_tensors, opt_meta = {}, {"format": FORMAT_VERSION, "param_groups": [], "scalars": {}}
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"), metadata={"format": "pt"})
    # files in the temp directory need no rename of their own, only an fsync: renaming the whole
    # directory below is the atomic step
    write_synced(tmp / "optimizer.json", json.dumps(opt_meta, indent=1))
    write_synced(tmp / "config.yaml", config_yaml)
    extra = _write_extra_files(tmp, extra_files)
    for name in ("model.safetensors", "optimizer.safetensors"):
        fsync_path(tmp / name)
    return _publish(root, tmp, step, trainer_state, (*CHECKPOINT_FILES, *extra))


def _write_extra_files(folder: Path, files: dict[str, bytes] | None) -> list[str]:
    """Write a method's extra checkpoint files into ``folder``; their names, sorted."""
    names = sorted(files or {})
    for name in names:
        if (
            "/" in name
            or name in CHECKPOINT_FILES
            or name in ("trainer.json", SHARDED_DIR)
            or name.startswith(".")
        ):
            raise CheckpointError(f"extra checkpoint file name {name!r} is not a plain new file name")
        write_synced(folder / name, files[name])
    return names


def _publish(root: Path, tmp: Path, step: int, trainer_state: dict[str, Any], names: tuple[str, ...]) -> Path:
    """Record the size and sha256 of ``names`` (paths inside ``tmp``) in ``trainer.json``, written
    last, then rename ``tmp`` to ``root/step_<step>`` (replacing an earlier copy of that step)."""
    final = root / f"step_{step}"
    files = {name: {"size": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)} for name in names}
    trainer_json = {**trainer_state, "format": FORMAT_VERSION, "step": step, "files": files}
    write_synced(tmp / "trainer.json", json.dumps(trainer_json, indent=1))
    fsync_path(tmp)
    if final.exists():  # re-saving a step (e.g. after a resume): swap, then drop the old copy
        old = root / f".tmp-old-step_{step}-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    fsync_path(root)
    return final


# ----------------------------------------------------------------------------------------------
# lookup and verification


def list_checkpoints(ckpt_root: str | os.PathLike) -> list[Path]:
    """Checkpoint directories ``step_<N>`` under ``ckpt_root``, oldest first (temp dirs ignored)."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def read_trainer_state(ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """Parsed ``trainer.json`` of a checkpoint.

    Raises:
        CheckpointError: missing or unreadable.
    """
    return read_json(Path(ckpt_dir) / "trainer.json")


def verify_checkpoint(ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """Check every recorded file's size and sha256; return the trainer state.

    Raises:
        CheckpointError: a file is missing, truncated or altered (named in the message).
    """
    ckpt_dir = Path(ckpt_dir)
    state = read_trainer_state(ckpt_dir)
    files = state.get("files")
    expected = _expected_files(files)
    if not isinstance(files, dict) or not expected <= set(files):
        raise CheckpointError(
            f"{ckpt_dir}/trainer.json does not list the checkpoint files {sorted(expected)}"
        )
    for name, record in files.items():
        path = ckpt_dir / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        size = path.stat().st_size
        if size != record["size"]:
            raise CheckpointError(
                f"{path} has {size} bytes, trainer.json records {record['size']} (truncated?)"
            )
        if _sha256(path) != record["sha256"]:
            raise CheckpointError(f"{path} does not match the sha256 recorded in trainer.json (corrupt)")
    return state


def latest_valid_checkpoint(ckpt_root: str | os.PathLike) -> Path | None:
    """Newest checkpoint that passes :func:`verify_checkpoint`; warns for each newer one skipped."""
    for ckpt in reversed(list_checkpoints(ckpt_root)):
        try:
            verify_checkpoint(ckpt)
        except CheckpointError as err:
            warnings.warn(f"skipping invalid checkpoint {ckpt.name}: {err}", RuntimeWarning, stacklevel=2)
            continue
        return ckpt
    return None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A verified checkpoint directory from a checkpoint dir, a ``checkpoints`` dir or a run dir.

    Raises:
        CheckpointError: nothing valid found at ``path``.
    """
    path = Path(path)
    if (path / "trainer.json").is_file() or _STEP_DIR.match(path.name):
        verify_checkpoint(path)
        return path
    for root in (path / "checkpoints", path):
        if list_checkpoints(root):
            found = latest_valid_checkpoint(root)
            if found is None:
                raise CheckpointError(f"no valid checkpoint under {root} (all failed verification)")
            return found
    raise CheckpointError(f"no checkpoint found at {path} (expected a run dir or checkpoints/step_<N>)")


def load_checkpoint_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """State dict (``model.safetensors``) of a checkpoint, or of the latest valid one of a run dir.

    Args:
        path: a run directory, its ``checkpoints`` directory, or one ``step_<N>`` directory.

    Returns:
        Parameter/buffer name -> CPU tensor, keyed as the method's ``state_dict()``, frozen towers
        (stored once per run in ``frozen/``) included; for a sharded checkpoint, the tensors
        reassembled from every rank's shards.

    Raises:
        CheckpointError: no valid checkpoint at ``path``, or a frozen-tower file that does not match
            the checkpoint's record.
    """
    ckpt = resolve_checkpoint(path)
    if is_sharded(ckpt):
        return load_sharded_weights(ckpt)
    weights = load_tensors(ckpt / "model.safetensors")
    record = read_trainer_state(ckpt).get("frozen")
    if record is not None:  # frozen towers are stored once per run, beside the checkpoints
        weights.update(verify_frozen(ckpt.parent.parent, record))
    return weights


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file of a checkpoint.

    Raises:
        CheckpointError: the file cannot be read.
    """
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from None


def best_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint of the best evaluation (``train.best_metric``) of a run, if recorded and valid."""
    latest = latest_valid_checkpoint(Path(run_dir) / "checkpoints")
    best = read_trainer_state(latest).get("best") if latest is not None else None
    if not best:
        return None
    path = Path(run_dir) / "checkpoints" / f"step_{best['step']}"
    try:
        verify_checkpoint(path)
    except CheckpointError:
        return None
    return path


def prune_checkpoints(
    ckpt_root: str | os.PathLike, keep_last: int, keep: set[int] = frozenset()
) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints and the steps in ``keep``; return deleted."""
    ckpts = list_checkpoints(ckpt_root)
    doomed = [p for p in ckpts[: max(0, len(ckpts) - keep_last)] if int(p.name[5:]) not in keep]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


# ----------------------------------------------------------------------------------------------
# frozen towers: stored once per run


FROZEN_FILE = "frozen/model.safetensors"


def save_frozen(run_dir: str | os.PathLike, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Write the frozen modules' tensors to ``<run_dir>/frozen/model.safetensors`` (atomically).

    Returns:
        The record kept in every checkpoint's ``trainer.json``: file, size, sha256, tensor count.
    """
    path = Path(run_dir) / FROZEN_FILE
    save_state_dict(state, path)
    return {"file": FROZEN_FILE, "size": path.stat().st_size, "sha256": _sha256(path), "tensors": len(state)}


def verify_frozen(run_dir: str | os.PathLike, record: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Check the stored frozen towers against a checkpoint's record and return their tensors.

    Raises:
        CheckpointError: the file is missing or differs from the one the checkpoint was trained with.
    """
    path = Path(run_dir) / record["file"]
    if not path.is_file():
        raise CheckpointError(f"{path} (the run's frozen modules, {record['tensors']} tensors) is missing")
    if path.stat().st_size != record["size"] or _sha256(path) != record["sha256"]:
        raise CheckpointError(
            f"{path} does not match the sha256 recorded in the checkpoint: the frozen modules changed"
        )
    return load_tensors(path)


# ----------------------------------------------------------------------------------------------
# sharded checkpoints (FSDP2 through torch.distributed.checkpoint)


SHARDED_DIR = "dcp"


def is_sharded(ckpt_dir: str | os.PathLike) -> bool:
    """Whether a checkpoint holds ``torch.distributed.checkpoint`` shards instead of safetensors."""
    return (Path(ckpt_dir) / SHARDED_DIR).is_dir()


def _expected_files(files: Any) -> set[str]:
    if isinstance(files, dict) and any(name.startswith(f"{SHARDED_DIR}/") for name in files):
        return {"config.yaml", f"{SHARDED_DIR}/.metadata"}
    return set(CHECKPOINT_FILES)


def save_sharded_checkpoint(
    ckpt_root: str | os.PathLike,
    step: int,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    config_yaml: str,
    extra_files: dict[str, bytes] | None = None,
) -> Path | None:
    """Every rank writes its shards of the model and optimizer into one checkpoint (collective).

    The shards go to ``dcp/`` of a temp directory through :func:`torch.distributed.checkpoint.save`;
    rank 0 then records every file's size and sha256 in ``trainer.json`` and renames the directory
    into place, as for a single-process checkpoint. The checkpoint resumes on the same world size.

    Returns:
        The checkpoint directory on rank 0, ``None`` elsewhere.
    """
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    root = Path(ckpt_root)
    main = dist.get_rank() == 0
    tmp = root / f".tmp-step_{step}-sharded"
    if main:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    dist.barrier()
    model_state, optim_state = get_state_dict(module, optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp / SHARDED_DIR))
    dist.barrier()
    final = None
    if main:
        write_synced(tmp / "config.yaml", config_yaml)
        extra = _write_extra_files(tmp, extra_files)
        names = sorted(str(p.relative_to(tmp)) for p in (tmp / SHARDED_DIR).rglob("*") if p.is_file())
        for name in names:
            fsync_path(tmp / name)
        final = _publish(root, tmp, step, trainer_state, ("config.yaml", *extra, *names))
    dist.barrier()
    return final


def load_sharded(ckpt_dir: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Load a sharded checkpoint into an FSDP2 module and its optimizer (collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optim_state = get_state_dict(module, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(ckpt_dir / SHARDED_DIR))
    set_state_dict(module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])


def load_sharded_weights(ckpt_dir: Path) -> dict[str, torch.Tensor]:
    """The full model tensors of a sharded checkpoint, reassembled in one process (no process group).

    Keys are those of the method's ``state_dict()`` (the FSDP root's ``method.`` prefix removed).
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    reader = dcp.FileSystemReader(str(ckpt_dir / SHARDED_DIR))
    meta = reader.read_metadata().state_dict_metadata
    state = {
        key: torch.empty(m.size, dtype=m.properties.dtype)
        for key, m in meta.items()
        if key.startswith("model.") and isinstance(m, TensorStorageMetadata)
    }
    with warnings.catch_warnings():  # loading in one process is the point here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, storage_reader=reader, no_dist=True)
    prefix = "model.method."
    return {
        key[len(prefix) :] if key.startswith(prefix) else key[len("model.") :]: t for key, t in state.items()
    }
