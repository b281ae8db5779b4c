"""``mambajepa eval``: frozen-feature evaluation of a trained run.

``mambajepa eval probe --checkpoint RUN`` fits linear, kNN and attentive probes on the run's
encoder and on its random initialisation, prints the table and writes ``RUN/probe.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``eval`` sub-commands to ``parser``."""
    sub = parser.add_subparsers(dest="eval_command", metavar="{probe}")
    probe = sub.add_parser(
        "probe",
        help="linear / kNN / attentive probes and collapse statistics vs the random-init encoder",
        description="Probe the frozen encoder of a JEPA run and of its random initialisation.",
        allow_abbrev=False,
    )
    probe.add_argument(
        "--checkpoint", required=True, metavar="RUN", help="run dir, checkpoints dir or step_<N> dir"
    )
    probe.add_argument(
        "--out", default=None, help="where to write probe.json (default: <run dir>/probe.json)"
    )
    probe.add_argument("--n-train", type=int, default=None, help="items the probes are fitted on")
    probe.add_argument("--n-eval", type=int, default=None, help="held-out items the probes are scored on")
    probe.add_argument(
        "--encoder", choices=("target", "context"), default=None, help="which encoder to probe"
    )
    probe.add_argument(
        "--tasks", nargs="+", default=None, help="labels to probe (default: every visible one)"
    )
    probe.add_argument("--no-attentive", action="store_true", help="skip the attentive probe")
    probe.add_argument("--task", default="shape", help="main task of the learning criterion line")


def _run_dir(checkpoint: Path) -> Path:
    """The run directory that holds ``checkpoint`` (``RUN/checkpoints/step_N`` -> ``RUN``)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint


def run(args: argparse.Namespace) -> int:
    """Run the selected ``eval`` sub-command.

    Returns:
        0 on success, 2 when no sub-command was given.
    """
    if getattr(args, "eval_command", None) != "probe":
        print("usage: mambajepa eval probe --checkpoint RUN")
        return 2
    from mambajepa.eval.probe import (
        format_probe_table,
        learning_criterion,
        load_run,
        probe_run,
        write_probe_json,
    )

    config, ckpt, _ = load_run(args.checkpoint)
    changes = {
        "n_train": args.n_train,
        "n_eval": args.n_eval,
        "encoder": args.encoder,
        "tasks": args.tasks,
        "attentive": False if args.no_attentive else None,
    }
    probe_cfg = dataclasses.replace(config.probe, **{k: v for k, v in changes.items() if v is not None})
    results = probe_run(ckpt, probe_cfg, progress=True)
    out = Path(args.out) if args.out else _run_dir(ckpt) / "probe.json"
    write_probe_json(results, out)
    print(format_probe_table(results))
    if args.task in results:
        c = learning_criterion(results, args.task)
        print(
            f"criterion ({c['task']}): error {c['error']:.3f} vs random-init {c['random_init_error']:.3f} "
            f"(ratio {c['error_ratio']:.2f}, need <= 0.5); other tasks worse: {c['worse_tasks'] or 'none'}; "
            f"collapsed: {c['collapsed']} -> {'PASS' if c['passed'] else 'FAIL'}"
        )
    print(f"wrote {out}")
    return 0
