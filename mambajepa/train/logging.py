"""Run logs: ``metrics.jsonl``, optional TensorBoard events, and PNG curves at the end."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from mambajepa.core.errors import ConfigError
from mambajepa.core.files import atomic_write_text

__all__ = ["MetricsLogger", "read_metrics", "truncate_metrics", "stage_boundaries", "plot_curves"]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; "nan" / "inf" stay readable
    return value


class MetricsLogger:
    """Appends one JSON object per logged step to ``metrics.jsonl`` (and TensorBoard scalars).

    Args:
        run_dir: the run directory.
        tensorboard: also write events to ``run_dir/tb`` (needs the ``tensorboard`` package).

    Raises:
        ConfigError: ``tensorboard`` requested but the package is not installed.
    """

    def __init__(self, run_dir: str | os.PathLike, tensorboard: bool = False) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ConfigError(
                    f"train.tensorboard=true needs the tensorboard package (pip install tensorboard): {err}"
                ) from None
            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Write ``values`` for ``step`` (numbers and 0-d tensors)."""
        record = {"step": step, **{k: _plain(v) for k, v in values.items()}}
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        """Close ``metrics.jsonl`` and the TensorBoard writer."""
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of ``metrics.jsonl`` (a torn last line from a crash is ignored)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def truncate_metrics(run_dir: str | os.PathLike, last_step: int) -> None:
    """Drop records after ``last_step`` (a resumed run rewrites them)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return
    kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= last_step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def stage_boundaries(records: list[dict[str, Any]]) -> list[tuple[float, str]]:
    """``(step, name)`` of every stage after the first, placed between the last record of the
    previous stage and the first record of the stage (steps of ``metrics.jsonl`` records)."""
    out = []
    for prev, rec in zip(records, records[1:]):
        if "stage" in rec and rec.get("stage") != prev.get("stage"):
            out.append((prev["step"] + 0.5, str(rec["stage"])))
    return out


def plot_curves(run_dir: str | os.PathLike) -> list[Path]:
    """Write ``plots/loss.png`` and ``plots/lr.png`` from ``metrics.jsonl``, with a dashed line and
    the stage's name where each stage begins; return the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    out_dir = Path(run_dir) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, ylabel, log_scale in (("loss", "training loss", True), ("lr", "learning rate", False)):
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([p[0] for p in points], [p[1] for p in points])
        evals = [
            (r["step"], r["val/loss"])
            for r in records
            if key == "loss" and isinstance(r.get("val/loss"), float)
        ]
        if evals:
            ax.plot([p[0] for p in evals], [p[1] for p in evals], "o-", label="val/loss")
            ax.legend()
        if log_scale and all(p[1] > 0 for p in points):
            ax.set_yscale("log")
        for step, name in stage_boundaries(records):
            ax.axvline(step, color="grey", linestyle="--", linewidth=1)
            ax.annotate(name, (step, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", fontsize=8, color="grey")  # fmt: skip
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
