"""The training loop: learning, exact resume, non-finite handling, logs, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from interrupt import interrupt_after
from torch.utils.data import IterableDataset

from mambajepa.config import load_config
from mambajepa.core import checkpoint as ck
from mambajepa.core.errors import ConfigError, TrainingDiverged
from mambajepa.core.schedules import lr_at
from mambajepa.methods.base import DataSpec, TrainOutput
from mambajepa.methods.regression import MLPRegression
from mambajepa.train.trainer import Trainer, seed_everything


def _config(**train):
    base = {
        "max_steps": 12,
        "batch_size": 8,
        "lr": 0.01,
        "warmup_steps": 2,
        "checkpoint_every": 4,
        "keep_last": 10,
        "log_every": 1,
        "progress": False,
        "plots": False,
    }
    base.update(train)
    data = {"n_train": 40, "n_val": 16}
    return load_config({"method": "mlp_regression", "train": base, "data": data, "model": {"hidden": 8}})


def _method(cfg, cls=MLPRegression):
    seed_everything(cfg.train.seed)
    return cls.from_config(cfg)


def _train(cfg, run_dir, resume=None, cls=MLPRegression):
    method = _method(cfg, cls)
    summary = Trainer(method, cfg, run_dir, resume=resume).fit()
    return method, summary


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_learns_and_writes_the_run_layout(tmp_path):
    cfg = load_config(
        "configs/debug_tiny.yaml",
        ["--train.progress=false", "--train.max_steps=120", "--train.checkpoint_every=40"],
    )
    method, summary = _train(cfg, tmp_path)
    # far below the error of predicting the mean
    assert summary["val"]["val/loss"] < 0.25 * summary["val"]["val/target_var"]
    assert (tmp_path / "config.yaml").is_file()
    assert load_config(tmp_path / "config.yaml") == cfg
    assert (tmp_path / "plots" / "loss.png").stat().st_size > 0 and (tmp_path / "plots" / "lr.png").is_file()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(10, 121, 10))
    for r in records:  # logged lr is the schedule's value of the update just done
        assert r["lr"] == pytest.approx(
            lr_at(r["step"] - 1, 120, cfg.train.lr, cfg.train.min_lr, 20, "cosine")
        )
    assert "val/loss" in records[-1] and records[-1]["samples_seen"] == 120 * 32
    # keep_last=2 plus the best evaluation
    state = ck.read_trainer_state(tmp_path / "checkpoints" / "step_120")
    kept = [p.name for p in ck.list_checkpoints(tmp_path / "checkpoints")]
    assert kept[-1] == "step_120" and len(kept) <= 3 and f"step_{state['best']['step']}" in kept
    assert ck.best_checkpoint(tmp_path).name == f"step_{state['best']['step']}"
    weights = ck.load_checkpoint_weights(tmp_path)
    for key, value in method.state_dict().items():
        assert torch.equal(weights[key], value)


@pytest.mark.parametrize("variant", [{"grad_accum": 2}, {"num_workers": 1}])
def test_resume_is_bit_identical(tmp_path, variant):
    # dropout consumes the torch RNG, so the restored RNG state matters as well as data position
    cfg = _config(**variant)
    cfg.model.dropout = 0.2
    full, _ = _train(cfg, tmp_path / "full")
    partial_dir = tmp_path / "partial"
    interrupt_after(Trainer(_method(cfg), cfg, partial_dir), 8)
    resumed, summary = _train(cfg, partial_dir, resume="auto")
    assert summary["step"] == 12
    _assert_same_weights(full, resumed)
    steps = [json.loads(line)["step"] for line in (partial_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))  # records past the checkpoint were rewritten, not duplicated


class _Stream(IterableDataset):
    def __init__(self, n: int) -> None:
        gen = torch.Generator().manual_seed(5)
        self.x = torch.randn(n, 8, generator=gen)
        self.y = torch.randn(n, 4, generator=gen)

    def __iter__(self):
        for i in range(len(self.x)):
            yield {"x": self.x[i], "y": self.y[i]}


class _StreamRegression(MLPRegression):
    def build_data(self, config):
        return DataSpec(train=_Stream(40))


def test_resume_with_an_iterable_dataset(tmp_path):
    cfg = _config(eval_every=0)
    full, _ = _train(cfg, tmp_path / "full", cls=_StreamRegression)
    trainer = Trainer(_method(cfg, _StreamRegression), cfg, tmp_path / "partial")
    interrupt_after(trainer, 8)
    resumed, _ = _train(cfg, tmp_path / "partial", resume="auto", cls=_StreamRegression)
    _assert_same_weights(full, resumed)


class _NaNAt(MLPRegression):
    nan_steps: set[int] = set()

    def training_step(self, batch, step):
        out = super().training_step(batch, step)
        if step in self.nan_steps:
            return TrainOutput(loss=out.loss * float("nan"), metrics=out.metrics)
        return out


def test_nonfinite_step_is_skipped_and_counted(tmp_path):
    _NaNAt.nan_steps = {5}
    cfg = _config(max_steps=8, checkpoint_every=0)
    method = _method(cfg, _NaNAt)
    trainer = Trainer(method, cfg, tmp_path)
    snapshots = {}
    hook = method.after_optimizer_step

    def record(step, max_steps):
        hook(step, max_steps)
        snapshots[step] = {k: v.clone() for k, v in method.state_dict().items()}

    method.after_optimizer_step = record
    summary = trainer.fit()
    assert sorted(snapshots) == [0, 1, 2, 3, 4, 6, 7]  # no update, no hook at step 5
    assert summary["nonfinite_total"] == 1 and summary["step"] == 8
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[5]["loss"] == "nan" and records[5]["nonfinite_total"] == 1
    assert records[4]["nonfinite_total"] == 0 and records[6]["loss"] != "nan"


def test_diverges_after_max_nonfinite_in_a_row(tmp_path):
    _NaNAt.nan_steps = {2, 6, 7, 8}
    cfg = _config(max_steps=12, checkpoint_every=2, max_nonfinite=3)
    method = _method(cfg, _NaNAt)
    trainer = Trainer(method, cfg, tmp_path)
    with pytest.raises(TrainingDiverged, match=r"3 non-finite .* at step 8 .*max_nonfinite=3") as err:
        trainer.fit()
    assert "step_8" in str(err.value)  # names the last good checkpoint
    kept = ck.list_checkpoints(tmp_path / "checkpoints")
    assert [p.name for p in kept] == ["step_2", "step_4", "step_6", "step_8"]
    for path in kept:
        ck.verify_checkpoint(path)
    # the checkpoint written during the NaN streak holds the weights of the last good update
    weights = ck.load_checkpoint_weights(tmp_path)
    for key, value in method.state_dict().items():
        assert torch.equal(weights[key], value)


def test_fresh_run_refuses_a_dir_with_checkpoints_and_resume_falls_back(tmp_path):
    cfg = _config(max_steps=8)
    _train(cfg, tmp_path)
    with pytest.raises(ConfigError, match="--resume auto"):
        Trainer(_method(cfg), cfg, tmp_path)
    latest = tmp_path / "checkpoints" / "step_8" / "optimizer.safetensors"
    latest.write_bytes(latest.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="skipping invalid checkpoint step_8"):
        trainer = Trainer(_method(cfg), cfg, tmp_path, resume="auto")
    assert trainer.step == 4


def test_lr_multiplier_scales_the_update(tmp_path):
    cfg = _config(max_steps=1, warmup_steps=0, grad_clip=None, weight_decay=0.0, lr_schedule="constant")
    cfg.model.head_lr_mult = 0.0
    method = _method(cfg)
    head0 = method.head.weight.detach().clone()
    body0 = method.body[0].weight.detach().clone()
    Trainer(method, cfg, tmp_path).fit()
    assert torch.equal(method.head.weight, head0)
    assert not torch.equal(method.body[0].weight, body0)


def test_bf16_autocast_and_tensorboard(tmp_path):
    cfg = _config(max_steps=6, precision="bf16", tensorboard=True, eval_every=3)
    _, summary = _train(cfg, tmp_path)
    assert summary["step"] == 6 and summary["nonfinite_total"] == 0
    assert summary["val"]["val/loss"] < summary["val"]["val/target_var"] * 2  # finite and sane
    assert any((tmp_path / "tb").glob("events.out.tfevents.*"))
