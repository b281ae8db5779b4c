"""Stages: resolution, per-stage schedules, batches, data, loss weights, freezing, token lengths,
frozen towers stored once per run, and exact resume inside and between stages."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from interrupt import interrupt_after
from safetensors.torch import load_file

from mambajepa.config import load_config
from mambajepa.core import checkpoint as ck
from mambajepa.core.errors import CheckpointError, ConfigError
from mambajepa.core.schedules import lr_at
from mambajepa.methods.base import TrainOutput
from mambajepa.methods.regression import MLPRegression
from mambajepa.train.logging import read_metrics, stage_boundaries
from mambajepa.train.stages import resolve_stages
from mambajepa.train.trainer import Trainer, seed_everything

TRAIN = {"batch_size": 8, "lr": 0.01, "min_lr": 0.001, "log_every": 1, "progress": False, "plots": False}
STAGES = [
    {"name": "first", "steps": 6, "warmup": 2, "freeze": ["head"]},
    {"name": "second", "steps": 5, "lr": 0.003, "min_lr": 0.0, "batch_size": 16, "grad_accum": 2,
     "data": {"noise": 0.05}},
]  # fmt: skip


def _config(stages=STAGES, **train):
    data = {
        "method": "mlp_regression",
        "train": {**TRAIN, "checkpoint_every": 2, "keep_last": 20, **train},
        "data": {"n_train": 64, "n_val": 16},
        "model": {"hidden": 8, "dropout": 0.2},
        "stages": stages,
    }
    return load_config(data)


def _method(cfg, cls=MLPRegression):
    seed_everything(cfg.train.seed)
    return cls.from_config(cfg)


def _fit(cfg, run_dir, resume=None, cls=MLPRegression):
    method = _method(cfg, cls)
    trainer = Trainer(method, cfg, run_dir, resume=resume)
    return method, trainer, trainer.fit()


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_resolution_takes_unset_fields_from_train():
    cfg = _config(warmup_steps=1, max_tokens=1000)
    stages = resolve_stages(
        _config([{"name": "a", "steps": 4}, {"name": "b", "fraction": 0.25}, {"tokens": 10}], max_tokens=1000)
    )
    assert [(s.name, s.unit, s.length) for s in stages] == [
        ("a", "steps", 4), ("b", "tokens", 250), ("stage2", "tokens", 10)
    ]  # fmt: skip
    assert stages[0].lr == cfg.train.lr and stages[0].warmup == 0 and stages[1].warmup == 0
    one = resolve_stages(
        load_config({"method": "mlp_regression", "train": {"max_steps": 7, "warmup_steps": 2}})
    )
    assert [(s.name, s.length, s.warmup) for s in one] == [("train", 7, 2)]
    fraction_of_steps = resolve_stages(_config([{"fraction": 0.5}], max_steps=30))
    assert (fraction_of_steps[0].unit, fraction_of_steps[0].length) == ("steps", 15)
    assert _config().planned_steps() == 11


@pytest.mark.parametrize(
    "stages, match",
    [
        ([{"steps": 3, "tokens": 5}], "exactly one"),
        ([{"name": "x"}], "exactly one"),
        ([{"steps": 3, "warmup": 4}], "warmup=4 exceeds"),
        ([{"steps": 3, "batch_size": 6, "grad_accum": 4}], "not divisible"),
        ([{"name": "a", "steps": 1}, {"name": "a", "steps": 1}], "unique"),
        ([{"steps": 3, "data": {"nosie": 0.1}}], "did you mean 'noise'"),
        ([{"steps": 3, "fraction": 2.0}], "exactly one"),
        ([{"fraction": 2.0}], r"fraction=2.0 must lie in \(0, 1\]"),
    ],
)
def test_bad_stages_are_config_errors(stages, match):
    with pytest.raises(ConfigError, match=match):
        resolve_stages(_config(stages))


def test_two_stages_schedule_batch_data_and_freezing(tmp_path):
    cfg = _config()
    method = _method(cfg)
    head0 = {k: v.clone() for k, v in method.head.state_dict().items()}
    modes, sizes, noise = [], [], []
    step_fn = method.training_step

    def spy(batch, step):
        modes.append((method.head.training, method.body.training))
        sizes.append(batch["x"].shape[0])
        return step_fn(batch, step)

    method.training_step = spy
    build = method.build_data

    def spy_data(config):
        noise.append(config.data.noise)
        return build(config)

    method.build_data = spy_data
    trainer = Trainer(method, cfg, tmp_path)
    head_after_first = {}
    save = trainer._save

    def save_and_look():
        save()
        if trainer.step == 6:
            head_after_first.update({k: v.clone() for k, v in method.head.state_dict().items()})

    trainer._save = save_and_look
    summary = trainer.fit()
    assert summary["step"] == 11 and summary["stage"] == "second"
    assert noise == [0.0, 0.05]  # the second stage's data override rebuilt the data once
    assert sizes == [8] * 6 + [8] * 10  # 16 per update in two micro-batches of 8
    assert modes[:6] == [(False, True)] * 6 and modes[6:] == [(True, True)] * 10  # frozen head in eval mode
    for key in head0:  # the head did not move in the first stage, and did in the second
        assert torch.equal(head_after_first[key], head0[key])
    assert not torch.equal(method.head.weight, head0["weight"])
    records = read_metrics(tmp_path)
    assert [r["stage"] for r in records] == ["first"] * 6 + ["second"] * 5
    assert [r["step_in_stage"] for r in records] == [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5]
    for r in records:  # each stage's schedule restarts and runs over the stage's own length
        k = r["step_in_stage"] - 1
        expected = lr_at(k, 6, 0.01, 0.001, 2) if r["stage"] == "first" else lr_at(k, 5, 0.003, 0.0, 0)
        assert r["lr"] == pytest.approx(expected)
    assert records[-1]["samples_seen"] == 6 * 8 + 5 * 16
    assert stage_boundaries(records) == [(6.5, "second")]
    state = ck.read_trainer_state(tmp_path / "checkpoints" / "step_11")
    assert (state["stage"], state["step_in_stage"], state["samples_seen"]) == (1, 5, 128)
    boundary = ck.read_trainer_state(tmp_path / "checkpoints" / "step_6")
    assert (boundary["stage"], boundary["step_in_stage"]) == (0, 6)  # saved at the end of each stage


@pytest.mark.parametrize("stop_at", [4, 6, 8])  # inside stage 1, at the boundary, inside stage 2
def test_resume_inside_and_between_stages_is_bit_identical(tmp_path, stop_at):
    cfg = _config()
    full, _, _ = _fit(cfg, tmp_path / "full")
    partial = tmp_path / "partial"
    interrupt_after(Trainer(_method(cfg), cfg, partial), stop_at)
    resumed, _, summary = _fit(cfg, partial, resume="auto")
    assert summary["step"] == 11
    _same(full, resumed)
    assert [r["step"] for r in read_metrics(partial)] == list(range(1, 12))


def test_a_changed_stage_warns_on_resume(tmp_path):
    cfg = _config()
    interrupt_after(Trainer(_method(cfg), cfg, tmp_path), 8)
    changed = _config([STAGES[0], {**STAGES[1], "lr": 0.002}])
    with pytest.warns(RuntimeWarning, match=r"stage 1 \('second'\) differs"):
        Trainer(_method(changed), changed, tmp_path, resume="auto")


class _Weighted(MLPRegression):
    """Two loss terms a stage can weight; reports 3 tokens per sample."""

    loss_terms = ("mse", "l1")

    def training_step(self, batch, step):
        pred = self(batch["x"])
        w = self.loss_weights
        loss = w["mse"] * F.mse_loss(pred, batch["y"]) + w["l1"] * F.l1_loss(pred, batch["y"])
        return TrainOutput(loss=loss, tokens=3 * batch["x"].shape[0])


def test_loss_weights_and_token_lengths(tmp_path):
    stages = [
        {"name": "l1_only", "tokens": 100, "loss_weights": {"mse": 0.0}},
        {"name": "both", "steps": 2, "loss_weights": {"l1": 0.5}},
    ]
    cfg = _config(stages)
    method = _method(cfg, _Weighted)
    seen = []
    set_stage = method.set_stage

    def spy(index, name, weights):
        set_stage(index, name, weights)
        seen.append(dict(method.loss_weights))

    method.set_stage = spy
    summary = Trainer(method, cfg, tmp_path).fit()
    assert seen == [{"mse": 0.0, "l1": 1.0}, {"mse": 1.0, "l1": 0.5}]
    # 24 tokens per update: the token stage ends with the first update that reaches 100 tokens
    assert summary["step"] == 5 + 2 and summary["tokens_seen"] == 7 * 24
    records = read_metrics(tmp_path)
    assert [r["stage"] for r in records] == ["l1_only"] * 5 + ["both"] * 2
    assert records[0]["lr"] == pytest.approx(lr_at(0, 100, 0.01, 0.001, 0))
    assert records[1]["lr"] == pytest.approx(lr_at(24, 100, 0.01, 0.001, 0))  # token position
    with pytest.raises(ConfigError, match=r"loss_weights \['kl'\] are not loss terms"):
        _method(cfg, _Weighted).set_stage(0, "x", {"kl": 1.0})


class _Tower(MLPRegression):
    """A frozen random 'tower' with dropout in front of the student."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tower = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.5))

    def frozen_modules(self):
        return {"tower": self.tower}

    def param_groups(self):
        from mambajepa.methods.base import ParamGroupSpec

        return [ParamGroupSpec("body", self.body), ParamGroupSpec("head", self.head)]

    def forward(self, x):
        return super().forward(self.tower(x))


