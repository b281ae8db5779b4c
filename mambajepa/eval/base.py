"""The contract of a registered evaluation (``mambajepa eval NAME --checkpoint RUN``).

An evaluation is a class registered with :func:`mambajepa.registry.register_evaluation`, which
also says which methods offer it (a predicate on the method class or a list of method names).
``mambajepa eval`` builds one sub-command per registered evaluation: it adds ``--checkpoint RUN``,
lets :meth:`Evaluation.configure` add the evaluation's own flags, checks that the run's method
offers the evaluation and calls :meth:`Evaluation.run`::

    @register_evaluation("psnr", applies_to=["nf_jepa"])
    class PSNR(Evaluation):
        help = "reconstruction PSNR at several observation fractions"

        def configure(self, parser):
            parser.add_argument("--obs_frac", type=float, default=0.05)

        def run(self, args):
            run = load_run(args.checkpoint)
            ...
            return 0
"""

from __future__ import annotations

import abc
import argparse
from typing import ClassVar

__all__ = ["Evaluation"]


class Evaluation(abc.ABC):
    """Base class of registered evaluations."""

    #: the sub-command name (set by ``register_evaluation``)
    name: ClassVar[str] = ""
    #: one line shown by ``mambajepa eval --help`` and ``--list``
    help: ClassVar[str] = ""
    #: the sub-command's description (default: ``help``)
    description: ClassVar[str] = ""

    def configure(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027  (optional hook)
        """Add this evaluation's flags to its sub-command (``--checkpoint`` is already there)."""

    @abc.abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Evaluate the run ``args.checkpoint``; return the process exit status."""
