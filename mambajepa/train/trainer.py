"""The method-agnostic training loop.

A :class:`~mambajepa.methods.base.Method` supplies models, parameter groups, data and one
training step; :class:`Trainer` does the rest: AdamW over exhaustive decay / no-decay groups,
scheduled lr and weight decay, gradient accumulation and clipping, bf16 autocast on CUDA,
DDP from torchrun's environment, non-finite loss handling, logging, periodic evaluation, and
atomic checkpoints from which a run resumes bit-exactly on CPU.

Step numbering: ``step`` counts updates done. Update ``k`` (0-based) uses global batch ``k``
and the schedules' values at ``k``; ``method.after_optimizer_step(k, max_steps)`` runs after it.
A step whose loss or gradient is not finite still consumes its batch but changes no weight.
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
import yaml
from safetensors.torch import load_file
from tqdm.auto import tqdm

from mambajepa.config import RunConfig, config_hash, config_to_dict, save_config, validate_config
from mambajepa.core.errors import CheckpointError, ConfigError, TrainingDiverged
from mambajepa.core.schedules import lr_at, weight_decay_at
from mambajepa.methods.base import Method, TrainOutput
from mambajepa.train import checkpoint as ckpt_io
from mambajepa.train.data import build_eval_loader, build_train_loader, mix_seed
from mambajepa.train.distributed import (
    DistInfo,
    all_reduce_grads,
    all_reduce_sum,
    broadcast_module,
    init_distributed,
    shutdown_distributed,
    synchronize,
)
from mambajepa.train.logging import MetricsLogger, plot_curves, truncate_metrics
from mambajepa.train.optim import build_optimizer, set_group_hparams, split_param_groups

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


class Trainer:
    """Trains a method according to ``config.train``, writing into ``run_dir``.

    Args:
        method: the method, freshly built (weights are replaced when resuming).
        config: the run's config (a :class:`~mambajepa.config.RunConfig` subclass).
        run_dir: run directory (config.yaml, metrics.jsonl, checkpoints/, plots/, tb/).
        resume: ``None`` (fresh run), ``"auto"`` (latest valid checkpoint of ``run_dir`` if any),
            or a checkpoint / run directory path.

    Raises:
        ConfigError: invalid config, or a fresh run into a directory that already has checkpoints.
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
        self.method = method.to(self.device)
        if self.dist.enabled:
            broadcast_module(self.method)
        self.groups = split_param_groups(self.method, self.method.param_groups())
        self.params = [p for g in self.groups for p in g.params]
        self.optimizer = build_optimizer(
            self.groups, self.tc.lr, self.tc.weight_decay, self.tc.betas, self.tc.eps
        )
        self.data = self.method.build_data(config)
        if self.dist.enabled:  # same weights and data on every rank; from here on, per-rank noise
            seed_everything(mix_seed(self.tc.seed, "rank", self.dist.rank))
        self.step = 0
        self.nonfinite_total = 0
        self.consecutive_nonfinite = 0
        self.best: dict[str, Any] | None = None
        self.last_checkpoint: Path | None = None
        self.last_eval: dict[str, float] = {}
        self.resumed_from: Path | None = None
        self._window = (time.perf_counter(), 0)  # (start time, updates) of the throughput window
        checkpoint = self._find_resume(resume)
        if checkpoint is not None:
            self._load(checkpoint)

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
        weights = load_file(str(path / "model.safetensors"))
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
        opt_tensors = load_file(str(path / "optimizer.safetensors"))
        ckpt_io.optimizer_state_from_files(self.optimizer, opt_tensors, opt_meta)
        if state.get("config_hash") != config_hash(self.config):
            warnings.warn(
                f"resuming from {path} whose config differs from the current one (hash "
                f"{state.get('config_hash')} vs {config_hash(self.config)})",
                RuntimeWarning,
                stacklevel=3,
            )
        self.step = int(state["step"])
        self.nonfinite_total = int(state.get("nonfinite_total", 0))
        self.consecutive_nonfinite = int(state.get("consecutive_nonfinite", 0))
        self.best = state.get("best")
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

    def fit(self) -> dict[str, Any]:
        """Train until ``train.max_steps``.

        Returns:
            Summary: ``step``, ``loss`` (last step, mean over ranks), ``val`` (last evaluation),
            ``checkpoint`` (last saved path), ``nonfinite_total``.

        Raises:
            TrainingDiverged: ``train.max_nonfinite`` non-finite steps in a row; checkpoints
                written before stay intact and no new one is written.
        """
        tc = self.tc
        main = self.dist.is_main
        logger = None
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.run_dir / "config.yaml")
            if self.resumed_from is not None:
                truncate_metrics(self.run_dir, self.step)
            logger = MetricsLogger(self.run_dir, tensorboard=tc.tensorboard)
        loader, batches_per_epoch = build_train_loader(
            self.data.train,
            self.data.collate_fn,
            tc.batch_size,
            tc.grad_accum,
            tc.seed,
            start_batch=self.step,
            stop_batch=tc.max_steps,
            world_size=self.dist.world_size,
            rank=self.dist.rank,
            num_workers=tc.num_workers,
        )
        batches = iter(loader)
        bar = tqdm(
            total=tc.max_steps, initial=self.step, disable=not (main and tc.progress), dynamic_ncols=True
        )
        last_loss = float("nan")
        self._window = (time.perf_counter(), 0)
        self.method.train()
        try:
            while self.step < tc.max_steps:
                step = self.step
                lr = lr_at(step, tc.max_steps, tc.lr, tc.min_lr, tc.warmup_steps, tc.lr_schedule)
                wd = weight_decay_at(
                    step, tc.max_steps, tc.weight_decay, tc.final_weight_decay, tc.weight_decay_schedule
                )
                set_group_hparams(self.optimizer, lr, wd)
                loss, grad_norm, metrics = self._update(batches, step)
                self.step += 1
                self._window = (self._window[0], self._window[1] + 1)
                bar.update(1)
                last_loss = loss if math.isfinite(loss) else last_loss
                record: dict[str, Any] = {}
                if main and (self.step % tc.log_every == 0 or self.step == tc.max_steps):
                    record = self._log_record(loss, lr, wd, grad_norm, metrics, batches_per_epoch)
                    bar.set_postfix(loss=f"{loss:.4g}", lr=f"{lr:.3g}", sps=f"{record['samples_per_s']:.0f}")
                force_save = False
                if tc.eval_every and self.data.val is not None:
                    if self.step % tc.eval_every == 0 or self.step == tc.max_steps:
                        results = self._evaluate()
                        record.update(results)
                        force_save = self._update_best(results)
                if record and logger is not None:
                    logger.log(self.step, record)
                every = tc.checkpoint_every
                if self.step == tc.max_steps or force_save or (every and self.step % every == 0):
                    self._save()
        finally:
            bar.close()
            if logger is not None:
                logger.close()
        if main and tc.plots:
            plot_curves(self.run_dir)
        return {
            "step": self.step,
            "loss": last_loss,
            "val": dict(self.last_eval),
            "checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
            "nonfinite_total": self.nonfinite_total,
            "is_main": self.dist.is_main,
        }

    def _log_record(
        self,
        loss: float,
        lr: float,
        wd: float,
        grad_norm: float,
        metrics: dict[str, float],
        batches_per_epoch: int | None,
    ) -> dict[str, Any]:
        """The metrics.jsonl record of the update just done; restarts the throughput window."""
        start, steps = self._window
        elapsed = max(time.perf_counter() - start, 1e-9)
        self._window = (time.perf_counter(), 0)
        return {
            "loss": loss,
            "lr": lr,
            "weight_decay": wd,
            "grad_norm": grad_norm,
            "samples_per_s": steps * self.tc.batch_size / elapsed,
            "epoch": (self.step - 1) // batches_per_epoch if batches_per_epoch else 0,
            "samples_seen": self.step * self.tc.batch_size,
            "nonfinite_total": self.nonfinite_total,
            **metrics,
        }

    def _update(self, batches: Any, step: int) -> tuple[float, float, dict[str, float]]:
        """One optimizer update over ``grad_accum`` micro-batches; returns (loss, grad norm, metrics)."""
        tc = self.tc
        finite = True
        loss_sum = torch.zeros((), device=self.device)
        metric_sums: dict[str, float] = {}
        for _ in range(tc.grad_accum):
            batch = move_to_device(next(batches), self.device)
            with self._autocast():
                out = self.method.training_step(batch, step)
            if not isinstance(out, TrainOutput):
                raise TypeError(
                    f"{type(self.method).__name__}.training_step must return TrainOutput, got {type(out)}"
                )
            loss = out.loss.float()
            if not bool(torch.isfinite(loss)):
                finite = False
                continue
            (loss / tc.grad_accum).backward()
            loss_sum += loss.detach()
            for key, value in out.metrics.items():
                metric_sums[key] = metric_sums.get(key, 0.0) + _scalar(value) / tc.grad_accum
        # ranks agree on skipping: [non-finite count, loss sum]
        flags = torch.stack(
            [torch.tensor(0.0 if finite else 1.0, device=self.device), loss_sum / tc.grad_accum]
        )
        flags = all_reduce_sum(flags) if self.dist.enabled else flags
        any_nonfinite = flags[0].item() > 0
        mean_loss = flags[1].item() / self.dist.world_size if not any_nonfinite else float("nan")
        grad_norm = float("nan")
        if not any_nonfinite:
            if self.dist.enabled:
                all_reduce_grads(self.params, self.dist.world_size)
            max_norm = tc.grad_clip if tc.grad_clip else float("inf")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm, foreach=True))
            any_nonfinite = not math.isfinite(grad_norm)
        if any_nonfinite:
            self.optimizer.zero_grad(set_to_none=True)
            self.nonfinite_total += 1
            self.consecutive_nonfinite += 1
            if self.consecutive_nonfinite >= tc.max_nonfinite:
                where = f"; last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else ""
                raise TrainingDiverged(
                    f"{self.consecutive_nonfinite} non-finite losses/gradients in a row, the last at step {step} "
                    f"(train.max_nonfinite={tc.max_nonfinite}){where}"
                )
            return float("nan"), grad_norm, metric_sums
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.consecutive_nonfinite = 0
        self.method.after_optimizer_step(step, tc.max_steps)
        return mean_loss, grad_norm, metric_sums

    # ------------------------------------------------------------------------------------------
    # evaluation and checkpoints

    def _evaluate(self) -> dict[str, float]:
        """Run ``method.evaluate`` on rank 0 over the first ``eval_batches`` held-out batches."""
        if not self.dist.is_main:
            return {}
        per_rank = self.tc.batch_size // (self.dist.world_size * self.tc.grad_accum)
        loader = build_eval_loader(
            self.data.val, self.data.collate_fn, per_rank, self.tc.eval_batches, self.tc.seed
        )
        self.method.eval()
        try:
            with torch.no_grad(), self._autocast():
                results = self.method.evaluate(move_to_device(b, self.device) for b in loader)
        finally:
            self.method.train()
        self.last_eval = {k: _scalar(v) for k, v in results.items()}
        return dict(self.last_eval)

    def _update_best(self, results: dict[str, float]) -> bool:
        """Record a new best evaluation; returns whether to save now (agreed by every rank)."""
        improved = self._is_better(results)
        if self.dist.enabled:  # only rank 0 evaluates, but every rank must join the save
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

    def _save(self) -> None:
        rng = ckpt_io.capture_rng_state()
        if self.dist.enabled:
            gathered: list[Any] = [None] * self.dist.world_size
            dist.all_gather_object(gathered, rng)
            rng_states = gathered
        else:
            rng_states = [rng]
        if not self.dist.is_main:
            return
        trainer_state = {
            "epoch": self.step // self._batches_per_epoch() if self._batches_per_epoch() else 0,
            "samples_seen": self.step * self.tc.batch_size,
            "batches_consumed": self.step,
            "world_size": self.dist.world_size,
            "nonfinite_total": self.nonfinite_total,
            "consecutive_nonfinite": self.consecutive_nonfinite,
            "best": self.best,
            "config_hash": config_hash(self.config),
            "rng": rng_states,
        }
        self.last_checkpoint = ckpt_io.save_checkpoint(
            self.ckpt_root,
            self.step,
            self.method.state_dict(),
            self.optimizer,
            trainer_state,
            yaml.safe_dump(config_to_dict(self.config), sort_keys=False),
        )
        keep = {self.best["step"]} if self.best else set()
        ckpt_io.prune_checkpoints(self.ckpt_root, self.tc.keep_last, keep)

    def _batches_per_epoch(self) -> int | None:
        train = self.data.train
        if isinstance(train, torch.utils.data.IterableDataset) or not hasattr(train, "__len__"):
            return None
        return max(1, len(train) // self.tc.batch_size)


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
