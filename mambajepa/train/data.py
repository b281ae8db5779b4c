"""Data loading with an exactly resumable position.

Map-style datasets are read through :class:`ResumableBatchSampler`: global batch ``b`` of the
run is a fixed function of (seed, b) -- the epoch's permutation comes from (seed, epoch) --
so a resumed run only needs the number of batches already consumed. Each global batch is
split across DDP ranks and then into gradient-accumulation micro-batches. Sampled keys carry
(index, batch, micro) so that :class:`SeededCollate` can seed the collation generator from
(seed, batch, rank, micro) even inside DataLoader worker processes.

Iterable datasets are consumed in stream order; resume skips the batches already consumed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info
from torch.utils.data._utils.collate import default_collate

from mambajepa.core.errors import ConfigError, DataError

__all__ = [
    "mix_seed",
    "seed_worker",
    "ResumableBatchSampler",
    "SeededCollate",
    "build_train_loader",
    "build_eval_loader",
]

Key = tuple[int, int, int]  # (dataset index, global batch index, micro-batch index)


def mix_seed(*parts: int | str) -> int:
    """A 63-bit seed that depends on every part (stable across processes and platforms)."""
    blob = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed python and numpy from the torch seed DataLoader gave the worker."""
    seed = torch.initial_seed() % (1 << 32)
    random.seed(seed)
    np.random.seed(seed)


class ResumableBatchSampler:
    """Micro-batches of dataset keys for one rank, starting at global batch ``start``.

    Args:
        num_samples: length of the map-style dataset.
        global_batch: samples per optimizer update over all ranks.
        world_size: number of DDP ranks.
        rank: this rank.
        grad_accum: micro-batches per update on each rank.
        seed: run seed; epoch ``e`` uses the permutation seeded by (seed, e).
        start: first global batch to produce (batches already consumed).
        stop: global batch to stop before (``None``: never stop).

    Raises:
        DataError: the dataset holds fewer samples than one global batch.
        ConfigError: the global batch does not split evenly across ranks and micro-batches.
    """

    def __init__(
        self,
        num_samples: int,
        global_batch: int,
        world_size: int = 1,
        rank: int = 0,
        grad_accum: int = 1,
        seed: int = 0,
        start: int = 0,
        stop: int | None = None,
    ) -> None:
        if global_batch % (world_size * grad_accum):
            raise ConfigError(
                f"train.batch_size={global_batch} is not divisible by ranks ({world_size}) x "
                f"grad_accum ({grad_accum})"
            )
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank={rank} is outside a world of {world_size} process(es)")
        if num_samples < global_batch:
            raise DataError(
                f"the training set has {num_samples} samples, fewer than one batch of {global_batch}"
            )
        self.num_samples = num_samples
        self.global_batch = global_batch
        self.world_size = world_size
        self.rank = rank
        self.grad_accum = grad_accum
        self.seed = seed
        self.start = start
        self.stop = stop
        self.batches_per_epoch = num_samples // global_batch  # the incomplete last batch is dropped
        self.micro_batch = global_batch // (world_size * grad_accum)

    def _permutation(self, epoch: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(mix_seed(self.seed, "epoch", epoch))
        return torch.randperm(self.num_samples, generator=gen)

    def __iter__(self) -> Iterator[list[Key]]:
        b = self.start
        epoch, perm = -1, None
        per_rank = self.global_batch // self.world_size
        while self.stop is None or b < self.stop:
            e, pos = divmod(b, self.batches_per_epoch)
            if e != epoch:
                epoch, perm = e, self._permutation(e)
            batch = perm[pos * self.global_batch : (pos + 1) * self.global_batch]
            mine = batch[self.rank * per_rank : (self.rank + 1) * per_rank].tolist()
            for m in range(self.grad_accum):
                chunk = mine[m * self.micro_batch : (m + 1) * self.micro_batch]
                yield [(i, b, m) for i in chunk]
            b += 1

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("an unbounded ResumableBatchSampler has no length")
        return max(0, self.stop - self.start) * self.grad_accum


@runtime_checkable
class SeededItems(Protocol):
    """A map-style dataset with random items (a clip start, a crop) drawn from a seed per draw.

    The loaders read such a dataset with ``get_item_seeded(index, seed)`` instead of
    ``dataset[index]``, with ``seed = mix_seed(run seed, "item", stream, batch, index)``
    (``stream`` is ``"train"`` or ``"eval"``): the same index drawn at another batch (so at
    another epoch) gets another seed, a resumed run draws the same seeds as an uninterrupted
    one, and every evaluation draws the same ones. ``seed`` is a non-negative 63-bit int.
    """

    def get_item_seeded(self, index: int, seed: int) -> Any: ...


class _KeyedDataset(Dataset):
    """Looks up ``(index, batch, micro)`` keys and returns ``(sample, batch, micro)``.

    Args:
        dataset: map-style dataset; a :class:`SeededItems` one gets the draw seed of each key.
        seed: run seed.
        stream: label separating training from evaluation draws.
    """

    def __init__(self, dataset: Dataset, seed: int, stream: str) -> None:
        self.dataset = dataset
        self.seed = seed
        self.stream = stream
        self.seeded = isinstance(dataset, SeededItems)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Key) -> tuple[Any, int, int]:
        index, batch, micro = key
        if self.seeded:
            seed = mix_seed(self.seed, "item", self.stream, batch, index)
            return self.dataset.get_item_seeded(index, seed), batch, micro
        return self.dataset[index], batch, micro


