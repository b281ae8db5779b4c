"""Mamba3-JEPA ablation: what the pretrained X-encoder and the Mamba-3 predictor are worth.

Trains four variants of ``configs/vljepa_shapes.yaml`` for a CPU-sized number of steps and
evaluates each with :func:`mambajepa.eval.vljepa.evaluate_vljepa` on the held-out ShapesWorld
test split (no streams, no latency):

* ``ours``: the recipe, with ``--x-encoder-weights`` as its frozen X-encoder;
* ``random_init``: the same with a random-init frozen X-encoder (the recipe without weights is
  this already, and the row then repeats ``ours``);
* ``mamba2`` and ``transformer``: the predictor's blocks replaced, at the width and depth whose
  parameter count is closest to the Mamba-3 predictor's (:func:`matched_predictor_config`).

Prints one table of zero-shot mean top-1, retrieval R@1 (same labels counts as a hit) and VQA
exact match per variant with parameter counts::

    python benchmarks/vljepa_ablation.py --steps 140 [--x-encoder-weights RUN_OR_FILE] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from mambajepa.config import load_config
from mambajepa.eval.vljepa import evaluate_vljepa, matched_predictor_config, predictor_parameters
from mambajepa.methods.vljepa.method import VLJEPAConfig, model_from_run
from mambajepa.train.trainer import run_training

VARIANTS = ("ours", "random_init", "mamba2", "transformer")


def scaled_stages(config: VLJEPAConfig, steps: int) -> VLJEPAConfig:
    """The config with ``steps`` updates in all, shared by its stages as the recipe shares its own."""
    if not config.stages:
        return dataclasses.replace(config, train=dataclasses.replace(config.train, max_steps=steps))
    total = sum(s.steps or 0 for s in config.stages) or len(config.stages)
    stages = []
    for stage in config.stages:
        share = max(1, round(steps * (stage.steps or 1) / total))
        warmup = (
            None
            if stage.warmup is None
            else min(share // 4, round(stage.warmup * share / (stage.steps or 1)))
        )
        stages.append(dataclasses.replace(stage, steps=share, warmup=warmup))
    return dataclasses.replace(config, stages=stages)


def variant_configs(config: VLJEPAConfig) -> dict[str, VLJEPAConfig | str]:
    """Each variant's config, or the variant it repeats (``random_init`` without X-encoder weights)."""
    random_init = dataclasses.replace(config, x_encoder_weights=None, name=f"{config.name}_random_init")
    return {
        "ours": config,
        "random_init": random_init if config.x_encoder_weights is not None else "ours",
        "mamba2": matched_predictor_config(config, "mamba2"),
        "transformer": matched_predictor_config(config, "transformer"),
    }


def run_variant(name: str, config: VLJEPAConfig, out_dir: Path, n_items: int) -> dict[str, Any]:
    """Train one variant into ``out_dir/name`` (resuming a finished or interrupted run) and evaluate it."""
    run_dir = out_dir / name
    start = time.perf_counter()
    run_training(config, run_dir, resume="auto")
    trained = time.perf_counter() - start
    model = model_from_run(run_dir)
    results = evaluate_vljepa(model, config, n_items=n_items, n_streams=0, measure_latency=False)
    return {
        "mixer": config.predictor.mixer,
        "d_model": config.predictor.d_model,
        "n_layers": config.predictor.n_layers,
        "predictor_params": predictor_parameters(config),
        "trainable_params": model.num_trainable_parameters(),
        "zero_shot_mean": results["zero_shot"]["mean"]["top1"],
        "r1_image_to_text": results["retrieval"]["image_to_text"]["r1"],
        "r1_text_to_image": results["retrieval"]["text_to_image"]["r1"],
        "vqa_exact_match": results["vqa"]["exact_match"],
        "train_s": trained,
        "chance": {
            "zero_shot_mean": results["zero_shot"]["mean"]["chance"],
            "r1": results["retrieval"]["image_to_text"]["chance_r1"],
            "vqa_exact_match": results["vqa"]["chance"],
        },
    }


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """One line per variant, and the chance levels."""
    head = (
        f"{'variant':<12} {'mixer':<11} {'d x L':>8} {'pred. params':>12} {'trainable':>10} "
        f"{'zero-shot':>9} {'R@1 i->t':>8} {'R@1 t->i':>8} {'VQA EM':>7} {'train s':>7}"
    )
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        note = f"  (= {r['same_as']})" if "same_as" in r else ""
        lines.append(
            f"{name:<12} {r['mixer']:<11} {str(r['d_model']) + ' x ' + str(r['n_layers']):>8} "
            f"{r['predictor_params']:>12,} {r['trainable_params']:>10,} {r['zero_shot_mean']:>9.3f} "
            f"{r['r1_image_to_text']:>8.3f} {r['r1_text_to_image']:>8.3f} {r['vqa_exact_match']:>7.3f} "
            f"{r['train_s']:>7.0f}{note}"
        )
    chance = next(iter(rows.values()))["chance"]
    lines.append(
        f"{'chance':<12} {'':<11} {'':>8} {'':>12} {'':>10} {chance['zero_shot_mean']:>9.3f} "
        f"{chance['r1']:>8.3f} {chance['r1']:>8.3f} {chance['vqa_exact_match']:>7.3f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/vljepa_shapes.yaml", help="the recipe")
    parser.add_argument(
        "--x-encoder-weights", default=None, help="frozen X-encoder of ours (folder, file or jepa run)"
    )
    parser.add_argument(
        "--steps", type=int, default=140, help="updates per variant, shared by the recipe's stages"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="training batch (default: the recipe's)")
    parser.add_argument("--n-items", type=int, default=128, help="test items of zero-shot, retrieval and VQA")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--out-dir", default="runs/vljepa_ablation", help="where the variants' runs go")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    overrides = ["--train.progress=false", "--train.plots=false"]
    if args.x_encoder_weights:
        overrides.append(f"--x_encoder_weights={args.x_encoder_weights}")
    if args.batch_size:
        overrides.append(f"--train.batch_size={args.batch_size}")
    config = scaled_stages(load_config(args.config, overrides), args.steps)
    configs = variant_configs(config)
    print(
        f"# vljepa ablation: {args.config}, {args.steps} steps per variant, {args.n_items} test items, "
        f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads",
        flush=True,
    )
    rows: dict[str, dict[str, Any]] = {}
    for name in args.variants:
        cfg = configs[name]
        if isinstance(cfg, str):  # repeats another variant: train that one (if not asked for) and copy it
            if cfg not in rows:
                rows[cfg] = run_variant(cfg, configs[cfg], Path(args.out_dir), args.n_items)
            rows[name] = {**rows[cfg], "same_as": cfg}
            continue
        print(
            f"# training {name} ({cfg.predictor.mixer}, {predictor_parameters(cfg):,} predictor parameters)",
            flush=True,
        )
        rows[name] = run_variant(name, cfg, Path(args.out_dir), args.n_items)
    rows = {name: rows[name] for name in args.variants}
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
