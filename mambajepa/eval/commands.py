"""``mambajepa eval``: run a registered evaluation on a trained run.

``mambajepa eval NAME --checkpoint RUN [flags]`` runs evaluation ``NAME`` (one sub-command per
evaluation registered with :func:`mambajepa.registry.register_evaluation`) after checking that
the run's method offers it; ``mambajepa eval --list --checkpoint RUN`` lists the evaluations that
run's method offers (without ``--checkpoint``: every registered one). For example
``mambajepa eval probe --checkpoint RUN`` fits linear, kNN and attentive probes on the run's
features and on its random initialisation, prints the table and writes ``RUN/probe.json``.
"""

from __future__ import annotations

import argparse

from mambajepa.core.errors import ConfigError
from mambajepa.eval.runs import run_method
from mambajepa.registry import get_evaluation, list_evaluations

__all__ = ["configure", "run"]


def _help(name: str) -> str:
    return getattr(get_evaluation(name), "help", "")


def _help_lines(names: list[str]) -> str:
    width = max((len(n) for n in names), default=0)
    return "\n".join(f"  {n:<{width}}  {_help(n)}" for n in names)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``--list`` and one sub-command per registered evaluation to ``parser``."""
    names = list_evaluations()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n  mambajepa eval --list --checkpoint runs/ijepa_shapes\n"
        "  mambajepa eval probe --checkpoint runs/ijepa_shapes --n-train 500"
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the evaluations the run's method offers (every registered one without --checkpoint)",
    )
    parser.add_argument(
        "--checkpoint", dest="list_checkpoint", default=None, metavar="RUN", help="the run of --list"
    )
    sub = parser.add_subparsers(dest="evaluation", metavar="{" + ",".join(names) + "}", title="evaluations")
    for name in names:
        evaluation = get_evaluation(name)
        p = sub.add_parser(
            name,
            help=_help(name),
            description=getattr(evaluation, "description", "") or _help(name),
            allow_abbrev=False,
        )
        p.add_argument(
            "--checkpoint", required=True, metavar="RUN", help="run dir, checkpoints dir or step_<N> dir"
        )
        evaluation().configure(p)


def offered(checkpoint: str) -> tuple[str, list[str]]:
    """The method name of the run at ``checkpoint`` and the evaluations it offers."""
    method_cls = run_method(checkpoint)
    return method_cls.name, list_evaluations(method_cls)


def run(args: argparse.Namespace) -> int:
    """List the evaluations, or run the selected one.

    Returns:
        The evaluation's exit status; 0 for ``--list``; 2 when no evaluation was named.

    Raises:
        ConfigError: the run's method does not offer the evaluation (the ones it offers are listed).
    """
    if args.list:
        if args.list_checkpoint is None:
            print("registered evaluations:\n" + (_help_lines(list_evaluations()) or "  none"))
            return 0
        method, names = offered(args.list_checkpoint)
        if not names:
            print(f"method {method!r} of {args.list_checkpoint} offers no evaluation")
            return 0
        print(f"evaluations of method {method!r} ({args.list_checkpoint}):\n{_help_lines(names)}")
        return 0
    if args.evaluation is None:
        print("usage: mambajepa eval NAME --checkpoint RUN  (mambajepa eval --list --checkpoint RUN)")
        return 2
    method, names = offered(args.checkpoint)
    if args.evaluation not in names:
        raise ConfigError(
            f"method {method!r} of {args.checkpoint} does not offer evaluation {args.evaluation!r}; "
            f"it offers: {', '.join(names) or 'none'}"
        )
    return int(get_evaluation(args.evaluation)().run(args) or 0)