class SeededCollate:
    """Calls ``collate_fn(samples, generator)`` with a generator seeded from (seed, batch, rank, micro).

    Args:
        collate_fn: the method's collate function, or ``None`` for ``default_collate``.
        seed: run seed.
        rank: DDP rank.
        stream: label separating training from evaluation batches.
    """

    def __init__(
        self, collate_fn: Callable[[list, torch.Generator], Any] | None, seed: int, rank: int, stream: str
    ):
        self.collate_fn = collate_fn
        self.seed = seed
        self.rank = rank
        self.stream = stream

    def generator(self, batch: int, micro: int) -> torch.Generator:
        """The generator of micro-batch ``micro`` of batch ``batch``, seeded from the run, stream and rank."""
        return torch.Generator().manual_seed(mix_seed(self.seed, self.stream, batch, self.rank, micro))

    def collate(self, samples: list, batch: int, micro: int) -> Any:
        """Collate ``samples`` with the method's function and this micro-batch's generator."""
        if self.collate_fn is None:
            return default_collate(samples)
        return self.collate_fn(samples, self.generator(batch, micro))

    def __call__(self, items: list[tuple[Any, int, int]]) -> Any:
        _, batch, micro = items[0]
        return self.collate([sample for sample, _, _ in items], batch, micro)


def _passthrough(batch: Any) -> Any:
    return batch


class _IterableBatches(IterableDataset):
    """Micro-batches from a stream: global batch ``b`` is stream items [b*G, (b+1)*G) of the pass.

    Passes over the stream repeat (calling ``set_epoch`` when the dataset has it) until ``stop``;
    batches before ``start`` are read and dropped. With DataLoader workers, worker ``w`` of ``W``
    collates micro-batches ``c`` with ``c % W == w`` so the loader returns them in order.
    """

    def __init__(
        self,
        dataset: IterableDataset,
        sampler_like: ResumableBatchSampler,
        collate: SeededCollate,
        single_pass: bool = False,
    ):
        self.dataset = dataset
        self.plan = sampler_like
        self.collate = collate
        self.single_pass = single_pass  # evaluation reads the stream once, never wraps around

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info is not None else (0, 1)
        plan = self.plan
        per_rank = plan.global_batch // plan.world_size
        b, epoch = 0, 0
        while plan.stop is None or b < plan.stop:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            produced = False
            buffer: list[Any] = []
            for item in self.dataset:
                buffer.append(item)
                if len(buffer) < plan.global_batch:
                    continue
                produced = True
                if b >= plan.start:
                    mine = buffer[plan.rank * per_rank : (plan.rank + 1) * per_rank]
                    for m in range(plan.grad_accum):
                        if (b * plan.grad_accum + m) % nworkers == wid:
                            chunk = mine[m * plan.micro_batch : (m + 1) * plan.micro_batch]
                            yield self.collate.collate(chunk, b, m)
                buffer = []
                b += 1
                if plan.stop is not None and b >= plan.stop:
                    return
            if self.single_pass:
                return
            if not produced:
                raise DataError(
                    f"the training stream yielded fewer samples than one batch of {plan.global_batch}"
                )
            epoch += 1


