"""``mambajepa eval``: evaluations dispatched by the run's method, and ``load_run`` for any method."""

from __future__ import annotations

import copy

import pytest
import torch

from mambajepa import registry
from mambajepa.cli import main
from mambajepa.config import load_config, resolve_recipe
from mambajepa.core.checkpoint import load_checkpoint_weights
from mambajepa.core.errors import CheckpointError
from mambajepa.eval.runs import load_run
from mambajepa.methods.jepa import JEPA
from mambajepa.methods.regression import MLPRegression
from mambajepa.registry import register_evaluation
from mambajepa.train.trainer import run_training

FAST = {"warmup_steps": 0, "eval_every": 0, "checkpoint_every": 0, "progress": False, "plots": False}
JEPA_TINY = {
    "method": "jepa",
    "name": "dispatch_jepa",
    "encoder": {"name": "vit_tiny_patch4", "img_size": 16, "num_frames": 2, "tubelet_size": 1,
                "embed_dim": 32, "depth": 1, "num_heads": 2},
    "predictor": {"embed_dim": 16, "depth": 1, "num_heads": 2},
    "data": {"name": "shapes_images", "image_size": 16, "n_train": 32, "n_val": 8},
    "mask": {"num_targets": 2, "min_keep": 2},
    "probe": {"n_train": 32, "n_eval": 16, "batch_size": 16, "linear_steps": 5, "attentive": False},
    "train": {"max_steps": 2, "batch_size": 8, **FAST},
}  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A two-step JEPA run and a two-step debug_tiny (mlp_regression) run."""
    root = tmp_path_factory.mktemp("runs")
    run_training(load_config(copy.deepcopy(JEPA_TINY)), root / "jepa")
    overrides = [f"--train.{k}={str(v).lower()}" for k, v in FAST.items()] + ["--train.max_steps=2"]
    run_training(load_config(resolve_recipe("debug_tiny"), overrides), root / "tiny")
    return root / "jepa", root / "tiny"


@pytest.fixture
def extra_evaluation():
    """An evaluation that only mlp_regression offers, unregistered after the test."""

    @register_evaluation("tiny_check", applies_to=["mlp_regression"])
    class TinyCheck:
        help = "an evaluation only mlp_regression offers"

        def configure(self, parser):
            parser.add_argument("--level", type=int, default=1)

        def run(self, args):
            print(f"tiny_check level {args.level} on {args.checkpoint}")
            return 0

    yield TinyCheck
    del registry._EVALUATIONS["tiny_check"], registry._EVALUATION_SCOPES["tiny_check"]


def test_list_shows_what_each_runs_method_offers(runs, capsys):
    jepa_run, tiny_run = runs
    assert main(["eval", "--list", "--checkpoint", str(jepa_run)]) == 0
    out = capsys.readouterr().out
    assert "method 'jepa'" in out and "probe" in out and "linear / kNN" in out
    assert main(["eval", "--list", "--checkpoint", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    assert "method 'mlp_regression'" in out and "offers no evaluation" in out
    assert main(["eval", "--list"]) == 0
    assert "probe" in capsys.readouterr().out


def test_help_lists_the_registered_evaluations(extra_evaluation, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: mambajepa eval" in out and "probe" in out and "tiny_check" in out
    assert "an evaluation only mlp_regression offers" in out


def test_an_evaluation_the_method_does_not_offer_is_an_error_listing_the_offered_ones(
    runs, extra_evaluation, capsys
):
    jepa_run, tiny_run = runs
    assert main(["eval", "probe", "--checkpoint", str(tiny_run)]) == 2
    err = capsys.readouterr().err
    assert "'mlp_regression'" in err and "does not offer evaluation 'probe'" in err and "tiny_check" in err
    assert main(["eval", "tiny_check", "--checkpoint", str(jepa_run)]) == 2
    assert "it offers: probe" in capsys.readouterr().err
    assert main(["eval", "tiny_check", "--checkpoint", str(tiny_run), "--level", "3"]) == 0
    assert "tiny_check level 3" in capsys.readouterr().out


def test_probe_flags_are_checked_against_the_probe_settings(runs, capsys):
    jepa_run, _ = runs
    assert main(["eval", "probe", "--checkpoint", str(jepa_run), "--encoder", "middle"]) == 2
    assert "encoder: expected one of ['target', 'context']" in capsys.readouterr().err


def test_load_run_rebuilds_any_method(runs):
    jepa_run, tiny_run = runs
    for path, method_cls in ((jepa_run, JEPA), (tiny_run, MLPRegression)):
        run = load_run(path)
        assert type(run.method) is method_cls and run.config.method == method_cls.name
        assert run.run_dir == path and run.checkpoint.parent == path / "checkpoints"
        assert not run.method.training
        weights = load_checkpoint_weights(run.checkpoint)
        state = run.method.state_dict()
        assert state.keys() == weights.keys()
        assert all(torch.equal(state[k], weights[k]) for k in weights)
    assert load_run(tiny_run / "checkpoints" / "step_2").run_dir == tiny_run
    with pytest.raises(CheckpointError, match="do not fit"):
        load_run(tiny_run, ["--model.hidden=7"])
