"""Data-parallel training from torchrun's environment (gloo on CPU, NCCL on GPU).

The trainer calls ``method.training_step`` directly (not ``forward``), so gradients are
averaged here explicitly, once per optimizer update, in flat buckets; the initial weights are
broadcast from rank 0. Nothing is initialised unless ``WORLD_SIZE`` > 1 is set by torchrun.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

__all__ = [
    "DistInfo",
    "init_distributed",
    "shutdown_distributed",
    "synchronize",
    "all_reduce_grads",
    "broadcast_module",
    "all_reduce_sum",
]

_BUCKET_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that logs and writes."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether the job has more than one process."""
        return self.world_size > 1


def init_distributed(device_kind: str) -> DistInfo:
    """Initialise the default process group when launched by torchrun with more than one process.

    Args:
        device_kind: ``"cuda"`` selects NCCL (and this rank's GPU), anything else gloo.

    Returns:
        This process's rank information (world size 1 when not distributed).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if device_kind == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local_rank)


def synchronize() -> None:
    """Wait until every rank gets here (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown_distributed() -> None:
    """Destroy the default process group if this module's caller created one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _buckets(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    buckets: list[list[torch.Tensor]] = []
    current: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        if current and (size + t.numel() * t.element_size() > _BUCKET_BYTES or t.dtype != current[0].dtype):
            buckets.append(current)
            current, size = [], 0
        current.append(t)
        size += t.numel() * t.element_size()
    if current:
        buckets.append(current)
    return buckets


def all_reduce_grads(params: list[nn.Parameter], world_size: int) -> None:
    """Average the gradients of ``params`` over ranks (parameters without a gradient are skipped).

    Every rank must call this with the same parameters having gradients.
    """
    grads = [p.grad for p in params if p.grad is not None]
    for bucket in _buckets(grads):
        flat = _flatten_dense_tensors(bucket)
        dist.all_reduce(flat)
        flat.div_(world_size)
        for grad, synced in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            grad.copy_(synced)


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    tensors = [t.data for t in module.state_dict(keep_vars=True).values()]
    for bucket in _buckets(tensors):
        flat = _flatten_dense_tensors(bucket)
        dist.broadcast(flat, src=0)
        for t, synced in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            t.copy_(synced)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a small tensor over ranks (returns it unchanged when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(values)
    return values