def test_frozen_tower_is_stored_once_and_verified(tmp_path):
    cfg = _config([{"name": "only", "steps": 6}])
    method, trainer, _ = _fit(cfg, tmp_path, cls=_Tower)
    tower0 = _method(cfg, _Tower).tower.state_dict()
    for key, value in method.tower.state_dict().items():  # never trained
        assert torch.equal(value, tower0[key])
    names = [n for g in trainer.optimizer.param_groups for n in g["param_names"]]
    assert names and not any(n.startswith("tower.") for n in names)
    for ckpt in ck.list_checkpoints(tmp_path / "checkpoints"):
        assert not any(k.startswith("tower.") for k in load_file(str(ckpt / "model.safetensors")))
    frozen = tmp_path / ck.FROZEN_FILE
    assert set(load_file(str(frozen))) == {"tower.0.weight", "tower.0.bias"}
    weights = ck.load_checkpoint_weights(tmp_path)  # merged back for evaluation
    for key, value in method.state_dict().items():
        assert torch.equal(weights[key], value)
    # resume verifies the stored tower
    more = _config([{"name": "only", "steps": 8}])
    with pytest.warns(RuntimeWarning):
        _fit(more, tmp_path, resume="auto", cls=_Tower)
    frozen.write_bytes(frozen.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(CheckpointError, match="frozen modules changed"):
        ck.load_checkpoint_weights(tmp_path)


def test_frozen_tower_stays_in_eval_mode(tmp_path):
    cfg = _config([{"name": "only", "steps": 3}])
    method = _method(cfg, _Tower)
    modes = []
    step_fn = method.training_step

    def spy(batch, step):
        modes.append((method.tower.training, method.body.training))
        return step_fn(batch, step)

    method.training_step = spy
    Trainer(method, cfg, tmp_path).fit()
    assert modes == [(False, True)] * 3


def test_freeze_of_an_unknown_module_is_an_error(tmp_path):
    cfg = _config([{"name": "x", "steps": 2, "freeze": ["haed"]}])
    with pytest.raises(ConfigError, match=r"freeze names 'haed'.*body, head"):
        Trainer(_method(cfg), cfg, tmp_path)


def test_recipe_with_stages_runs_from_the_cli(tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    subprocess.run(
        [sys.executable, "-m", "mambajepa", "train", "debug_stages", "--run-dir", str(run),
         "--train.progress=false"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records} == {"body", "all"}
    assert records[-1]["val/loss"] < 0.5 * records[-1]["val/target_var"]  # it learns across both stages
    assert (run / "plots" / "loss.png").stat().st_size > 0
