"""Benchmarks runnable as ``mambajepa bench NAME``: each module here exposes ``main(argv) -> int | None``.

``mambajepa bench all`` runs every module found, in name order.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from mambajepa.core.errors import ConfigError
from mambajepa.core.names import did_you_mean

__all__ = ["list_benches", "run_bench"]


def list_benches() -> list[str]:
    """Names of the benchmark modules in this package."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def run_bench(name: str, argv: list[str] | None = None) -> int:
    """Run ``mambajepa.bench.<name>.main(argv)``, or every benchmark for ``name == "all"``.

    Args:
        name: a benchmark module name, or ``"all"``.
        argv: arguments passed to each benchmark's ``main``.

    Returns:
        0 when every benchmark returned 0 (or ``None``), else the first non-zero status.

    Raises:
        ConfigError: no benchmark of that name (the closest one is suggested).
    """
    argv = list(argv or [])
    known = list_benches()
    if name == "all":
        status = 0
        for bench in known:
            print(f"== bench {bench}", flush=True)
            code = int(importlib.import_module(f"{__name__}.{bench}").main(argv) or 0)
            status = status or code
        if not known:
            print("no benchmarks installed", file=sys.stderr)
        return status
    if name not in known:
        hint = did_you_mean(name, known)
        raise ConfigError(f"unknown benchmark {name!r}{hint} (known: {', '.join(known) or 'none'}, or 'all')")
    return int(importlib.import_module(f"{__name__}.{name}").main(argv) or 0)
