"""Training engine: the method-agnostic :class:`Trainer`, optimizer groups, schedules, checkpoints."""

from mambajepa.core.checkpoint import (
    best_checkpoint,
    latest_valid_checkpoint,
    load_checkpoint_weights,
    resolve_checkpoint,
)
from mambajepa.core.schedules import ema_momentum, lr_at, weight_decay_at
from mambajepa.train.optim import build_optimizer, split_param_groups
from mambajepa.train.trainer import Trainer, run_training, seed_everything

__all__ = [
    "Trainer",
    "run_training",
    "seed_everything",
    "split_param_groups",
    "build_optimizer",
    "lr_at",
    "weight_decay_at",
    "ema_momentum",
    "load_checkpoint_weights",
    "latest_valid_checkpoint",
    "best_checkpoint",
    "resolve_checkpoint",
]
