"""``mambajepa demo``: I-JEPA on ShapesWorld, then probes of its encoder against the random init.

The demo trains :data:`DEMO_RECIPE` (a few minutes on a laptop CPU), fits linear, kNN and
attentive probes for every ShapesWorld attribute on the trained and on the randomly initialised
encoder, writes ``probe.json`` into the run directory and prints the probe table with the
learning criterion (shape error at most half the random-init error, no other attribute worse,
no collapse).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from mambajepa.config import load_config, resolve_recipe
from mambajepa.core.errors import ConfigError
from mambajepa.train.trainer import run_training

__all__ = ["DEMO_RECIPE", "run_demo", "summarize"]

DEMO_RECIPE = "ijepa_shapes"  # recipe name in configs/


def summarize(summary: dict[str, Any], probe: dict[str, Any], run_dir: Path, seconds: float) -> str:
    """Human-readable lines describing a finished demo: training, probe table, criterion.

    Args:
        summary: :meth:`~mambajepa.train.Trainer.fit` summary.
        probe: ``probe.json`` content.
        run_dir: the run directory.
        seconds: wall-clock time of training and probing.

    Returns:
        The text to print.
    """
    from mambajepa.eval.probe import format_probe_table, learning_criterion

    c = learning_criterion(probe, "shape")
    lines = [
        f"demo recipe      {DEMO_RECIPE}",
        f"steps            {summary['step']}",
        f"final loss       {summary['loss']:.4g}",
        *(f"{key:<16} {value:.4g}" for key, value in summary["val"].items()),
        "",
        format_probe_table(probe),
        "",
        f"shape error {c['error']:.3f} vs random init {c['random_init_error']:.3f} "
        f"(ratio {c['error_ratio']:.2f}, target <= 0.5); other attributes worse: "
        f"{', '.join(c['worse_tasks']) or 'none'}; collapsed: {'yes' if c['collapsed'] else 'no'} "
        f"-> {'PASS' if c['passed'] else 'FAIL'}",
        f"checkpoint       {summary['checkpoint']}",
        f"probe.json       {run_dir / 'probe.json'}",
        f"plots            {run_dir / 'plots'}",
        f"time             {seconds:.1f} s",
    ]
    return "\n".join(lines)


def _clear_previous_demo(run_dir: Path, name: str) -> None:
    """Remove an earlier demo run in ``run_dir``; refuse to touch a directory holding anything else."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    try:
        previous = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        previous = {}
    if not isinstance(previous, dict) or previous.get("name") != name:
        raise ConfigError(
            f"{run_dir} exists and is not a previous '{name}' demo run; choose another --run-dir"
        )
    print(f"replacing the previous demo run in {run_dir}")
    shutil.rmtree(run_dir)


def run_demo(run_dir: str | Path = "runs/demo", overrides: list[str] | None = None) -> int:
    """Train :data:`DEMO_RECIPE` from scratch into ``run_dir``, probe it and print the probe table.

    Args:
        run_dir: run directory; an earlier demo run there (same recipe name) is replaced.
        overrides: extra config overrides (``["--train.max_steps=20", "--probe.n_train=200"]``).

    Returns:
        0 on success (the criterion's verdict is printed, not turned into an exit status).

    Raises:
        ConfigError: ``run_dir`` exists and holds something other than a demo run.
    """
    from mambajepa.eval.probe import probe_run, write_probe_json

    run_dir = Path(run_dir)
    cfg = load_config(resolve_recipe(DEMO_RECIPE), ["--train.progress=true", *(overrides or [])])
    _clear_previous_demo(run_dir, cfg.name)
    start = time.perf_counter()
    summary = run_training(cfg, run_dir)
    probe = probe_run(run_dir, progress=True)
    write_probe_json(probe, run_dir / "probe.json")
    print(summarize(summary, probe, run_dir, time.perf_counter() - start))
    return 0
