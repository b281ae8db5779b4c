"""``mambajepa demo``: Mamba3-JEPA on ShapesWorld, from an untrained X-encoder to selective decoding.

The pipeline, on a laptop CPU in a few minutes:

1. pre-train the X-encoder by JEPA (:data:`X_RECIPE`, I-JEPA with a pooled-context predictor)
   into ``RUN/x_encoder``;
2. freeze it and train the VL stages of :data:`DEMO_RECIPE` on top (captioning, then
   question-conditioned SFT) into ``RUN/vljepa``;
3. evaluate on held-out data (:func:`~mambajepa.eval.vljepa.evaluate_vljepa`): zero-shot
   classification, retrieval, VQA, selective decoding of streams beside uniform decoding, latency;
4. print one table with the chance levels, and write ``RUN/summary.json``, ``RUN/report.md`` and
   the pictures in ``RUN/pictures/``.

With ``baselines=True`` the VL stages are also trained on a random-init frozen X-encoder (the
same recipe and budget) and evaluated beside it. The learning criteria live in the tests and
benchmarks; the demo reports numbers, it does not grade them.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from mambajepa.config import load_config, resolve_recipe
from mambajepa.core.errors import ConfigError
from mambajepa.core.files import atomic_write_json, atomic_write_text
from mambajepa.train.trainer import run_training

__all__ = ["DEMO_RECIPE", "X_RECIPE", "run_demo", "stage_speeds", "write_report"]

DEMO_RECIPE = "vljepa_shapes"  # the VL stages (recipe name in configs/)
X_RECIPE = "ijepa_shapes_pooled_32px"  # the X-encoder's JEPA pre-training (an I-JEPA variant)
#: what a demo run directory holds; anything else in it means it is not a demo run
DEMO_ENTRIES = frozenset({"x_encoder", "vljepa", "random_init", "pictures", "summary.json", "report.md"})


def _clear_previous_demo(run_dir: Path) -> None:
    """Remove an earlier demo run in ``run_dir``; refuse to touch a directory holding anything else."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in DEMO_ENTRIES)
    if foreign:
        raise ConfigError(
            f"{run_dir} exists and is not a previous demo run (it holds {foreign[:5]}); choose another --run-dir"
        )
    print(f"replacing the previous demo run in {run_dir}")
    shutil.rmtree(run_dir)


def stage_speeds(run_dir: str | Path) -> dict[str, float]:
    """Mean training samples/s of each stage of a run, from its ``metrics.jsonl`` log lines."""
    speeds: dict[str, list[float]] = {}
    path = Path(run_dir) / "metrics.jsonl"
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "samples_per_s" in record:
            speeds.setdefault(record.get("stage") or "train", []).append(float(record["samples_per_s"]))
    return {stage: statistics.fmean(values) for stage, values in speeds.items()}


def write_report(summary: dict[str, Any], table: str, path: Path) -> Path:
    """``report.md``: what ran, how fast, the results table and the pictures."""
    lines = [
        "# Mamba3-JEPA demo",
        "",
        f"X-encoder: JEPA pre-training (`{X_RECIPE}`, an I-JEPA variant), then frozen. VL stages: `{DEMO_RECIPE}` "
        "(Mamba-3 predictor, Y-encoder and Y-decoder; captioning, then question-conditioned SFT).",
        "Everything below is measured on held-out ShapesWorld data.",
        "",
        "| part | steps | samples/s | seconds |",
        "|---|---|---|---|",
    ]
    for name, part in summary["training"].items():
        speeds = ", ".join(f"{stage} {value:.0f}" for stage, value in part["samples_per_s"].items())
        lines.append(f"| {name} | {part['steps']} | {speeds} | {part['seconds']:.0f} |")
    lines += ["", "```", table, "```", ""]
    for picture in summary["evaluation"].get("pictures", []):
        rel = Path(picture).relative_to(path.parent)
        lines += [f"![{rel.stem}]({rel.as_posix()})", ""]
    lines.append(f"Total time {summary['seconds']:.0f} s.")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _train(recipe: str, run_dir: Path, overrides: list[str], say: str) -> tuple[dict[str, Any], float]:
    print(f"demo: {say}", flush=True)
    start = time.perf_counter()
    config = load_config(resolve_recipe(recipe), ["--train.progress=true", *overrides])
    summary = run_training(config, run_dir)
    return summary, time.perf_counter() - start


