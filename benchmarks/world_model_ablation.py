"""World-model ablations on Two Rooms at equal budgets: what each loss term and the Mamba-3 predictor buy.

Trains ``configs/world_model_two_rooms.yaml`` and its variants for the same number of updates on
the same trajectories, and plans the same held-out episodes with each (``mambajepa eval plan``'s
:func:`~mambajepa.eval.plan.run_policies`):

* ``ours``: the recipe (Mamba-3 predictor), planned with MPPI;
* ``no_variance``: without the VICReg variance term;
* ``no_inverse_dynamics``: without the inverse-dynamics term;
* ``gru``: a GRU predictor of about the same parameter count (width 68, 2 layers: 60.9k vs 62.0k);
* ``cem``: the recipe's model planned with CEM instead of MPPI.

Prints one table of success rate, steps to success and planning seconds per action, with the
greedy policy of the same episodes beside it::

    python benchmarks/world_model_ablation.py --steps 1000 --episodes 50 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from mambajepa.config import load_config
from mambajepa.eval.plan import run_policies
from mambajepa.eval.runs import load_run
from mambajepa.planning import PlannerConfig
from mambajepa.train.trainer import run_training

#: variant -> (overrides of the recipe, planner)
VARIANTS: dict[str, tuple[list[str], str]] = {
    "ours": ([], "mppi"),
    "no_variance": (["--loss.variance=0"], "mppi"),
    "no_inverse_dynamics": (["--loss.inverse_dynamics=0"], "mppi"),
    "gru": (["--predictor.kind=gru", "--predictor.d_model=68"], "mppi"),
    "cem": ([], "cem"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/world_model_two_rooms.yaml")
    parser.add_argument("--steps", type=int, default=1000, help="updates per trained variant")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1_000_000, help="episode i uses seed + i")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out-dir", default="runs/world_model_ablation")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = ["--train.progress=false", "--train.plots=false", f"--train.max_steps={args.steps}"]
    print(
        f"# world-model ablation: {args.config}, {args.steps} steps, {args.episodes} episodes, "
        f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads",
        flush=True,
    )
    rows: dict[str, Any] = {}
    trained: dict[tuple[str, ...], Path] = {}
    greedy = None
    for name in args.variants:
        overrides, planner = VARIANTS[name]
        config = load_config(args.config, [*base, *overrides])
        key = tuple(overrides)
        if key not in trained:  # cem plans with the model of ours
            run_dir = Path(args.out_dir) / (name if overrides else "ours")
            start = time.perf_counter()
            run_training(config, run_dir, resume="auto")
            print(f"# trained {run_dir.name} in {time.perf_counter() - start:.0f} s", flush=True)
            trained[key] = run_dir
        method = load_run(trained[key]).method.eval()
        p = config.plan
        planner_config = PlannerConfig(
            horizon=p.horizon, samples=p.samples, iterations=p.iterations, elites=p.elites,
            temperature=p.temperature, max_norm=config.env.max_norm, seed=args.seed,
        )  # fmt: skip
        policies = ("model", "greedy") if greedy is None else ("model",)
        results = run_policies(method, config.env, args.episodes, args.seed, planner, planner_config, p.execute,
                               policies=policies)  # fmt: skip
        greedy = greedy or results["greedy"]
        rows[name] = {k: v for k, v in results["model"].items() if k != "episodes"}
    rows["greedy"] = {k: v for k, v in greedy.items() if k != "episodes"}
    head = f"{'variant':<20} {'success':>8} {'steps':>7} {'s/action':>9}"
    print(head + "\n" + "-" * len(head))
    for name, r in rows.items():
        steps = "-" if r["mean_steps_to_success"] is None else f"{r['mean_steps_to_success']:.1f}"
        print(f"{name:<20} {r['success_rate']:>8.3f} {steps:>7} {r['seconds_per_action']:>9.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
