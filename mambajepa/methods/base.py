"""What a training method supplies to the method-agnostic :class:`~mambajepa.train.Trainer`.

A method is an ``nn.Module`` holding every model it trains (and any frozen or EMA copies),
plus the recipe glue: how to build it from a config, which data it reads, how its
parameters are grouped, and one training step.

Evaluations (:mod:`mambajepa.eval`) sit above methods and read them through optional hooks: a
method that implements :meth:`Method.encode` offers the frozen-feature ``probe`` (on the labelled
data of :meth:`Method.probe_data`); :meth:`Method.evaluations` lists what a method offers.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from mambajepa.core.errors import ConfigError


@dataclass
class TrainOutput:
    """Result of one training step.

    Attributes:
        loss: scalar tensor that the trainer back-propagates.
        metrics: extra scalars to log (floats or 0-d tensors; detached by the trainer and averaged
            over micro-batches and ranks only when a log line is written).
        tokens: tokens this (micro-)batch trained on (text tokens, patches, pixels: what the
            method's token budget counts); ``None`` counts nothing. Stages measured in tokens
            advance by the sum over ranks.
    """

    loss: torch.Tensor
    metrics: dict[str, Any] = field(default_factory=dict)
    tokens: int | torch.Tensor | None = None


@dataclass
class ParamGroupSpec:
    """A module whose trainable parameters form one optimizer group (split by weight decay).

    Attributes:
        name: label used in logs (``"predictor"``, ``"text_encoder"``).
        module: the module; its parameters with ``requires_grad=False`` are left out.
        lr_mult: multiplier on the scheduled learning rate.
        wd_mult: multiplier on the scheduled weight decay.
    """

    name: str
    module: nn.Module
    lr_mult: float = 1.0
    wd_mult: float = 1.0


@dataclass
class DataSpec:
    """The data a method trains and evaluates on.

    Attributes:
        train: a map-style ``Dataset`` (exact resume) or an ``IterableDataset``.
        val: optional held-out dataset for the periodic evaluation hook.
        collate_fn: ``collate_fn(samples, generator) -> batch``; ``generator`` is a
            ``torch.Generator`` seeded by the trainer from (seed, batch index, rank) so that
            random choices made at collation (masks) are reproducible across resumes.
    """

    train: Any
    val: Any = None
    collate_fn: Callable[[list, torch.Generator], Any] | None = None


@dataclass
class ProbeData:
    """The labelled data that frozen-feature probes are fitted and scored on.

    Attributes:
        train: map-style dataset the probes are fitted on (its first ``probe.n_train`` items).
        test: map-style held-out dataset they are scored on (its first ``probe.n_eval`` items).
        tasks: labels probed by default (``probe.tasks`` overrides them); None: every label of the items.
        collate_fn: ``collate_fn(items) -> batch`` for :meth:`Method.encode`; None stacks the
            image / video tensor of each item (:func:`mambajepa.masks.split_sample`).
    """

    train: Any
    test: Any
    tasks: list[str] | None = None
    collate_fn: Callable[[list], Any] | None = None


@dataclass
class ProbeConfig:
    """Frozen-feature evaluation run by ``mambajepa eval probe`` (a method's ``probe`` section)."""

    n_train: int = 2000  # items the probes are fitted on (training split)
    n_eval: int = 1000  # held-out items the probes are scored on
    tasks: list[str] = field(default_factory=list)  # labels to probe; empty: the method's default
    batch_size: int = 128  # feature extraction batch
    linear_steps: int = 100  # L-BFGS iterations of the linear probe
    linear_weight_decay: float = 1e-4  # L2 penalty of the linear probe
    knn_k: int = 20  # neighbours of the kNN classifier
    attentive: bool = True  # also fit an attentive probe on the token features
    attentive_steps: int = 150  # AdamW steps of the attentive probe
    attentive_lr: float = 3e-3  # learning rate of the attentive probe
    seed: int = 0  # seeds probe initialisation and mini-batches

    def validate(self) -> None:
        if self.n_train < 2 or self.n_eval < 1 or self.batch_size < 1 or self.knn_k < 1:
            raise ConfigError(
                f"need n_train >= 2, n_eval >= 1, batch_size >= 1, knn_k >= 1; got {self.n_train}, "
                f"{self.n_eval}, {self.batch_size}, {self.knn_k}"
            )


def held_out_means(rows: Iterable[tuple[int, dict[str, Any]]], prefix: str = "val/") -> dict[str, float]:
    """Means weighted by batch size of per-batch scalars: ``[(n, {name: value}), ...] -> {prefix + name: mean}``.

    What :meth:`Method.evaluate` implementations return; empty when there are no rows. Values may
    be floats or 0-d tensors.
    """
    sums: dict[str, float] = {}
    count = 0
    for n, values in rows:
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + float(value) * n
        count += n
    return {f"{prefix}{k}": v / count for k, v in sums.items()} if count else {}


class Method(nn.Module, metaclass=abc.ABCMeta):
    """Base class of registered training methods (see :func:`mambajepa.registry.register_method`)."""

    name: ClassVar[str] = ""
    #: the top-level dataclass config of this method (a subclass of ``mambajepa.config.RunConfig``)
    config_cls: ClassVar[type]
    #: names of the loss terms a stage may weight (``stages[i].loss_weights``); empty: none
    loss_terms: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        #: weights of the loss terms for the current stage (set by :meth:`set_stage`)
        self.loss_weights: dict[str, float] = {}
        #: index and name of the current stage
        self.stage_index, self.stage_name = 0, ""

    @classmethod
    @abc.abstractmethod
    def from_config(cls, config: Any) -> Method:
        """Build the method (models initialised, nothing loaded from the run directory)."""

    @abc.abstractmethod
    def build_data(self, config: Any) -> DataSpec:
        """Return the datasets for ``config``."""

    def param_groups(self) -> list[ParamGroupSpec]:
        """Optimizer groups; the default trains every trainable parameter at the base lr."""
        return [ParamGroupSpec("all", self)]

    @abc.abstractmethod
    def training_step(self, batch: Any, step: int) -> TrainOutput:
        """Forward pass and loss for one (micro-)batch."""

    def after_optimizer_step(self, step: int, max_steps: int) -> None:
        """Hook run after each optimizer update (EMA targets update here)."""

    def checkpoint_files(self) -> dict[str, bytes]:
        """Files saved in every checkpoint beside the weights (a ``tokenizer.json``), by file name.

        They are checksummed in ``trainer.json`` with the rest of the checkpoint. Default: none.
        """
        return {}

    def frozen_modules(self) -> dict[str, nn.Module]:
        """Sub-modules the method itself keeps frozen (a pretrained X-encoder), by attribute path.

        The trainer sets ``requires_grad=False`` on them, keeps them in eval mode, leaves them out of
        the optimizer and stores their weights once per run instead of in every checkpoint. Recipes
        freeze more with ``stages[i].freeze``.
        """
        return {}

    def set_stage(self, index: int, name: str, loss_weights: dict[str, float]) -> None:
        """Called by the trainer when stage ``index`` begins (and on resume inside it).

        Args:
            index: stage index in the recipe.
            name: stage name.
            loss_weights: the stage's weights of :attr:`loss_terms` (terms left out keep weight 1).

        Raises:
            ConfigError: a weight for a term this method does not have.
        """
        unknown = sorted(set(loss_weights) - set(self.loss_terms))
        if unknown:
            raise ConfigError(
                f"stage {name!r}: loss_weights {unknown} are not loss terms of method {self.name!r} "
                f"(terms: {list(self.loss_terms) or 'none'})"
            )
        self.stage_index, self.stage_name = index, name
        self.loss_weights = {term: float(loss_weights.get(term, 1.0)) for term in self.loss_terms}

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Any]) -> dict[str, float]:
        """Periodic evaluation on held-out batches; returns scalars to log (default: none)."""
        return {}

    # -- optional hooks read by evaluations ---------------------------------------------------

    def encode(self, batch: Any) -> torch.Tensor:
        """Frozen features of a batch: what probes read.

        Args:
            batch: what :attr:`ProbeData.collate_fn` makes of the probe items (by default the
                stacked image / video tensors ``(B, C, ...)``).

        Returns:
            ``(B, N, D)`` token features or ``(B, D)`` pooled features.

        Raises:
            NotImplementedError: the method has no features to probe (it offers no ``probe``).
        """
        raise NotImplementedError(f"method {self.name!r} does not implement encode()")

    def probe_data(self, config: Any) -> ProbeData:
        """The labelled data that probes of :meth:`encode` fit and score on.

        The default probes the training data of :meth:`build_data` against its held-out data,
        on every label the items carry (or the datasets' ``visible_labels``).

        Raises:
            ConfigError: the method's data has no held-out split.
        """
        data = self.build_data(config)
        if data.val is None:
            raise ConfigError(f"method {self.name!r} has no held-out data to score probes on")
        tasks = getattr(data.train, "visible_labels", None)
        return ProbeData(train=data.train, test=data.val, tasks=list(tasks) if tasks is not None else None)

    @classmethod
    def implements(cls, hook: str) -> bool:
        """Whether this method overrides the optional hook ``hook`` (``"encode"``) of :class:`Method`."""
        return getattr(cls, hook) is not getattr(Method, hook)

    @classmethod
    def evaluations(cls) -> list[str]:
        """Names of the registered evaluations this method offers (``mambajepa eval --list``)."""
        from mambajepa.registry import list_evaluations

        return list_evaluations(cls)
