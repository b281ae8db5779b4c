"""NF-JEPA ablations at equal budgets on ShapesWorld, and the encoder speed table.

Trains the recipe (``configs/nf_shapes.yaml``) and one variant per flag of the design input, each
for the same number of updates on the same data and seed, and evaluates every run the same way on
held-out images:

* reconstruction PSNR of the INR at observed fractions 0.05 and 0.1 beside the best interpolation
  baseline on the same pixels (:func:`mambajepa.eval.recon.evaluate_recon`);
* linear probes of shape, colour and position on the mean-pooled features of 10 % of the pixels,
  trained and at random init (:func:`mambajepa.eval.probe.probe_run`), with the feature std and
  effective rank.

The speed table times the set encoder (Mamba blocks against Transformer blocks of the recipe's
width and depth) on full target passes of 1024 pixels (32 x 32) and 4096 pixels (64 x 64):
samples/s of the forward pass without gradient, and of forward + backward::

    python benchmarks/nf_ablation.py --steps 300 [--variants ours use_mamba_false] [--json out.json]
    python benchmarks/nf_ablation.py --speed-only
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
from mambajepa.encoders.field import NeuralFieldConfig, NeuralFieldEncoder, pixel_grid
from mambajepa.eval.probe import probe_run
from mambajepa.eval.recon import evaluate_recon, held_out_images
from mambajepa.eval.runs import load_run
from mambajepa.train.trainer import run_training

#: variant -> overrides of the recipe (the design input's ablation flags)
VARIANTS: dict[str, list[str]] = {
    "ours": [],
    "use_mamba_false": ["--use_mamba=false"],
    "pred_mode_pool": ["--pred_mode=pool"],
    "recon_weight_0": ["--recon_weight=0.0"],
    "cosine": ["--jepa_loss_type=cosine"],
    "obs_frac_0.05": ["--obs_frac=0.05"],
    "obs_frac_0.2": ["--obs_frac=0.2"],
}
PROBE_TASKS = ("shape", "colour", "position")
FRACTIONS = (0.05, 0.1)


def run_variant(name: str, config: Any, out_dir: Path, n_images: int, n_probe: int) -> dict[str, Any]:
    """Train one variant into ``out_dir/name`` (resuming a finished run) and evaluate it."""
    run_dir = out_dir / name
    start = time.perf_counter()
    summary = run_training(config, run_dir, resume="auto")
    trained = time.perf_counter() - start
    method = load_run(run_dir).method.eval()
    images, _ = held_out_images(config, n_images)
    recon = evaluate_recon(method, images, FRACTIONS)
    probe_cfg = dataclasses.replace(
        config.probe,
        obs_frac=0.1,
        n_train=n_probe,
        n_eval=n_probe // 2,
        tasks=list(PROBE_TASKS),
        attentive=False,
    )
    probe = probe_run(run_dir, probe_cfg)
    row: dict[str, Any] = {"train_s": trained, "val_jepa_loss": summary.get("val/jepa_loss")}
    for frac in FRACTIONS:
        entry = recon["fractions"][str(frac)]
        best = entry["best_baseline"]
        row[f"psnr_{frac}"] = entry["ours"]["psnr"]
        row[f"baseline_{frac}"] = {"name": best, "psnr": entry[best]["psnr"]}
    for task in PROBE_TASKS:
        row[task] = {
            "trained": probe[task]["linear_acc"],
            "random_init": probe["random_init"][task]["linear_acc"],
        }
        row[task]["chance"] = probe[task]["chance"]
    row["feature_std"], row["effective_rank"] = probe["feature_std"], probe["effective_rank"]
    return row


def format_ablation(rows: dict[str, dict[str, Any]]) -> str:
    """One line per variant: PSNR beside the best baseline, probes beside random init, collapse."""
    head = (
        f"{'variant':<16} {'PSNR .05':>8} {'(interp)':>8} {'PSNR .1':>8} {'(interp)':>8} "
        + " ".join(f"{t[:6]:>6} {'(init)':>6}" for t in PROBE_TASKS)
        + f" {'std':>6} {'rank':>5} {'train s':>7}"
    )
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        probes = " ".join(f"{r[t]['trained']:>6.3f} {r[t]['random_init']:>6.3f}" for t in PROBE_TASKS)
        lines.append(
            f"{name:<16} {r['psnr_0.05']:>8.2f} {r['baseline_0.05']['psnr']:>8.2f} {r['psnr_0.1']:>8.2f} "
            f"{r['baseline_0.1']['psnr']:>8.2f} {probes} {r['feature_std']:>6.3f} {r['effective_rank']:>5.1f} "
            f"{r['train_s']:>7.0f}"
        )
    first = next(iter(rows.values()))
    lines.append(
        "chance: "
        + ", ".join(f"{t} {first[t]['chance']:.3f}" for t in PROBE_TASKS)
        + f"; interp = the best of nearest / inverse-distance / mean colour ({first['baseline_0.1']['name']} at 0.1)"
    )
    return "\n".join(lines)


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _forward(encoder: NeuralFieldEncoder, coords: torch.Tensor, values: torch.Tensor) -> None:
    with torch.no_grad():
        encoder(coords, values)


def _forward_backward(encoder: NeuralFieldEncoder, coords: torch.Tensor, values: torch.Tensor) -> None:
    encoder(coords, values).tokens.square().mean().backward()


def speed_table(encoder_kwargs: dict[str, Any], batch: int, repeats: int) -> list[dict[str, Any]]:
    """Samples/s of the Mamba and the Transformer set encoder on full passes of 32² and 64² pixels."""
    rows = []
    for side in (32, 64):
        coords = pixel_grid(side, side).expand(batch, -1, -1).contiguous()
        values = torch.rand(batch, side * side, 3)
        for use_mamba in (True, False):
            torch.manual_seed(0)
            encoder = NeuralFieldEncoder(NeuralFieldConfig(**{**encoder_kwargs, "use_mamba": use_mamba}))
            args = (encoder, coords, values)
            fwd = _best_seconds(lambda a=args: _forward(*a), repeats)
            fb = _best_seconds(lambda a=args: _forward_backward(*a), repeats)
            rows.append(
                {
                    "pixels": side * side,
                    "blocks": "mamba" if use_mamba else "transformer",
                    "params": sum(p.numel() for p in encoder.parameters()),
                    "fwd_samples_per_s": batch / fwd,
                    "fwd_bwd_samples_per_s": batch / fb,
                }
            )
    return rows


def format_speed(rows: list[dict[str, Any]]) -> str:
    head = f"{'pixels':>6} {'blocks':<12} {'params':>8} {'fwd samples/s':>14} {'f+b samples/s':>14} {'mamba/transf.':>14}"
    lines = [head, "-" * len(head)]
    by_key = {(r["pixels"], r["blocks"]): r for r in rows}
    for r in rows:
        other = by_key[(r["pixels"], "transformer")]
        ratio = r["fwd_samples_per_s"] / other["fwd_samples_per_s"] if r["blocks"] == "mamba" else None
        lines.append(
            f"{r['pixels']:>6} {r['blocks']:<12} {r['params']:>8,} {r['fwd_samples_per_s']:>14.1f} "
            f"{r['fwd_bwd_samples_per_s']:>14.1f} {'' if ratio is None else f'{ratio:.2f}x fwd':>14}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/nf_shapes.yaml", help="the recipe")
    parser.add_argument("--steps", type=int, default=300, help="updates per variant")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--n-images", type=int, default=256, help="held-out images of the reconstruction")
    parser.add_argument(
        "--n-probe", type=int, default=1000, help="probe training items (half as many held out)"
    )
    parser.add_argument("--out-dir", default="runs/nf_ablation", help="where the variants' runs go")
    parser.add_argument("--speed-only", action="store_true", help="only the encoder speed table")
    parser.add_argument("--speed-batch", type=int, default=8, help="batch of the speed table")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (best kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = ["--train.progress=false", "--train.plots=false", f"--train.max_steps={args.steps}"]
    config = load_config(args.config, base)
    print(
        f"# nf ablation: {args.config}, {args.steps} steps per variant, torch {torch.__version__}, "
        f"{platform.machine()}, {torch.get_num_threads()} threads",
        flush=True,
    )
    results: dict[str, Any] = {}
    if not args.speed_only:
        rows = {}
        for name in args.variants:
            print(f"# training {name} {' '.join(VARIANTS[name])}", flush=True)
            variant = load_config(args.config, [*base, *VARIANTS[name], f"--name=nf_ablation_{name}"])
            rows[name] = run_variant(name, variant, Path(args.out_dir), args.n_images, args.n_probe)
        print(format_ablation(rows))
        results["ablation"] = rows
    kwargs = {k: v for k, v in config.encoder.kwargs.items() if k in NeuralFieldConfig.__dataclass_fields__}
    speed = speed_table(kwargs, args.speed_batch, args.repeats)
    print(format_speed(speed))
    results["speed"] = speed
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
