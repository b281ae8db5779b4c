"""The method-agnostic training loop.

A :class:`~mambajepa.methods.base.Method` supplies models, parameter groups, data and one
training step; :class:`Trainer` does the rest: stages (each with its own length, schedule, batch,
loss weights, data and frozen modules), AdamW over exhaustive decay / no-decay groups, gradient
accumulation and clipping, bf16 autocast on CUDA, DDP or FSDP2 from torchrun's environment,
frozen towers stored once per run, non-finite loss handling, logging, periodic evaluation, and
atomic checkpoints from which a run resumes bit-exactly on CPU, also in the middle of a stage.

Step numbering: ``step`` counts updates done in the run. Update ``k`` of a stage (0-based) uses
that stage's batch ``k`` and its schedules' values at position ``k`` (updates, or tokens, done in
the stage); ``method.after_optimizer_step(step, planned_steps)`` runs after it. A step whose loss
or gradient is not finite still consumes its batch but changes no weight.

Host synchronisation: one small reduction per update (the non-finite flag and the token count,
which every rank must agree on); losses and metrics stay on the device and are reduced over
micro-batches, updates and ranks only when a log line is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from mambajepa.config import RunConfig, config_hash, config_to_dict, save_config, validate_config
from mambajepa.core import checkpoint as ckpt_io
from mambajepa.core.errors import CheckpointError, ConfigError, TrainingDiverged
from mambajepa.methods.base import Method, TrainOutput
from mambajepa.train.data import build_eval_loader, build_train_loader, mix_seed
from mambajepa.train.distributed import (
    DistInfo,
    all_reduce_sum,
    init_distributed,
    no_gradient_sync,
    shard_fsdp,
    shutdown_distributed,
    synchronize,
    wrap_ddp,
)
from mambajepa.train.logging import MetricsLogger, plot_curves, truncate_metrics
from mambajepa.train.optim import build_optimizer, set_group_hparams, split_param_groups
from mambajepa.train.stages import RunPosition, Stage, resolve_stages

__all__ = ["Trainer", "seed_everything", "move_to_device", "resolve_device", "run_training"]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def resolve_device(kind: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU.

    Raises:
        ConfigError: ``cuda`` requested on a machine without CUDA.
    """
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device='cuda' but CUDA is not available; use 'auto' or 'cpu'")
        return torch.device("cuda", local_rank)
    return torch.device(kind)


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a nested batch (dicts, lists, tuples, dataclasses) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return dataclasses.replace(
            batch,
            **{
                f.name: move_to_device(getattr(batch, f.name), device)
                for f in dataclasses.fields(batch)
                if f.init
            },
        )
    return batch


def _scalar(value: Any) -> float:
    return float(value.detach().float().mean().item()) if isinstance(value, torch.Tensor) else float(value)


