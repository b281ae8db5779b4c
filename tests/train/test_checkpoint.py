"""Checkpoint directories: round trip, atomicity, integrity checks, pruning, RNG states."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from mambajepa.core import checkpoint as ck
from mambajepa.core.errors import CheckpointError
from mambajepa.methods.base import ParamGroupSpec
from mambajepa.train.optim import build_optimizer, split_param_groups


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight  # tied: shares storage in the state dict
        self.register_buffer("count", torch.tensor(3))


def _trained(steps: int = 3) -> tuple[_Tied, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = _Tied()
    opt = build_optimizer(
        split_param_groups(model, [ParamGroupSpec("all", model)]), 0.1, 0.01, (0.9, 0.95), 1e-8
    )
    for _ in range(steps):
        out = model.head(model.norm(model.embed(torch.arange(10))))
        out.square().mean().backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def _save(root, step, model, opt):
    return ck.save_checkpoint(
        root, step, model.state_dict(), opt, {"rng": [ck.capture_rng_state()]}, "method: x\n"
    )


def test_rng_state_round_trip():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    state = ck.capture_rng_state()
    first = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    ck.restore_rng_state(state)
    assert (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist()) == first


def test_round_trip_weights_and_optimizer(tmp_path):
    model, opt = _trained()
    path = _save(tmp_path / "checkpoints", 3, model, opt)
    assert path.name == "step_3" and sorted(p.name for p in path.iterdir()) == sorted(
        [*ck.CHECKPOINT_FILES, "trainer.json"]
    )
    weights = ck.load_checkpoint_weights(tmp_path)  # from the run dir
    assert set(weights) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(weights[key], value), key

    # a fresh model + optimizer restored from files continues exactly like the original
    twin, twin_opt = _trained(steps=0)
    twin.load_state_dict(weights)
    ck.optimizer_state_from_files(
        twin_opt, load_file(str(path / "optimizer.safetensors")), ck.read_json(path / "optimizer.json")
    )
    for m, o in ((model, opt), (twin, twin_opt)):
        m.head(m.norm(m.embed(torch.arange(10)))).square().mean().backward()
        o.step()
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), name


def test_optimizer_mismatch_is_listed(tmp_path):
    model, opt = _trained()
    path = _save(tmp_path, 3, model, opt)
    other = nn.Sequential(nn.Linear(4, 4))
    other_opt = build_optimizer(
        split_param_groups(other, [ParamGroupSpec("all", other)]), 0.1, 0.0, (0.9, 0.9), 1e-8
    )
    with pytest.raises(CheckpointError, match="only in checkpoint"):
        ck.optimizer_state_from_files(
            other_opt, load_file(str(path / "optimizer.safetensors")), ck.read_json(path / "optimizer.json")
        )


def test_half_written_temp_dir_is_ignored_and_cleaned(tmp_path):
    model, opt = _trained()
    root = tmp_path / "checkpoints"
    _save(root, 2, model, opt)
    stale = root / ".tmp-step_4-999"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\x00" * 10)
    assert [p.name for p in ck.list_checkpoints(root)] == ["step_2"]
    assert ck.latest_valid_checkpoint(root).name == "step_2"
    _save(root, 6, model, opt)
    assert not stale.exists()
    assert [p.name for p in ck.list_checkpoints(root)] == ["step_2", "step_6"]


def test_crash_before_rename_leaves_previous_checkpoints(tmp_path, monkeypatch):
    model, opt = _trained()
    root = tmp_path / "checkpoints"
    _save(root, 2, model, opt)

    def crash(src, dst):
        raise OSError("simulated crash")

    monkeypatch.setattr(ck.os, "rename", crash)
    with pytest.raises(OSError, match="simulated"):
        _save(root, 4, model, opt)
    monkeypatch.undo()
    assert [p.name for p in ck.list_checkpoints(root)] == ["step_2"]
    ck.verify_checkpoint(root / "step_2")


@pytest.mark.parametrize("damage", ["truncate", "flip", "trainer_json", "missing"])
def test_corrupt_latest_falls_back_with_a_warning(tmp_path, damage):
    model, opt = _trained()
    root = tmp_path / "checkpoints"
    _save(root, 2, model, opt)
    latest = _save(root, 4, model, opt)
    target = latest / "model.safetensors"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:-7])
    elif damage == "flip":
        data = bytearray(target.read_bytes())
        data[-3] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "trainer_json":
        (latest / "trainer.json").write_text((latest / "trainer.json").read_text()[:40])
    else:
        (latest / "optimizer.json").unlink()
    with pytest.raises(CheckpointError):
        ck.verify_checkpoint(latest)
    with pytest.warns(RuntimeWarning, match="skipping invalid checkpoint step_4"):
        assert ck.latest_valid_checkpoint(root).name == "step_2"
    with pytest.warns(RuntimeWarning):
        assert ck.resolve_checkpoint(tmp_path) == root / "step_2"


def test_resave_same_step_and_prune_keeps_best(tmp_path):
    model, opt = _trained()
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3, 4, 5):
        _save(root, step, model, opt)
    _save(root, 5, model, opt)  # re-saving a step replaces it atomically
    ck.verify_checkpoint(root / "step_5")
    deleted = ck.prune_checkpoints(root, keep_last=2, keep={2})
    assert sorted(p.name for p in deleted) == ["step_1", "step_3"]
    assert [p.name for p in ck.list_checkpoints(root)] == ["step_2", "step_4", "step_5"]


def test_no_checkpoint_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ck.load_checkpoint_weights(tmp_path)


def test_extra_files_are_written_checksummed_and_named_safely(tmp_path):
    state = {"w": torch.ones(2)}
    path = ck.save_checkpoint(tmp_path, 1, state, None, {"step": 1}, "", {"tokenizer.json": b'{"v": 1}'})
    assert (path / "tokenizer.json").read_bytes() == b'{"v": 1}'
    assert "tokenizer.json" in ck.verify_checkpoint(path)["files"]
    (path / "tokenizer.json").write_bytes(b'{"v": 2}')
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        ck.verify_checkpoint(path)
    for bad in ("model.safetensors", "trainer.json", "../x", ".hidden"):
        with pytest.raises(CheckpointError, match="not a plain new file name"):
            ck.save_checkpoint(tmp_path, 2, state, None, {"step": 2}, "", {bad: b""})
