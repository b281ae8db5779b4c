"""The ``mambajepa`` command: ``train | eval | export | bench | info | demo | data``.

``eval``, ``export`` and ``data`` live in ``mambajepa.{eval,io,data}.commands`` (each exposing
``configure(parser)`` and ``run(args) -> int``) and are imported only when used.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from mambajepa.core.errors import MambaJepaError, TrainingDiverged

__all__ = ["main", "build_parser"]

# sub-command -> (module implementing it, one-line help)
_DELEGATED = {
    "eval": ("mambajepa.eval.commands", "evaluate a trained run (linear probe, zero-shot, retrieval, ...)"),
    "export": ("mambajepa.io.commands", "export or convert weights (safetensors, pretrained layouts)"),
    "data": ("mambajepa.data.commands", "prepare, inspect or generate data sets"),
}

_TRAIN_EPILOG = """\
overrides:
  Any config field as --section.key=value or --section.key value (YAML scalars), e.g.
  --train.lr=3e-4 --train.max_steps 500 --model.depth 6; short aliases of a method
  (e.g. --obs_frac 0.05) work too. Unknown keys are errors naming the closest valid key.

examples:
  mambajepa train debug_tiny --run-dir runs/tiny --train.max_steps=50
  mambajepa train configs/debug_tiny.yaml --run-dir runs/tiny --resume auto
  torchrun --nproc_per_node=2 -m mambajepa train debug_tiny --run-dir runs/ddp
"""


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a method from a YAML recipe",
        description="Train the method named by a recipe's 'method:' key.",
        epilog=_TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("config", help="recipe YAML path, or a recipe name from configs/ (e.g. debug_tiny)")
    p.add_argument("--run-dir", default=None, help="run directory (default: runs/<config name>)")
    p.add_argument(
        "--resume",
        default=None,
        metavar="auto|PATH",
        help="'auto': continue from the latest valid checkpoint of the run dir (fresh start if none); "
        "PATH: a checkpoint or run directory",
    )
    p.set_defaults(handler=_cmd_train, accepts_overrides=True)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark (ssm, data, encoders, ... or all)",
        description="Run mambajepa.bench.<NAME>.main(argv); 'all' runs every benchmark module.",
        allow_abbrev=False,
    )
    p.add_argument("name", help="benchmark name, or 'all'")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    p.set_defaults(handler=_cmd_bench)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="versions, device, optional kernels, registered models/methods/datasets/evaluations/recipes",
        description="Print the environment and what is registered.",
    )
    p.set_defaults(handler=_cmd_info)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="Mamba3-JEPA on ShapesWorld end to end",
        description="Pre-train the X-encoder (I-JEPA), freeze it, train the two VL stages, evaluate on held-out "
        "data and print the results table.",
    )
    p.add_argument("--run-dir", default="runs/demo", help="where to write the demo run (default: runs/demo)")
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also train the VL stages on a random-init X-encoder (about 4 min)",
    )
    p.set_defaults(handler=_cmd_demo)


def _add_delegated(sub: argparse._SubParsersAction, name: str, configure: bool) -> None:
    module_name, help_text = _DELEGATED[name]
    p = sub.add_parser(name, help=help_text, description=help_text.capitalize() + ".", allow_abbrev=False)
    if not configure:  # only the command being run imports its module
        return
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is None or not module_name.startswith(err.name):
            raise
        p.description = f"{p.description} (not available: {module_name} is missing)"
        p.set_defaults(handler=_missing_command(name), missing=True)
        return
    module.configure(p)
    p.set_defaults(handler=module.run)


def _missing_command(name: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        print(
            f"error: 'mambajepa {name}' is not available in this installation "
            f"({_DELEGATED[name][0]} is missing)",
            file=sys.stderr,
        )
        return 2

    return handler


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; ``command`` selects which delegated sub-command module is imported."""
    from mambajepa import __version__

    parser = argparse.ArgumentParser(
        prog="mambajepa",
        description="JEPA world models on state-space (Mamba) backbones.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"mambajepa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,export,bench,info,demo,data}")
    _add_train(sub)
    for name in ("eval", "export"):
        _add_delegated(sub, name, configure=command == name)
    _add_bench(sub)
    _add_info(sub)
    _add_demo(sub)
    _add_delegated(sub, "data", configure=command == "data")
    return parser


# ----------------------------------------------------------------------------------------------
# handlers


def _cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mambajepa.config import load_config, resolve_recipe
    from mambajepa.train.trainer import run_training

    cfg = load_config(resolve_recipe(args.config), args.overrides)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / cfg.name
    summary = run_training(cfg, run_dir, resume=args.resume)
    if summary.get("is_main", True):
        val = ", ".join(f"{k}={v:.4g}" for k, v in summary["val"].items())
        print(
            f"trained {cfg.method} to step {summary['step']}: loss={summary['loss']:.4g}"
            + (f", {val}" if val else "")
        )
        print(f"checkpoint: {summary['checkpoint']}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from mambajepa.bench import run_bench

    return run_bench(args.name, list(args.bench_args))


def _cmd_info(args: argparse.Namespace) -> int:
    import platform

    import torch

    from mambajepa import __version__
    from mambajepa.config import list_recipes
    from mambajepa.registry import list_datasets, list_evaluations, list_methods, list_models
    from mambajepa.ssm.dispatch import kernel_available

    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.device_count()}x {torch.cuda.get_device_name(0)})"
    else:
        device = "cpu (CUDA not available)"
    yes_no = {True: "yes", False: "no"}
    lines = [
        f"mambajepa      {__version__}",
        f"python         {platform.python_version()}",
        f"torch          {torch.__version__}",
        f"device         {device}",
        f"mamba_ssm      {yes_no[kernel_available('mamba_ssm')]}",
        f"causal_conv1d  {yes_no[kernel_available('causal_conv1d')]}",
        f"models         {', '.join(list_models()) or '-'}",
        f"methods        {', '.join(list_methods()) or '-'}",
        f"datasets       {', '.join(list_datasets()) or '-'}",
        f"evaluations    {', '.join(list_evaluations()) or '-'}",
        f"recipes        {', '.join(list_recipes()) or '-'}",
    ]
    print("\n".join(lines))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mambajepa.demo import run_demo

    return run_demo(args.run_dir, baselines=args.baselines)


# ----------------------------------------------------------------------------------------------


def _command_of(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mambajepa`` and ``python -m mambajepa``.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        Process exit status: 0 success, 1 training diverged, 2 usage / config / data errors.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "missing", False):
        return args.handler(args)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    try:
        return int(args.handler(args) or 0)
    except TrainingDiverged as err:
        print(f"error: training diverged: {err}", file=sys.stderr)
        return 1
    except MambaJepaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
