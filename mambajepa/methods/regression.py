"""MLP regression of a fixed random function: the smallest real method, used to exercise the engine.

A frozen random "teacher" MLP (seeded by ``data.seed``) maps Gaussian inputs to targets (the
registered dataset ``random_function``); a small "student" MLP learns it with an MSE loss.
Everything is generated in memory, trains in seconds on a CPU, and shows real learning
(validation MSE falls far below the target variance). Its samples carry no class labels, so the
method implements no :meth:`~mambajepa.methods.base.Method.encode` and offers no ``probe``.

Dimensions: ``B`` batch, ``I`` input features, ``H`` hidden width, ``O`` outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.config import RunConfig
from mambajepa.core.errors import ConfigError
from mambajepa.data.random_function import RandomFunctionDataset
from mambajepa.methods.base import DataSpec, Method, ParamGroupSpec, TrainOutput
from mambajepa.registry import build_dataset, register_method

__all__ = [
    "RegressionModelConfig",
    "RegressionDataConfig",
    "RegressionConfig",
    "RandomFunctionDataset",
    "MLPRegression",
]


@dataclass
class RegressionModelConfig:
    """The student MLP."""

    in_dim: int = 8  # input features I
    hidden: int = 32  # hidden width H
    out_dim: int = 4  # outputs O
    depth: int = 2  # linear layers (>= 2)
    norm: bool = True  # LayerNorm after each hidden layer (exercises the no-decay rule)
    dropout: float = 0.0  # dropout after each hidden activation (exercises RNG restore on resume)
    head_lr_mult: float = 1.0  # learning-rate multiplier of the output layer

    def validate(self) -> None:
        if self.depth < 2:
            raise ConfigError(f"depth={self.depth} must be >= 2 (an MLP has a hidden layer)")
        if min(self.in_dim, self.hidden, self.out_dim) < 1:
            raise ConfigError(
                f"in_dim, hidden, out_dim must be >= 1, got {self.in_dim}, {self.hidden}, {self.out_dim}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must lie in [0, 1)")


@dataclass
class RegressionDataConfig:
    """The random target function and its samples."""

    n_train: int = 512  # training samples
    n_val: int = 128  # held-out samples
    teacher_hidden: int = 16  # hidden width of the frozen teacher MLP
    noise: float = 0.0  # std of Gaussian noise added to training targets
    seed: int = 1234  # seeds the teacher and the samples (independent of train.seed)

    def validate(self) -> None:
        if self.n_train < 1 or self.n_val < 0:
            raise ConfigError(
                f"need n_train >= 1 and n_val >= 0, got n_train={self.n_train}, n_val={self.n_val}"
            )
        if self.noise < 0:
            raise ConfigError(f"noise={self.noise} must be >= 0")


@dataclass
class RegressionLossConfig:
    """The regression loss."""

    kind: Literal["mse", "smooth_l1"] = "mse"  # element-wise loss, averaged


@dataclass
class RegressionConfig(RunConfig):
    """Run config of the ``mlp_regression`` method."""

    ALIASES: ClassVar[dict[str, str]] = {"hidden": "model.hidden", "noise": "data.noise"}

    method: str = "mlp_regression"
    model: RegressionModelConfig = field(default_factory=RegressionModelConfig)  # student MLP
    data: RegressionDataConfig = field(default_factory=RegressionDataConfig)  # target function and samples
    loss: RegressionLossConfig = field(default_factory=RegressionLossConfig)  # loss function


@register_method("mlp_regression")
class MLPRegression(Method):
    """A student MLP regressing the random teacher function (see module docstring)."""

    config_cls = RegressionConfig

    def __init__(self, cfg: RegressionModelConfig, loss: RegressionLossConfig | None = None) -> None:
        super().__init__()
        self.loss_kind = (loss or RegressionLossConfig()).kind
        layers: list[nn.Module] = []
        width = cfg.in_dim
        for _ in range(cfg.depth - 1):
            layers.append(nn.Linear(width, cfg.hidden))
            if cfg.norm:
                layers.append(nn.LayerNorm(cfg.hidden))
            layers.append(nn.GELU())
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            width = cfg.hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, cfg.out_dim)
        self.head_lr_mult = cfg.head_lr_mult

    @classmethod
    def from_config(cls, config: RegressionConfig) -> MLPRegression:
        return cls(config.model, config.loss)

    def build_data(self, config: RegressionConfig) -> DataSpec:
        m, d = config.model, config.data
        args = dict(in_dim=m.in_dim, out_dim=m.out_dim, n_train=d.n_train, n_val=d.n_val)
        args.update(teacher_hidden=d.teacher_hidden, noise=d.noise, seed=d.seed)
        return DataSpec(
            train=build_dataset("random_function", split="train", **args),
            val=build_dataset("random_function", split="val", **args),
        )

    def param_groups(self) -> list[ParamGroupSpec]:
        return [
            ParamGroupSpec("body", self.body),
            ParamGroupSpec("head", self.head, lr_mult=self.head_lr_mult),
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, I) -> (B, O)."""
        return self.head(self.body(x))

    def _loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "smooth_l1":
            return F.smooth_l1_loss(pred.float(), target.float())
        return F.mse_loss(pred.float(), target.float())

    def training_step(self, batch: dict[str, torch.Tensor], step: int) -> TrainOutput:
        pred = self(batch["x"])  # (B, O)
        loss = self._loss(pred, batch["y"])
        return TrainOutput(loss=loss, metrics={"target_var": batch["y"].float().var()})

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Any]) -> dict[str, float]:
        total, count, sq_sum, sq_count = 0.0, 0, 0.0, 0
        for batch in batches:
            pred = self(batch["x"])
            n = batch["x"].shape[0]
            total += float(self._loss(pred, batch["y"])) * n
            count += n
            sq_sum += float(((batch["y"].float() - batch["y"].float().mean(0)) ** 2).sum())
            sq_count += batch["y"].numel()
        if count == 0:
            return {}
        return {"val/loss": total / count, "val/target_var": sq_sum / max(sq_count, 1)}