def run_demo(
    run_dir: str | Path = "runs/demo",
    overrides: list[str] | None = None,
    x_overrides: list[str] | None = None,
    *,
    n_items: int | None = None,
    n_streams: int | None = None,
    baselines: bool = False,
) -> int:
    """Run the demo pipeline (module docstring) into ``run_dir`` and print its results table.

    Args:
        run_dir: run directory; an earlier demo run there is replaced.
        overrides: config overrides of the VL stages (``["--stages.0.steps=20"]``).
        x_overrides: config overrides of the X-encoder's pre-training (``["--train.max_steps=20"]``).
        n_items: held-out items of zero-shot, retrieval and VQA (default: the recipe's).
        n_streams: held-out streams of selective decoding (default: the recipe's).
        baselines: also train and evaluate the VL stages on a random-init X-encoder.

    Returns:
        0 on success.

    Raises:
        ConfigError: ``run_dir`` exists and holds something other than a demo run.
    """
    from mambajepa.eval.vljepa import evaluate_vljepa, format_vljepa_table
    from mambajepa.methods.vljepa.model import Mamba3Jepa

    run_dir = Path(run_dir)
    _clear_previous_demo(run_dir)
    start = time.perf_counter()
    x_dir, vl_dir = run_dir / "x_encoder", run_dir / "vljepa"
    parts = {"x_encoder": (X_RECIPE, x_dir, list(x_overrides or []), "1/3 pre-training the X-encoder (JEPA)")}
    vl = [f"--x_encoder_weights={x_dir}", *(overrides or [])]
    parts["vljepa"] = (DEMO_RECIPE, vl_dir, vl, "2/3 training the VL stages on the frozen X-encoder")
    if baselines:
        random_init = ["--x_encoder_weights=null", *(overrides or [])]
        parts["random_init"] = (
            DEMO_RECIPE,
            run_dir / "random_init",
            random_init,
            "baseline: random-init X-encoder",
        )
    training: dict[str, Any] = {}
    for name, (recipe, folder, extra, say) in parts.items():
        summary, seconds = _train(recipe, folder, extra, say)
        training[name] = {"steps": summary["step"], "seconds": seconds, "samples_per_s": stage_speeds(folder)}

    print("demo: 3/3 evaluating on held-out data", flush=True)
    results: dict[str, Any] = {}
    for name in ("vljepa", "random_init") if baselines else ("vljepa",):
        model = Mamba3Jepa.from_pretrained(run_dir / name)
        config = load_config(run_dir / name / "config.yaml")
        results[name] = evaluate_vljepa(
            model,
            config,
            n_items=n_items,
            n_streams=n_streams,
            progress=True,
            pictures=run_dir / "pictures" if name == "vljepa" else None,
        )
    others = {"random-init X": results["random_init"]} if baselines else None
    table = format_vljepa_table(results["vljepa"], others)
    summary = {
        "recipes": {"x_encoder": X_RECIPE, "vljepa": DEMO_RECIPE},
        "training": training,
        "evaluation": results["vljepa"],
        "baselines": {"random_init_x_encoder": results["random_init"]} if baselines else {},
        "seconds": time.perf_counter() - start,
    }
    atomic_write_json(run_dir / "summary.json", summary)
    report = write_report(summary, table, run_dir / "report.md")
    print(table)
    for name, part in training.items():
        speeds = ", ".join(f"{stage} {value:.0f}" for stage, value in part["samples_per_s"].items())
        print(f"{name:<12} {part['steps']} steps in {part['seconds']:.0f} s (samples/s: {speeds})")
    print(f"summary  {run_dir / 'summary.json'}\nreport   {report}\ntime     {summary['seconds']:.0f} s")
    return 0
