"""The command line: help on every sub-command, info, train, errors, bench dispatch, demo."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from mambajepa import bench, cli
from mambajepa.cli import main
from mambajepa.core.checkpoint import list_checkpoints, load_checkpoint_weights
from mambajepa.core.errors import ConfigError
from mambajepa.demo import run_demo

COMMANDS = ["train", "eval", "export", "bench", "info", "demo", "data"]
FAST = ["--train.warmup_steps=0", "--train.progress=false", "--train.plots=false", "--train.eval_every=0"]


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: mambajepa {command}" in capsys.readouterr().out


def test_info_lists_environment_and_registrations(capsys):
    import torch

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for fragment in (
        torch.__version__,
        "mamba_ssm",
        "causal_conv1d",
        "mlp_regression",
        "debug_tiny",
        "device",
    ):
        assert fragment in out


def test_train_writes_checkpoints_and_overrides_apply(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = [
        "train",
        "debug_tiny",
        "--run-dir",
        str(run_dir),
        "--train.max_steps",
        "6",
        "--train.checkpoint_every=3",
    ]
    assert main([*argv, *FAST, "--hidden", "12"]) == 0
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == ["step_3", "step_6"]
    assert load_checkpoint_weights(run_dir)["body.0.weight"].shape == (12, 8)  # alias --hidden
    assert "trained mlp_regression to step 6" in capsys.readouterr().out
    # a second fresh run into the same directory is refused; --resume auto continues it
    assert main([*argv, *FAST, "--hidden", "12"]) == 2
    assert "--resume auto" in capsys.readouterr().err
    with pytest.warns(RuntimeWarning, match="config differs"):  # max_steps changed
        assert main([*argv, *FAST, "--hidden", "12", "--train.max_steps=9", "--resume", "auto"]) == 0
    assert list_checkpoints(run_dir / "checkpoints")[-1].name == "step_9"


def test_config_errors_exit_2_with_the_closest_key(tmp_path, capsys):
    assert main(["train", "debug_tiny", "--run-dir", str(tmp_path), "--train.max_step=3"]) == 2
    assert "did you mean 'train.max_steps'" in capsys.readouterr().err
    assert main(["train", "debug_tinny", "--run-dir", str(tmp_path)]) == 2
    assert "debug_tiny" in capsys.readouterr().err


def test_bench_dispatch(monkeypatch, capsys):
    calls = []
    fake = types.ModuleType("mambajepa.bench.fake")
    fake.main = lambda argv: calls.append(argv)
    monkeypatch.setitem(sys.modules, "mambajepa.bench.fake", fake)
    monkeypatch.setattr(bench, "list_benches", lambda: ["fake"])
    assert main(["bench", "fake", "--size", "3"]) == 0
    assert main(["bench", "all"]) == 0
    assert calls == [["--size", "3"], []]
    assert main(["bench", "fak"]) == 2
    assert "did you mean 'fake'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["eval", "export", "data"])
def test_delegated_command_missing_is_a_clear_error(command, capsys, monkeypatch):
    real_import = cli.importlib.import_module

    def without_commands(name, *args):
        if name.endswith(".commands"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args)

    monkeypatch.setattr(cli.importlib, "import_module", without_commands)
    assert main([command, "--some-flag"]) == 2
    assert "not available" in capsys.readouterr().err


# the demo pipeline shrunk to seconds: a one-block X-encoder at 16 px, two steps per stage
DEMO_X = [
    "--encoder.img_size=16", "--encoder.embed_dim=32", "--encoder.depth=1", "--encoder.num_heads=2",
    "--predictor.embed_dim=16", "--predictor.depth=1", "--data.image_size=16", "--data.n_train=64",
    "--data.n_val=0", "--train.max_steps=2", "--train.batch_size=8", "--train.warmup_steps=0",
    "--train.plots=false", "--train.progress=false",
]  # fmt: skip
DEMO_VL = [
    "--x_encoder.img_size=16", "--x_encoder.embed_dim=32", "--x_encoder.depth=1", "--x_encoder.num_heads=2",
    "--predictor.d_model=32", "--predictor.n_layers=1", "--predictor.embed_dim=16", "--predictor.visual_pool=2",
    "--y_encoder.d_model=32", "--y_encoder.n_layers=1", "--y_encoder.embed_dim=16",
    "--y_decoder.d_model=32", "--y_decoder.n_layers=1", "--y_decoder.embed_dim=16", "--y_decoder.prefix_len=2",
    "--tokenizer.kind=byte", "--data.image_size=16", "--data.n_train=64", "--data.n_val=0",
    "--stages.0.steps=2", "--stages.0.warmup=0", "--stages.1.steps=2", "--stages.1.warmup=0",
    "--train.batch_size=8", "--train.plots=false", "--train.progress=false",
    "--eval.max_tokens=4", "--eval.prompts_per_class=2", "--eval.batch_size=8",
]  # fmt: skip


def test_demo_runs_the_pipeline_and_replaces_only_its_own_run(tmp_path, capsys):
    run = tmp_path / "demo"
    for _ in range(2):  # a second demo replaces the first instead of resuming a finished run
        assert run_demo(run, DEMO_VL, DEMO_X, n_items=8, n_streams=1) == 0
        out = capsys.readouterr().out
        assert "zero-shot colour top-1" in out and "chance" in out and "x_encoder    2 steps" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["training"]["vljepa"]["steps"] == 4
    assert set(summary["training"]["vljepa"]["samples_per_s"]) == {"captioning", "sft"}
    assert {"zero_shot", "retrieval", "vqa", "selective", "latency"} <= set(summary["evaluation"])
    # the VL stages ran on the pre-trained X-encoder, not on a fresh one
    vl_config = yaml.safe_load((run / "vljepa" / "config.yaml").read_text())
    assert vl_config["x_encoder_weights"] == str(run / "x_encoder")
    report = (run / "report.md").read_text()
    for picture in summary["evaluation"]["pictures"]:
        assert Path(picture).is_file() and Path(picture).name in report
    assert "zero-shot shape top-1" in report
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a previous demo run"):
        run_demo(tmp_path / "other", DEMO_VL, DEMO_X)
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "mambajepa", "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "mambajepa" in result.stdout