def build_train_loader(
    dataset: Any,
    collate_fn: Callable[[list, torch.Generator], Any] | None,
    global_batch: int,
    grad_accum: int,
    seed: int,
    start_batch: int,
    stop_batch: int,
    world_size: int = 1,
    rank: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> tuple[DataLoader, int | None]:
    """DataLoader yielding this rank's micro-batches for global batches [start_batch, stop_batch).

    Args:
        dataset: map-style ``Dataset`` or ``IterableDataset``.
        collate_fn: ``collate_fn(samples, generator)`` or ``None``.
        global_batch: samples per update over all ranks.
        grad_accum: micro-batches per update.
        seed: run seed.
        start_batch: global batches already consumed (resume position).
        stop_batch: last global batch (exclusive).
        world_size: DDP ranks.
        rank: this rank.
        num_workers: DataLoader workers.
        pin_memory: page-lock batches so that copies to the GPU with ``non_blocking`` are asynchronous.

    Returns:
        ``(loader, batches_per_epoch)``; the latter is ``None`` for iterable datasets.
    """
    collate = SeededCollate(collate_fn, seed, rank, "train")
    # a dedicated generator keeps DataLoader from drawing worker seeds from the global torch RNG
    loader_gen = torch.Generator().manual_seed(mix_seed(seed, "loader", start_batch, rank))
    if isinstance(dataset, IterableDataset):
        plan = ResumableBatchSampler(
            global_batch, global_batch, world_size, rank, grad_accum, seed, start_batch, stop_batch
        )
        loader = DataLoader(
            _IterableBatches(dataset, plan, collate),
            batch_size=None,
            collate_fn=_passthrough,
            num_workers=num_workers,
            worker_init_fn=seed_worker,
            generator=loader_gen,
            pin_memory=pin_memory,
        )
        return loader, None
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise DataError(
            f"training data {type(dataset).__name__} is neither a map-style nor an iterable dataset"
        )
    sampler = ResumableBatchSampler(
        len(dataset), global_batch, world_size, rank, grad_accum, seed, start_batch, stop_batch
    )
    loader = DataLoader(
        _KeyedDataset(dataset, seed, "train"),
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=loader_gen,
        pin_memory=pin_memory,
    )
    return loader, sampler.batches_per_epoch


def build_eval_loader(
    dataset: Any,
    collate_fn: Callable[[list, torch.Generator], Any] | None,
    batch_size: int,
    max_batches: int,
    seed: int,
) -> DataLoader:
    """The first ``max_batches`` batches of ``dataset`` in order (same batches at every evaluation).

    Args:
        dataset: map-style or iterable held-out dataset.
        collate_fn: ``collate_fn(samples, generator)`` or ``None``.
        batch_size: samples per batch.
        max_batches: batches per evaluation.
        seed: run seed (collation generators of evaluation batches derive from it).

    Returns:
        A DataLoader in the main process.
    """
    collate = SeededCollate(collate_fn, seed, 0, "eval")
    if isinstance(dataset, IterableDataset):
        plan = ResumableBatchSampler(batch_size, batch_size, 1, 0, 1, seed, 0, max_batches)
        batches = _IterableBatches(dataset, plan, collate, single_pass=True)
        return DataLoader(batches, batch_size=None, collate_fn=_passthrough)
    count = min(len(dataset), batch_size * max_batches)
    keys = [
        [(i, j // batch_size, 0) for i in range(j, min(j + batch_size, count))]
        for j in range(0, count, batch_size)
    ]
    return DataLoader(_KeyedDataset(dataset, seed, "eval"), batch_sampler=keys, collate_fn=collate)
