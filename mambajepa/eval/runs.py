"""Trained runs rebuilt for evaluation, whatever their method.

A run's checkpoint directory holds the resolved ``config.yaml``; its ``method:`` key names the
registered method, whose ``config_cls`` rebuilds the typed config and whose ``from_config`` the
model, into which the checkpoint's weights load strictly::

    run = load_run("runs/ijepa_shapes")
    features = run.method.encode(images)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mambajepa.config import RunConfig, load_config
from mambajepa.core.errors import CheckpointError
from mambajepa.methods.base import Method
from mambajepa.registry import get_method

__all__ = ["Run", "init_method", "load_run", "read_run_config", "run_dir_of", "run_method"]


@dataclass
class Run:
    """A trained run, rebuilt.

    Attributes:
        config: the run's typed config (the method's ``config_cls``).
        method: the method with the checkpoint's weights, in eval mode, on the CPU.
        checkpoint: the checkpoint directory the weights came from (``RUN/checkpoints/step_N``).
        run_dir: the run directory that holds it.
    """

    config: RunConfig
    method: Method
    checkpoint: Path
    run_dir: Path


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory that holds ``checkpoint`` (``RUN/checkpoints/step_N`` -> ``RUN``)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint


def _config_data(path: str | Path) -> tuple[dict[str, Any], Path]:
    from mambajepa.core.checkpoint import resolve_checkpoint

    ckpt = resolve_checkpoint(path)
    source = ckpt / "config.yaml"
    try:
        data = yaml.safe_load(source.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise CheckpointError(f"cannot read the run config {source}: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("method"), str):
        raise CheckpointError(f"{source} names no method (a top-level 'method:' key)")
    return data, ckpt


def run_method(path: str | Path) -> type[Method]:
    """The method class of the run at ``path``, read from its config without building anything.

    Raises:
        CheckpointError: no valid checkpoint, or a config that names no method.
        ConfigError: a method that is not registered (the closest name suggested).
    """
    data, _ = _config_data(path)
    return get_method(data["method"])


def read_run_config(path: str | Path, overrides: list[str] | None = None) -> tuple[RunConfig, Path]:
    """The typed config of a run and its checkpoint directory.

    Args:
        path: a run directory, its ``checkpoints`` directory or one ``step_<N>`` directory.
        overrides: dotted overrides applied to the stored config (``["--probe.n_train=500"]``).

    Returns:
        ``(config, checkpoint_dir)``.

    Raises:
        CheckpointError: no valid checkpoint, or an unreadable config.
        ConfigError: a config (or override) the method's ``config_cls`` does not accept.
    """
    data, ckpt = _config_data(path)
    return load_config(data, overrides), ckpt


def init_method(config: RunConfig) -> Method:
    """The method of ``config`` as initialised at the start of training (same seeding as the trainer)."""
    from mambajepa.train.trainer import seed_everything

    seed_everything(config.train.seed)
    return get_method(config.method).from_config(config).eval()


def load_run(path: str | Path, overrides: list[str] | None = None, config: RunConfig | None = None) -> Run:
    """Rebuild any method's trained run.

    Args:
        path: a run directory, its ``checkpoints`` directory or one ``step_<N>`` directory.
        overrides: dotted overrides applied to the stored config before building.
        config: use this config instead of the stored one (for a run whose config was read with
            :func:`read_run_config` and then changed); ``overrides`` are ignored then.

    Returns:
        The :class:`Run`.

    Raises:
        CheckpointError: no valid checkpoint, or weights that do not fit the config (the missing
            and unexpected keys are listed).
        ConfigError: a method that is not registered, or a config it does not accept.
    """
    from mambajepa.core.checkpoint import load_checkpoint_weights

    stored, ckpt = read_run_config(path, overrides)
    config = config if config is not None else stored
    method = init_method(config)
    weights = load_checkpoint_weights(ckpt)
    try:
        method.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"weights of {ckpt} do not fit the {config.method!r} run's config: {err}"
        ) from None
    return Run(config=config, method=method.eval(), checkpoint=ckpt, run_dir=run_dir_of(ckpt))
