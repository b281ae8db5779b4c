"""Data-parallel and sharded training from torchrun's environment (gloo on CPU, NCCL on GPU).

The trainer calls ``method.training_step``, not ``forward``; :class:`StepModule` makes that step the
``forward`` of a module so that PyTorch's own engines see it:

- ``ddp``: :class:`torch.nn.parallel.DistributedDataParallel` (broadcasts rank 0's weights at
  construction, averages gradients in buckets during backward; ``no_sync()`` on accumulation
  micro-steps);
- ``fsdp``: FSDP2, :func:`torch.distributed.fsdp.fully_shard` on every block (each module of an
  ``nn.ModuleList``, or else each direct child holding parameters) and on the root; gradients are
  reduce-scattered on the last micro-step only.

Nothing is initialised unless ``WORLD_SIZE`` > 1 is set by torchrun.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistInfo",
    "StepModule",
    "init_distributed",
    "shutdown_distributed",
    "synchronize",
    "all_reduce_sum",
    "broadcast_module",
    "wrap_ddp",
    "shard_fsdp",
    "fsdp_units",
    "no_gradient_sync",
]


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
    """Destroy the default process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a small tensor over ranks in place (returns it unchanged when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(values)
    return values


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (one broadcast per tensor)."""
    with torch.no_grad():
        for tensor in module.state_dict(keep_vars=True).values():
            dist.broadcast(tensor.data, src=0)


class StepModule(nn.Module):
    """Exposes ``method.training_step(batch, step)`` as ``forward`` for DDP and FSDP hooks."""

    def __init__(self, method: nn.Module) -> None:
        super().__init__()
        self.method = method

    def forward(self, batch: Any, step: int) -> Any:
        return self.method.training_step(batch, step)


def wrap_ddp(method: nn.Module, device: torch.device, find_unused_parameters: bool) -> nn.Module:
    """``DistributedDataParallel`` over the method's training step.

    Built again at each stage start, since a stage may freeze other parameters (DDP fixes the set
    of parameters it reduces at construction). The construction broadcasts rank 0's weights.
    """
    return nn.parallel.DistributedDataParallel(
        StepModule(method),
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters,
    )


def fsdp_units(method: nn.Module) -> list[nn.Module]:
    """The blocks FSDP2 shards one by one: each module of every ``nn.ModuleList`` (outermost lists
    only), or, for a method without one, each direct child that holds parameters."""
    units: list[nn.Module] = []
    claimed: set[int] = set()
    for module in method.modules():
        if id(module) in claimed:
            continue
        if isinstance(module, nn.ModuleList):
            for block in module:
                if any(True for _ in block.parameters()):
                    units.append(block)
            for sub in module.modules():
                claimed.add(id(sub))
    if not units:
        units = [child for child in method.children() if any(True for _ in child.parameters())]
    return units


def shard_fsdp(method: nn.Module, device: torch.device) -> nn.Module:
    """Shard ``method`` with FSDP2 (``fully_shard`` per block, then the root :class:`StepModule`).

    Parameters are replaced by sharded ``DTensor`` parameters, so the optimizer must be built
    afterwards. Rank 0's weights are broadcast first so every shard starts from the same model.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    broadcast_module(method)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for unit in fsdp_units(method):
        fully_shard(unit, mesh=mesh)
    root = StepModule(method)
    fully_shard(root, mesh=mesh)
    return root


@contextlib.contextmanager
def no_gradient_sync(engine: nn.Module | None) -> Iterator[None]:
    """Skip the gradient reduction of an accumulation micro-step (DDP ``no_sync``, FSDP2
    ``set_requires_gradient_sync(False)``); a no-op for a single process."""
    if engine is None:
        yield
    elif isinstance(engine, nn.parallel.DistributedDataParallel):
        with engine.no_sync():
            yield
    else:
        engine.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            engine.set_requires_gradient_sync(True)
