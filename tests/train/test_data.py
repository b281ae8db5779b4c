"""Resumable data order: epoch permutations, rank and micro-batch splits, seeded collation."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import Dataset, IterableDataset

from mambajepa.core.errors import ConfigError, DataError
from mambajepa.train.data import ResumableBatchSampler, build_eval_loader, build_train_loader


class _Indexed(Dataset):
    def __len__(self) -> int:
        return 23

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(i)


class _IndexedStream(IterableDataset):
    def __iter__(self):
        yield from (torch.tensor(i) for i in range(23))


def _noisy_collate(samples, generator):
    """Stacks samples and draws a random number, as a masking collator would."""
    return torch.stack(samples), torch.randint(0, 10**9, (1,), generator=generator)


def _flat(batches):
    return [i for batch in batches for i, _, _ in batch]


def test_epochs_are_permutations_and_resume_continues_the_sequence():
    full = list(itertools.islice(iter(ResumableBatchSampler(23, 5, seed=3)), 12))
    per_epoch = 23 // 5
    for e in range(2):
        epoch = _flat(full[e * per_epoch : (e + 1) * per_epoch])
        assert len(set(epoch)) == len(epoch) == 20  # no repeats; the last 3 samples are dropped
    assert _flat(full[:per_epoch]) != _flat(full[per_epoch : 2 * per_epoch])  # reshuffled per epoch
    resumed = list(itertools.islice(iter(ResumableBatchSampler(23, 5, seed=3, start=7)), 5))
    assert resumed == full[7:]
    assert [b for _, b, _ in resumed[0]] == [7] * 5
    other_seed = list(itertools.islice(iter(ResumableBatchSampler(23, 5, seed=4)), 4))
    assert _flat(other_seed) != _flat(full[:4])


def test_ranks_and_micro_batches_partition_the_global_batch():
    whole = ResumableBatchSampler(40, 8, seed=1, stop=5)
    parts = [
        list(ResumableBatchSampler(40, 8, world_size=2, rank=r, grad_accum=2, seed=1, stop=5)) for r in (0, 1)
    ]
    assert len(whole) == 5 and len(parts[0]) == 10 and all(len(m) == 2 for m in parts[0])
    for b, batch in enumerate(whole):
        rank_keys = [parts[r][2 * b] + parts[r][2 * b + 1] for r in (0, 1)]
        assert [i for i, _, _ in rank_keys[0] + rank_keys[1]] == [i for i, _, _ in batch]
        assert [m for _, _, m in parts[0][2 * b] + parts[0][2 * b + 1]] == [0, 0, 1, 1]


def test_sampler_checks():
    with pytest.raises(ConfigError, match="batch_size=10 is not divisible"):
        ResumableBatchSampler(40, 10, world_size=4)
    with pytest.raises(DataError, match="fewer than one batch"):
        ResumableBatchSampler(3, 8)


@pytest.mark.parametrize("workers", [0, 2])
def test_collation_is_seeded_by_batch_and_identical_on_resume(workers):
    def batches(start, rank=0, world=1, num_workers=workers):
        loader, _ = build_train_loader(
            _Indexed(),
            _noisy_collate,
            4,
            1,
            seed=9,
            start_batch=start,
            stop_batch=8,
            num_workers=num_workers,
            rank=rank,
            world_size=world,
        )
        return [(x.tolist(), r.item()) for x, r in loader]

    full = batches(0)
    assert batches(5) == full[5:]
    assert batches(0, num_workers=0) == full  # workers do not change data or randomness
    assert len({r for _, r in full}) == len(full)  # a fresh draw per batch
    ranks = [[r for _, r in batches(0, rank=rank, world=2)] for rank in (0, 1)]
    assert all(a != b for a, b in zip(*ranks))  # and per rank


def test_iterable_stream_skips_consumed_batches():
    def batches(start, workers=0):
        loader, per_epoch = build_train_loader(
            _IndexedStream(), None, 4, 2, seed=0, start_batch=start, stop_batch=9, num_workers=workers
        )
        assert per_epoch is None
        return [x.tolist() for x in loader]

    full = batches(0)
    assert full[:2] == [[0, 1], [2, 3]] and len(full) == 18  # two micro-batches per update
    assert full[10:12] == [[0, 1], [2, 3]]  # second pass over the stream (5 batches per pass)
    assert batches(3) == full[6:]
    assert batches(0, workers=2) == full


def test_eval_loader_is_fixed_and_bounded():
    loader = build_eval_loader(_Indexed(), _noisy_collate, 5, 3, seed=2)
    first = [(x.tolist(), r.item()) for x, r in loader]
    second = [(x.tolist(), r.item()) for x, r in loader]
    assert first == second and [x for x, _ in first] == [
        list(range(0, 5)),
        list(range(5, 10)),
        list(range(10, 15)),
    ]


def test_eval_loader_reads_a_short_stream_once():
    loader = build_eval_loader(_IndexedStream(), None, 5, 10, seed=0)
    assert [x.tolist() for x in loader] == [list(range(i, i + 5)) for i in range(0, 20, 5)]
