"""A run as a list of stages, each with its own length, schedule, batch, loss weights, data and freezing.

:func:`resolve_stages` turns a config's ``stages:`` (or, without one, its ``train`` section) into
:class:`Stage` records whose every field is set. A stage is measured in optimizer updates or in
tokens; its schedules are pure functions of (stage, position in stage), the position being the
updates or the tokens done in that stage. :class:`RunPosition` is where a run stands; it is all a
resumed run needs besides the weights and the optimizer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from mambajepa.config import RunConfig, StageConfig, config_hash, config_to_dict
from mambajepa.core.errors import ConfigError
from mambajepa.core.schedules import lr_at, weight_decay_at

__all__ = ["Stage", "RunPosition", "resolve_stages"]

Unit = Literal["steps", "tokens"]


@dataclass(frozen=True)
class Stage:
    """One resolved stage (every field set).

    Attributes:
        index: position in the run.
        name: label in logs.
        unit: what ``length`` and ``warmup`` count: optimizer updates or tokens.
        length: the stage ends once this many updates (or tokens) are done.
        lr, min_lr, warmup, lr_schedule: the learning-rate schedule over the stage.
        weight_decay, final_weight_decay, weight_decay_schedule: the weight-decay schedule.
        batch_size: global batch.
        grad_accum: micro-batches per update.
        loss_weights: weights of the method's loss terms.
        freeze: module paths frozen in this stage.
        has_data_overrides: whether the stage changes the ``data`` section.
        config_hash: hash of the stage's resolved settings (a resumed stage whose settings changed warns).
    """

    index: int
    name: str
    unit: Unit
    length: int
    lr: float
    min_lr: float
    warmup: int
    lr_schedule: str
    weight_decay: float
    final_weight_decay: float | None
    weight_decay_schedule: str
    batch_size: int
    grad_accum: int
    loss_weights: dict[str, float]
    freeze: tuple[str, ...]
    has_data_overrides: bool
    config_hash: str

    def lr_at(self, position: int) -> float:
        """Learning rate of the update at ``position`` (updates or tokens done in the stage)."""
        return lr_at(position, self.length, self.lr, self.min_lr, self.warmup, self.lr_schedule)

    def weight_decay_at(self, position: int) -> float:
        """Weight decay of the update at ``position``."""
        return weight_decay_at(
            position, self.length, self.weight_decay, self.final_weight_decay, self.weight_decay_schedule
        )


@dataclass
class RunPosition:
    """Where a run stands: global counters and the position inside the current stage."""

    step: int = 0  # optimizer updates done in the run
    stage: int = 0  # index of the current stage
    step_in_stage: int = 0  # updates done in the current stage
    tokens_in_stage: int = 0  # tokens trained on in the current stage
    samples_seen: int = 0  # samples trained on in the run (all ranks)
    tokens_seen: int = 0  # tokens trained on in the run (all ranks)

    def in_stage(self, stage: Stage) -> int:
        """Position inside ``stage`` in the stage's unit."""
        return self.step_in_stage if stage.unit == "steps" else self.tokens_in_stage

    def stage_done(self, stage: Stage) -> bool:
        """Whether ``stage`` has reached its length."""
        return self.in_stage(stage) >= stage.length

    def next_stage(self) -> None:
        """Move to the start of the following stage."""
        self.stage += 1
        self.step_in_stage = 0
        self.tokens_in_stage = 0

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunPosition:
        """Read the position from ``trainer.json`` (checkpoints without stages sit in stage 0)."""
        step = int(data["step"])
        return cls(
            step=step,
            stage=int(data.get("stage", 0)),
            step_in_stage=int(data.get("step_in_stage", step)),
            tokens_in_stage=int(data.get("tokens_in_stage", 0)),
            samples_seen=int(data.get("samples_seen", 0)),
            tokens_seen=int(data.get("tokens_seen", 0)),
        )


def resolve_stages(config: RunConfig) -> list[Stage]:
    """The run's stages with every unset field taken from ``config.train``.

    Without ``stages:`` the run is one stage of ``train.max_steps`` updates named ``train``.

    Raises:
        ConfigError: a warm-up longer than its stage, or a batch that does not split into its
            micro-batches (naming the stage).
    """
    tc = config.train
    specs = config.stages
    if not specs:
        base = {"name": "train", "steps": tc.max_steps}
        specs = [StageConfig(**base)]
    stages = []
    for i, spec in enumerate(specs):
        name = spec.name or f"stage{i}"
        if spec.steps is not None:
            unit, length = "steps", spec.steps
        elif spec.tokens is not None:
            unit, length = "tokens", spec.tokens
        elif tc.max_tokens is not None:
            unit, length = "tokens", max(1, round(spec.fraction * tc.max_tokens))
        else:
            unit, length = "steps", max(1, round(spec.fraction * tc.max_steps))
        warmup = spec.warmup if spec.warmup is not None else (tc.warmup_steps if unit == "steps" else 0)
        if warmup > length:
            raise ConfigError(
                f"stages[{i}] ({name}): warmup={warmup} exceeds the stage's length {length} {unit}"
            )
        batch = spec.batch_size or tc.batch_size
        accum = spec.grad_accum or tc.grad_accum
        if batch % accum:
            raise ConfigError(
                f"stages[{i}] ({name}): batch_size={batch} is not divisible by grad_accum={accum}"
            )
        lr = spec.lr if spec.lr is not None else tc.lr
        min_lr = spec.min_lr if spec.min_lr is not None else min(tc.min_lr, lr)
        if min_lr > lr:
            raise ConfigError(f"stages[{i}] ({name}): min_lr={min_lr} exceeds lr={lr}")
        fields = {
            "index": i,
            "name": name,
            "unit": unit,
            "length": length,
            "lr": lr,
            "min_lr": min_lr,
            "warmup": warmup,
            "lr_schedule": spec.lr_schedule or tc.lr_schedule,
            "weight_decay": spec.weight_decay if spec.weight_decay is not None else tc.weight_decay,
            "final_weight_decay": (
                spec.final_weight_decay if spec.final_weight_decay is not None else tc.final_weight_decay
            ),
            "weight_decay_schedule": tc.weight_decay_schedule,
            "batch_size": batch,
            "grad_accum": accum,
            "loss_weights": dict(spec.loss_weights),
            "freeze": tuple(spec.freeze),
            "has_data_overrides": bool(spec.data),
        }
        digest = config_hash({**fields, "data": config_to_dict(spec.data)})
        stages.append(Stage(**fields, config_hash=digest))
    return stages