class _Window:
    """Sums of the losses and metrics of the finite updates since the last log line (on the device)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.updates = 0  # updates done in the window, finite or not
        self.finite = 0  # finite updates, whose values are summed
        self.samples = 0
        self.tokens = 0
        self.sums: dict[str, torch.Tensor | float] = {}

    def add(self, values: dict[str, torch.Tensor | float]) -> None:
        self.finite += 1
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().float().mean()
            self.sums[key] = self.sums[key] + value if key in self.sums else value


class Trainer:
    """Trains a method according to ``config.train`` and ``config.stages``, writing into ``run_dir``.

    Args:
        method: the method, freshly built (weights are replaced when resuming).
        config: the run's config (a :class:`~mambajepa.config.RunConfig` subclass).
        run_dir: run directory (config.yaml, metrics.jsonl, checkpoints/, frozen/, plots/, tb/).
        resume: ``None`` (fresh run), ``"auto"`` (latest valid checkpoint of ``run_dir`` if any),
            or a checkpoint / run directory path.

    Raises:
        ConfigError: invalid config, a stage freezing a module the method does not have, or a
            fresh run into a directory that already has checkpoints.
        CheckpointError: the requested checkpoint is missing, corrupt or does not fit the method.
    """

    def __init__(
        self, method: Method, config: RunConfig, run_dir: str | Path, resume: str | Path | None = None
    ):
        validate_config(config)
        self.config = config
        self.tc = config.train
        self.run_dir = Path(run_dir)
        self.ckpt_root = self.run_dir / "checkpoints"
        self.device = resolve_device(self.tc.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.stages: list[Stage] = resolve_stages(config)
        self.planned_steps = config.planned_steps()
        self.method = method.to(self.device)

        # frozen towers: fixed for the whole run, kept out of the optimizer and of the checkpoints
        self.frozen = dict(method.frozen_modules())
        for module in self.frozen.values():
            module.requires_grad_(False)
        self.stage_frozen = {path: self._submodule(path) for s in self.stages for path in s.freeze}
        self.sharded = self.dist.enabled and self.tc.strategy == "fsdp"
        self.engine: torch.nn.Module | None = shard_fsdp(self.method, self.device) if self.sharded else None

        self.groups = split_param_groups(self.method, self.method.param_groups())
        self.params = [p for g in self.groups for p in g.params]
        first = self.stages[0]
        self.optimizer = build_optimizer(
            self.groups, first.lr, first.weight_decay, self.tc.betas, self.tc.eps
        )
        self._data_key: Any = None
        self._data_built = False
        self.data = self._stage_data(first)
        if self.dist.enabled:  # same weights and data on every rank; from here on, per-rank noise
            seed_everything(mix_seed(self.tc.seed, "rank", self.dist.rank))
        self.position = RunPosition()
        self.nonfinite_total = 0
        self.consecutive_nonfinite = 0
        self.best: dict[str, Any] | None = None
        self.last_checkpoint: Path | None = None
        self.last_eval: dict[str, float] = {}
        self.resumed_from: Path | None = None
        self.frozen_record: dict[str, Any] | None = None
        self._window = _Window()
        checkpoint = self._find_resume(resume)
        if checkpoint is not None:
            self._load(checkpoint)

    @property
    def step(self) -> int:
        """Optimizer updates done in the run."""
        return self.position.step

    def _submodule(self, path: str) -> torch.nn.Module:
        try:
            return self.method.get_submodule(path)
        except AttributeError:
            children = ", ".join(name for name, _ in self.method.named_children())
            raise ConfigError(
                f"stages: freeze names {path!r}, which method {self.method.name!r} does not have "
                f"(its modules: {children})"
            ) from None

    def _stage_data(self, stage: Stage) -> Any:
        """The method's data for ``stage`` (built again only when the stage changes the data section)."""
        stage_config = self.config.stage_config(stage.index) if self.config.stages else self.config
        key = config_to_dict(stage_config.data) if hasattr(stage_config, "data") else None
        if not self._data_built or key != self._data_key:
            self.data = self.method.build_data(stage_config)
            self._data_key, self._data_built = key, True
        return self.data

    # ------------------------------------------------------------------------------------------
    # resume

    def _find_resume(self, resume: str | Path | None) -> Path | None:
        if resume is None:
            if ckpt_io.list_checkpoints(self.ckpt_root):
                raise ConfigError(
                    f"run directory {self.run_dir} already has checkpoints; pass resume='auto' "
                    "(--resume auto) to continue it, or choose another run directory"
                )
            return None
        if str(resume) == "auto":
            return ckpt_io.latest_valid_checkpoint(self.ckpt_root)
        return ckpt_io.resolve_checkpoint(resume)

    def _load(self, path: Path) -> None:
        state = ckpt_io.verify_checkpoint(path)
        if ckpt_io.is_sharded(path):
            ckpt_io.load_sharded(path, self.engine, self.optimizer)
        else:
            weights = ckpt_io.load_checkpoint_weights(path)
            missing, unexpected = _state_dict_diff(self.method.state_dict(), weights)
            if missing or unexpected:
                raise CheckpointError(
                    f"checkpoint {path} does not fit the method: {len(missing)} missing keys "
                    f"{missing[:8]}, {len(unexpected)} unexpected keys {unexpected[:8]} (first 8 of each)"
                )
            try:
                self.method.load_state_dict(weights, strict=True)
            except RuntimeError as err:
                raise CheckpointError(f"checkpoint {path} does not fit the method: {err}") from None
            opt_meta = ckpt_io.read_json(path / "optimizer.json")
            opt_tensors = ckpt_io.load_tensors(path / "optimizer.safetensors")
            ckpt_io.optimizer_state_from_files(self.optimizer, opt_tensors, opt_meta)
        if state.get("config_hash") != config_hash(self.config):
            warnings.warn(
                f"resuming from {path} whose config differs from the current one (hash "
                f"{state.get('config_hash')} vs {config_hash(self.config)})",
                RuntimeWarning,
                stacklevel=3,
            )
        saved_stages = state.get("stage_hashes", []) if self.config.stages else []  # else: the config warns
        for stage, saved in zip(self.stages, saved_stages):
            if saved != stage.config_hash:
                warnings.warn(
                    f"resuming from {path}: stage {stage.index} ({stage.name!r}) differs from the one the "
                    "checkpoint was trained with",
                    RuntimeWarning,
                    stacklevel=3,
                )
        if len(saved_stages) not in (0, len(self.stages)):
            warnings.warn(
                f"resuming from {path}: the run had {len(saved_stages)} stages, the config has {len(self.stages)}",
                RuntimeWarning,
                stacklevel=3,
            )
        self.position = RunPosition.from_json(state)
        self.nonfinite_total = int(state.get("nonfinite_total", 0))
        self.consecutive_nonfinite = int(state.get("consecutive_nonfinite", 0))
        self.best = state.get("best")
        self.frozen_record = state.get("frozen")
        rng_states = state["rng"]
        if len(rng_states) != self.dist.world_size:
            warnings.warn(
                f"checkpoint was written by {len(rng_states)} rank(s), resuming with {self.dist.world_size}; "
                "random streams restart from rank 0's state",
                RuntimeWarning,
                stacklevel=3,
            )
        ckpt_io.restore_rng_state(rng_states[self.dist.rank if self.dist.rank < len(rng_states) else 0])
        self.last_checkpoint = path
        self.resumed_from = path

    # ------------------------------------------------------------------------------------------
    # the loop

    def _autocast(self) -> contextlib.AbstractContextManager:
        precision = self.tc.precision
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        if precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _train_mode(self) -> None:
        """Training mode, except for frozen towers and the current stage's frozen modules."""
        self.method.train()
        stage = self.stages[min(self.position.stage, len(self.stages) - 1)]
        for module in [*self.frozen.values(), *(self.stage_frozen[p] for p in stage.freeze)]:
            module.eval()

    def _enter_stage(self, stage: Stage) -> None:
        """Apply ``stage``: loss weights, frozen modules, data, and (DDP) the data-parallel wrapper."""
        self.method.set_stage(stage.index, stage.name, stage.loss_weights)
        frozen_now = {id(p) for path in stage.freeze for p in self.stage_frozen[path].parameters()}
        for p in self.params:
            p.requires_grad_(id(p) not in frozen_now)
        if self.dist.enabled and not self.sharded:  # DDP fixes its parameters at construction
            self.engine = wrap_ddp(self.method, self.device, self.tc.find_unused_parameters)
        self._stage_data(stage)
        self._train_mode()

    def _stage_loader(self, stage: Stage) -> tuple[Any, int | None]:
        """This rank's micro-batches of ``stage`` from the current position on."""
        seed = self.tc.seed if stage.index == 0 else mix_seed(self.tc.seed, "stage", stage.index)
        return build_train_loader(
            self.data.train,
            self.data.collate_fn,
            stage.batch_size,
            stage.grad_accum,
            seed,
            start_batch=self.position.step_in_stage,
            stop_batch=stage.length if stage.unit == "steps" else None,
            world_size=self.dist.world_size,
            rank=self.dist.rank,
            num_workers=self.tc.num_workers,
            pin_memory=self.device.type == "cuda",
        )

    def fit(self) -> dict[str, Any]:
        """Train through every stage.

        Returns:
            Summary: ``step``, ``loss`` (mean of the last logged window over ranks), ``val`` (last
            evaluation), ``checkpoint`` (last saved path), ``nonfinite_total``, ``stage`` (name
            of the last stage), ``tokens_seen``, ``is_main``.

        Raises:
            TrainingDiverged: ``train.max_nonfinite`` non-finite steps in a row; checkpoints
                written before stay intact and no new one is written.
        """
        main = self.dist.is_main
        logger = None
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.run_dir / "config.yaml")
            if self.resumed_from is not None:
                truncate_metrics(self.run_dir, self.step)
            logger = MetricsLogger(self.run_dir, tensorboard=self.tc.tensorboard)
        self._store_frozen()
        last_loss = float("nan")
        try:
            while self.position.stage < len(self.stages):
                stage = self.stages[self.position.stage]
                if not self.position.stage_done(stage):
                    last_loss = self._run_stage(stage, logger, last_loss)
                if self.position.stage == len(self.stages) - 1:
                    break
                self.position.next_stage()
        finally:
            if logger is not None:
                logger.close()
        if main and self.tc.plots:
            plot_curves(self.run_dir)
        return {
            "step": self.step,
            "loss": last_loss,
            "val": dict(self.last_eval),
            "checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
            "nonfinite_total": self.nonfinite_total,
            "stage": self.stages[-1].name,
            "tokens_seen": self.position.tokens_seen,
            "is_main": self.dist.is_main,
        }

    def _run_stage(self, stage: Stage, logger: MetricsLogger | None, last_loss: float) -> float:
        """Train ``stage`` from the current position to its end; returns the last logged loss."""
        tc, pos = self.tc, self.position
        self._enter_stage(stage)
        loader, batches_per_epoch = self._stage_loader(stage)
        batches = iter(loader)
        bar = tqdm(
            total=stage.length,
            initial=pos.in_stage(stage),
            desc=f"{stage.name} [{stage.index + 1}/{len(self.stages)}]",
            unit="step" if stage.unit == "steps" else "tok",
            unit_scale=stage.unit == "tokens",
            disable=not (self.dist.is_main and tc.progress),
            dynamic_ncols=True,
        )
        self._window = _Window()
        try:
            while not pos.stage_done(stage):
                at = pos.in_stage(stage)
                lr, wd = stage.lr_at(at), stage.weight_decay_at(at)
                set_group_hparams(self.optimizer, lr, wd)
                tokens = self._update(batches, stage)
                pos.step += 1
                pos.step_in_stage += 1
                pos.tokens_in_stage += tokens
                pos.tokens_seen += tokens
                pos.samples_seen += stage.batch_size
                bar.update(1 if stage.unit == "steps" else tokens)
                record: dict[str, Any] = {}
                stage_end = pos.stage_done(stage)
                if self.step % tc.log_every == 0 or stage_end:
                    record = self._log_record(stage, lr, wd, batches_per_epoch)
                    if math.isfinite(record["loss"]):
                        last_loss = record["loss"]
                    bar.set_postfix(loss=f"{record['loss']:.4g}", lr=f"{lr:.3g}")
                force_save = False
                if tc.eval_every and self.data.val is not None:
                    if self.step % tc.eval_every == 0 or stage_end:
                        results = self._evaluate(stage)
                        record.update(results)
                        force_save = self._update_best(results)
                if record and logger is not None:
                    logger.log(self.step, record)
                every = tc.checkpoint_every
                if stage_end or force_save or (every and self.step % every == 0):
                    self._save()
        finally:
            bar.close()
        return last_loss

    def _update(self, batches: Any, stage: Stage) -> int:
        """One optimizer update over ``stage.grad_accum`` micro-batches; returns the tokens of the
        update summed over ranks."""
        step, accum = self.step, stage.grad_accum
        loss_sum = torch.zeros((), device=self.device)
        tokens = torch.zeros((), dtype=torch.float64, device=self.device)
        metric_sums: dict[str, torch.Tensor | float] = {}
        for micro in range(accum):
            batch = move_to_device(next(batches), self.device)
            last = micro == accum - 1
            with no_gradient_sync(None if last else self.engine), self._autocast():
                if self.engine is not None:
                    out = self.engine(batch, step)
                else:
                    out = self.method.training_step(batch, step)
                if not isinstance(out, TrainOutput):
                    raise TypeError(
                        f"{type(self.method).__name__}.training_step must return TrainOutput, got {type(out)}"
                    )
                loss = out.loss.float()
                (loss / accum).backward()
            loss_sum += loss.detach()
            if out.tokens is not None:
                tokens += out.tokens
            for key, value in out.metrics.items():
                value = value.detach().float().mean() if isinstance(value, torch.Tensor) else float(value)
                metric_sums[key] = metric_sums.get(key, 0.0) + value / accum
        max_norm = self.tc.grad_clip if self.tc.grad_clip else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm, foreach=True)
        if hasattr(grad_norm, "full_tensor"):  # FSDP2: a DTensor
            grad_norm = grad_norm.full_tensor()
        bad = (~torch.isfinite(loss_sum)).double() + (~torch.isfinite(grad_norm)).double()
        flags = torch.stack([bad, tokens])
        if self.dist.enabled:  # every rank must agree on skipping and on the stage's token count
            all_reduce_sum(flags)
        nonfinite, total_tokens = flags.tolist()
        self._window.updates += 1
        self._window.samples += stage.batch_size
        self._window.tokens += int(total_tokens)
        if nonfinite > 0:
            self.optimizer.zero_grad(set_to_none=True)
            self.nonfinite_total += 1
            self.consecutive_nonfinite += 1
            if self.consecutive_nonfinite >= self.tc.max_nonfinite:
                where = f"; last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else ""
                raise TrainingDiverged(
                    f"{self.consecutive_nonfinite} non-finite losses/gradients in a row, the last at step {step} "
                    f"(train.max_nonfinite={self.tc.max_nonfinite}){where}"
                )
            return int(total_tokens)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.consecutive_nonfinite = 0
        self._window.add({"loss": loss_sum / accum, "grad_norm": grad_norm, **metric_sums})
        self.method.after_optimizer_step(step, self.planned_steps or self.tc.max_steps)
        return int(total_tokens)

    def _log_record(
        self, stage: Stage, lr: float, wd: float, batches_per_epoch: int | None
    ) -> dict[str, Any]:
        """The metrics.jsonl record of the update just done: window means reduced over ranks."""
        window, self._window = self._window, _Window()
        keys = sorted(window.sums)
        values = [window.sums[k] for k in keys]
        tensor = torch.stack(
            [
                v.to(self.device, torch.float64)
                if isinstance(v, torch.Tensor)
                else torch.tensor(v, dtype=torch.float64, device=self.device)
                for v in values
            ]
            + [torch.tensor(float(window.finite), dtype=torch.float64, device=self.device)]
        )
        if self.dist.enabled:
            all_reduce_sum(tensor)
        *sums, finite = tensor.tolist()
        means = {k: (s / finite if finite else float("nan")) for k, s in zip(keys, sums)}
        elapsed = max(time.perf_counter() - window.start, 1e-9)
        pos = self.position
        record = {
            "loss": means.pop("loss", float("nan")),
            "lr": lr,
            "weight_decay": wd,
            "grad_norm": means.pop("grad_norm", float("nan")),
            "stage": stage.name,
            "stage_index": stage.index,
            "step_in_stage": pos.step_in_stage,
            "samples_per_s": window.samples / elapsed,
            "epoch": (pos.step_in_stage - 1) // batches_per_epoch if batches_per_epoch else 0,
            "samples_seen": pos.samples_seen,
            "nonfinite_total": self.nonfinite_total,
        }
        if pos.tokens_seen:
            record.update(tokens_seen=pos.tokens_seen, tokens_per_s=window.tokens / elapsed)
        record.update(means)
        return record

    # ------------------------------------------------------------------------------------------
    # evaluation and checkpoints

    def _evaluate(self, stage: Stage) -> dict[str, float]:
        """Run ``method.evaluate`` over the first ``eval_batches`` held-out batches (rank 0; every
        rank under FSDP, whose forward passes are collective)."""
        if not (self.dist.is_main or self.sharded):
            return {}
        per_rank = stage.batch_size // (self.dist.world_size * stage.grad_accum)
        loader = build_eval_loader(
            self.data.val, self.data.collate_fn, per_rank, self.tc.eval_batches, self.tc.seed
        )
        self.method.eval()
        if self.sharded:  # evaluate() does not pass through the root's forward, which gathers its parameters
            self.engine.unshard()
        try:
            with torch.no_grad(), self._autocast():
                results = self.method.evaluate(move_to_device(b, self.device) for b in loader)
        finally:
            if self.sharded:
                self.engine.reshard()
            self._train_mode()
        self.last_eval = {k: _scalar(v) for k, v in results.items()}
        return dict(self.last_eval) if self.dist.is_main else {}

    def _update_best(self, results: dict[str, float]) -> bool:
        """Record a new best evaluation; returns whether to save now (agreed by every rank)."""
        improved = self._is_better(results)
        if self.dist.enabled:  # only rank 0 decides, but every rank must join the save
            improved = all_reduce_sum(torch.tensor(float(improved), device=self.device)).item() > 0
        return improved

    def _is_better(self, results: dict[str, float]) -> bool:
        key = self.tc.best_metric
        if not key or key not in results or not math.isfinite(results[key]):
            return False
        value = results[key]
        better = self.best is None or (
            value < self.best["value"] if self.tc.best_mode == "min" else value > self.best["value"]
        )
        if better:
            self.best = {"step": self.step, "metric": key, "value": value}
        return better

    def _frozen_state(self) -> dict[str, torch.Tensor]:
        return {
            f"{path}.{key}": tensor
            for path, module in self.frozen.items()
            for key, tensor in module.state_dict().items()
        }

    def _store_frozen(self) -> None:
        """Write the frozen towers once per run (``frozen/model.safetensors``), or check the stored
        copy against the record of the checkpoint being resumed."""
        if not self.frozen or self.sharded:
            return
        if self.frozen_record is not None:
            ckpt_io.verify_frozen(self.run_dir, self.frozen_record)
            return
        if self.dist.is_main:
            self.frozen_record = ckpt_io.save_frozen(self.run_dir, self._frozen_state())
        synchronize()

    def _save(self) -> None:
        rng = ckpt_io.capture_rng_state()
        if self.dist.enabled:
            gathered: list[Any] = [None] * self.dist.world_size
            dist.all_gather_object(gathered, rng)
            rng_states = gathered
        else:
            rng_states = [rng]
        trainer_state = {
            **self.position.to_json(),
            "stage_name": self.stages[self.position.stage].name,
            "stage_hashes": [s.config_hash for s in self.stages],
            "batches_consumed": self.position.step_in_stage,
            "world_size": self.dist.world_size,
            "strategy": self.tc.strategy if self.dist.enabled else "single",
            "nonfinite_total": self.nonfinite_total,
            "consecutive_nonfinite": self.consecutive_nonfinite,
            "best": self.best,
            "config_hash": config_hash(self.config),
            "frozen": self.frozen_record,
            "rng": rng_states,
        }
        config_yaml = _yaml(self.config)
        if self.sharded:
            self.last_checkpoint = ckpt_io.save_sharded_checkpoint(
                self.ckpt_root,
                self.step,
                self.engine,
                self.optimizer,
                trainer_state,
                config_yaml,
                self.method.checkpoint_files(),
            )
        elif self.dist.is_main:
            frozen_keys = set(self._frozen_state())
            model_state = {k: v for k, v in self.method.state_dict().items() if k not in frozen_keys}
            self.last_checkpoint = ckpt_io.save_checkpoint(
                self.ckpt_root,
                self.step,
                model_state,
                self.optimizer,
                trainer_state,
                config_yaml,
                self.method.checkpoint_files(),
            )
        if self.dist.is_main:
            keep = {self.best["step"]} if self.best else set()
            ckpt_io.prune_checkpoints(self.ckpt_root, self.tc.keep_last, keep)


def _yaml(config: RunConfig) -> str:
    import yaml

    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def _state_dict_diff(expected: dict[str, Any], got: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(missing, unexpected)`` keys of ``got`` against ``expected``, sorted."""
    return sorted(set(expected) - set(got)), sorted(set(got) - set(expected))


def run_training(config: RunConfig, run_dir: str | Path, resume: str | Path | None = None) -> dict[str, Any]:
    """Seed, build the registered method of ``config`` and train it.

    Args:
        config: a loaded run config (``config.method`` names a registered method).
        run_dir: run directory.
        resume: see :class:`Trainer`.

    Returns:
        The summary returned by :meth:`Trainer.fit`.
    """
    from mambajepa.registry import get_method

    seed_everything(config.train.seed)
    method = get_method(config.method).from_config(config)
    try:
        summary = Trainer(method, config, run_dir, resume=resume).fit()
        synchronize()  # every rank leaves together, once rank 0 has written the last checkpoint
        return summary
    finally:
        shutdown_distributed()
