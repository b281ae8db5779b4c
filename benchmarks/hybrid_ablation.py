"""Hybrid JEPA + LM against LM-only at the same token budget, data, schedule and seed.

Trains ``configs/hybrid_shapes_code.yaml`` twice: as written (the four-stage curriculum: JEPA only,
LM only, 0.3 JEPA + 0.7 LM, instruction tuning), and with the LM loss in every stage (each
stage's ``loss_weights`` set to ``{jepa: 0, lm: 1}``; token shares, learning rates and data
mixtures unchanged). Both runs are evaluated by :func:`mambajepa.eval.hybrid.evaluate_hybrid` on
the same held-out data, and one table is printed with the tokens/s of every stage::

    python benchmarks/hybrid_ablation.py [--max-tokens 1200000] [--n-items 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from mambajepa.config import load_config
from mambajepa.eval.hybrid import evaluate_hybrid
from mambajepa.eval.runs import load_run
from mambajepa.train.trainer import run_training


def lm_only(config: Any) -> Any:
    """The same run with the LM loss in every stage."""
    stages = [dataclasses.replace(s, loss_weights={"jepa": 0.0, "lm": 1.0}) for s in config.stages]
    return dataclasses.replace(config, stages=stages, name=f"{config.name}_lm_only")


def stage_rates(run_dir: Path) -> dict[str, float]:
    """Mean tokens/s of each stage from ``metrics.jsonl``."""
    rates: dict[str, list[float]] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "tokens_per_s" in record:
            rates.setdefault(record["stage"], []).append(record["tokens_per_s"])
    return {stage: statistics.fmean(v) for stage, v in rates.items()}


def run_variant(name: str, config: Any, out_dir: Path, n_items: int) -> dict[str, Any]:
    """Train (resuming a finished run) and evaluate one variant."""
    run_dir = out_dir / name
    start = time.perf_counter()
    run_training(config, run_dir, resume="auto")
    seconds = time.perf_counter() - start
    run = load_run(run_dir)
    results = evaluate_hybrid(run.method, run.config, n_items=n_items)
    return {"train_s": seconds, "tokens_per_s": stage_rates(run_dir), "eval": results}


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    names = list(rows)
    head = f"{'metric':<40}" + "".join(f" {n:>12}" for n in names)
    lines = [head, "-" * len(head)]

    def row(label: str, get, fmt: str = ".3f") -> None:
        lines.append(f"{label:<40}" + "".join(f" {get(rows[n]):>12{fmt}}" for n in names))

    row("held-out code perplexity", lambda r: r["eval"]["perplexity"]["held_out_code"]["model"], ".2f")
    row("  3-gram baseline", lambda r: r["eval"]["perplexity"]["held_out_code"]["ngram"], ".2f")
    row("image->code exec accuracy", lambda r: r["eval"]["image_to_code"]["exec_accuracy"])
    row("  without the image", lambda r: r["eval"]["image_to_code"]["without_image"]["exec_accuracy"])
    row("image->code programs that parse", lambda r: r["eval"]["image_to_code"]["parsed"])
    for attribute in ("shape", "colour", "size", "position", "texture", "background"):
        row(f"  {attribute}", lambda r, a=attribute: r["eval"]["image_to_code"]["per_attribute"][a])
    row("edit accuracy", lambda r: r["eval"]["edit"]["accuracy"])
    row("QA accuracy", lambda r: r["eval"]["qa"]["accuracy"])
    for k in ("k1", "k2", "k3"):
        row(f"JEPA embedding MSE {k}", lambda r, k=k: r["eval"]["jepa_mse"].get(k, float("nan")), ".4f")
    row("train seconds", lambda r: r["train_s"], ".0f")
    for stage in rows[names[0]]["tokens_per_s"]:
        row(f"tokens/s {stage}", lambda r, s=stage: r["tokens_per_s"].get(s, float("nan")), ".0f")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/hybrid_shapes_code.yaml", help="the recipe")
    parser.add_argument("--max-tokens", type=int, default=None, help="token budget (default: the recipe's)")
    parser.add_argument("--n-items", type=int, default=100, help="held-out items per generation task")
    parser.add_argument("--variants", nargs="+", choices=("hybrid", "lm_only"), default=["hybrid", "lm_only"])
    parser.add_argument("--out-dir", default="runs/hybrid_ablation", help="where the runs go")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = ["--train.progress=false", "--train.plots=false"]
    if args.max_tokens:
        overrides.append(f"--train.max_tokens={args.max_tokens}")
    config = load_config(args.config, overrides)
    configs = {"hybrid": config, "lm_only": lm_only(config)}
    print(
        f"# hybrid ablation: {args.config}, {config.train.max_tokens} tokens per variant, torch {torch.__version__}, "
        f"{platform.machine()}, {torch.get_num_threads()} threads",
        flush=True,
    )
    rows = {}
    for name in args.variants:
        print(f"# training {name}", flush=True)
        rows[name] = run_variant(name, configs[name], Path(args.out_dir), args.n_items)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
