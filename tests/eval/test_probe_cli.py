"""``mambajepa eval probe`` on a tiny JEPA run, and a short pre-training that beats its random init."""

from __future__ import annotations

import json

import pytest
import torch

from mambajepa.cli import main
from mambajepa.config import load_config, resolve_recipe
from mambajepa.core.errors import CheckpointError, ConfigError
from mambajepa.eval.probe import IMAGE_TASKS, probe_run
from mambajepa.eval.runs import load_run
from mambajepa.methods.jepa import JEPA
from mambajepa.train.trainer import run_training, seed_everything

TINY = {
    "method": "jepa",
    "name": "probe_tiny",
    "encoder": {"name": "vit_tiny_patch4", "img_size": 16, "num_frames": 2, "tubelet_size": 1,
                "embed_dim": 32, "depth": 1, "num_heads": 2},
    "predictor": {"embed_dim": 16, "depth": 1, "num_heads": 2},
    "data": {"name": "shapes_images", "image_size": 16, "n_train": 256, "n_val": 16},
    "mask": {"num_targets": 2, "min_keep": 2},
    "probe": {"n_train": 96, "n_eval": 48, "batch_size": 48, "linear_steps": 20, "attentive_steps": 10},
    "train": {"max_steps": 4, "batch_size": 8, "warmup_steps": 0, "eval_every": 0, "progress": False,
              "plots": False, "checkpoint_every": 0},
}  # fmt: skip

ENTRY_KEYS = {"linear_acc", "knn_acc", "attentive_acc", "chance"}


def test_probe_command_writes_a_well_formed_probe_json(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_training(load_config(TINY), run_dir)
    assert main(["eval", "probe", "--checkpoint", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "random-init" in out and "criterion (shape)" in out and "linear" in out

    results = json.loads((run_dir / "probe.json").read_text())
    for block in (results, results["random_init"]):
        tasks = {k for k, v in block.items() if isinstance(v, dict) and k != "random_init"}
        assert tasks == set(IMAGE_TASKS)
        for task in tasks:
            assert set(block[task]) == ENTRY_KEYS
            assert all(0.0 <= block[task][k] <= 1.0 for k in ENTRY_KEYS)
        assert block["feature_std"] > 0 and 1.0 <= block["effective_rank"] <= 32
    assert results["shape"]["chance"] == pytest.approx(1 / 6)
    assert results["colour"]["chance"] == pytest.approx(1 / 8)

    # the same run probed again gives the same numbers (deterministic extraction and fits)
    again = probe_run(run_dir)
    assert again["shape"] == results["shape"] and again["random_init"] == results["random_init"]


def test_probe_refuses_a_run_of_another_method(tmp_path):
    run_dir = tmp_path / "reg"
    cfg = load_config(resolve_recipe("debug_tiny"), ["--train.max_steps=2", "--train.warmup_steps=0", "--train.progress=false",
                                                  "--train.eval_every=0", "--train.plots=false"])  # fmt: skip
    run_training(cfg, run_dir)
    with pytest.raises(ConfigError, match="'mlp_regression' implements no encode"):
        probe_run(run_dir)
    with pytest.raises(CheckpointError):
        probe_run(tmp_path / "missing")


def test_short_pretraining_learns_features_that_beat_the_random_init_encoder(tmp_path):
    """300 JEPA steps on ShapesWorld: held-out energy falls, and linear probes of the trained encoder
    beat the same encoder at random init on colour and texture (pixel statistics alone give an
    untrained encoder 0.6-0.75 on colour and 1.0 on background, so chance is no bar)."""
    cfg = load_config(
        TINY,
        [
            "--train.max_steps=300",
            "--train.batch_size=32",
            "--train.lr=2e-3",
            "--train.eval_every=300",
            "--loss.regularizer=vicreg",
            "--loss.reg_weight=0.05",
            "--probe.n_train=512",
            "--probe.n_eval=256",
            "--probe.linear_steps=100",
            "--probe.attentive=false",
            "--probe.tasks=[colour, texture]",
        ],
    )
    seed_everything(0)
    initial = JEPA.from_config(cfg)
    data = initial.build_data(cfg)
    val = [
        data.collate_fn([data.val[i] for i in range(8 * k, 8 * k + 8)], torch.Generator().manual_seed(k))
        for k in range(2)
    ]
    energy_before = initial.evaluate(val)["val/energy"]
    run_training(cfg, tmp_path / "run")
    trained = load_run(tmp_path / "run").method
    assert isinstance(trained, JEPA) and not trained.training
    assert trained.evaluate(val)["val/energy"] < 0.75 * energy_before

    results = probe_run(tmp_path / "run")
    init = results["random_init"]
    gains = {t: results[t]["linear_acc"] - init[t]["linear_acc"] for t in ("colour", "texture")}
    # over training seeds 0-2 colour gained 0.05-0.20 and texture 0.08-0.14 (shape: -0.02 to 0.14)
    assert all(gain > 0.0 for gain in gains.values()), (gains, results)
    assert sum(gains.values()) / len(gains) > 0.05, (gains, results)
    assert results["effective_rank"] > 4.0, results  # not collapsed (random init: about 13)
