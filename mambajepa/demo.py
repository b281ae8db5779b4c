"""``mambajepa demo``: train the demo recipe end to end and print a short summary.

The demo is one recipe plus a summary; switching it to a richer method means changing
:data:`DEMO_RECIPE` and, if needed, :func:`summarize`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from mambajepa.config import load_config, resolve_recipe
from mambajepa.errors import ConfigError
from mambajepa.train.trainer import run_training

__all__ = ["DEMO_RECIPE", "run_demo", "summarize"]

DEMO_RECIPE = "debug_tiny"  # recipe name in configs/


def summarize(summary: dict[str, Any], run_dir: Path, seconds: float) -> str:
    """Human-readable lines describing a finished demo run."""
    lines = [
        f"demo recipe      {DEMO_RECIPE}",
        f"steps            {summary['step']}",
        f"final loss       {summary['loss']:.4g}",
    ]
    lines += [f"{key:<16} {value:.4g}" for key, value in summary["val"].items()]
    lines += [
        f"checkpoint       {summary['checkpoint']}",
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
    """Train :data:`DEMO_RECIPE` from scratch into ``run_dir`` and print a summary.

    Args:
        run_dir: run directory; an earlier demo run there (same recipe name) is replaced.
        overrides: extra config overrides (``["--train.max_steps=20"]``).

    Returns:
        0 on success.

    Raises:
        ConfigError: ``run_dir`` exists and holds something other than a demo run.
    """
    run_dir = Path(run_dir)
    cfg = load_config(resolve_recipe(DEMO_RECIPE), ["--train.progress=true", *(overrides or [])])
    _clear_previous_demo(run_dir, cfg.name)
    start = time.perf_counter()
    summary = run_training(cfg, run_dir)
    print(summarize(summary, run_dir, time.perf_counter() - start))
    return 0
