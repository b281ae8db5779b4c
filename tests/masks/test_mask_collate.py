"""Collation of masked batches and token gathering."""

import pytest
import torch

from mambajepa.core.errors import ShapeError
from mambajepa.masks import (
    IndexOutOfBounds,
    MaskCollator,
    MaskError,
    MaskSpec,
    MultiBlock2D,
    RandomTube,
    apply_masks,
    stack_masks,
    vjepa_mask_generators,
)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_image_batch_equal_lengths_truncated_like_ijepa():
    strategy = MultiBlock2D((8, 8), min_keep=4)
    samples = [(torch.full((3, 32, 32), float(i)), i) for i in range(5)]
    batch = MaskCollator(strategy)(samples, gen(11))
    assert batch.inputs.shape == (5, 3, 32, 32)
    assert torch.equal(batch.inputs[:, 0, 0, 0], torch.arange(5.0))
    assert batch.extras[0].tolist() == [0, 1, 2, 3, 4], "labels kept, in order"
    (masks,) = batch.masks
    # the same seed drives the same draws: rebuild the per-sample masks and compare
    specs = strategy.sample_batch(5, gen(11))
    kc = min(s.context_indices.numel() for s in specs)
    kt = min(s.target_indices.numel() for s in specs)
    assert masks.context.shape == (5, kc) and masks.target.shape == (5, kt)
    assert masks.context.dtype == torch.long and masks.total_tokens == 64
    for b, spec in enumerate(specs):
        assert torch.equal(masks.context[b], spec.context_indices[:kc])
        assert torch.equal(masks.target[b], spec.target_indices[:kt])
        assert not set(masks.context[b].tolist()) & set(masks.target[b].tolist())
    assert len(masks.target_blocks) == 4
    assert all(t.shape[0] == 5 for t in masks.target_blocks)


def test_video_dict_samples_with_two_generators():
    grid = (2, 4, 4)
    samples = [{"video": torch.randn(3, 4, 8, 8), "label": i % 3, "name": f"clip{i}"} for i in range(3)]
    batch = MaskCollator(vjepa_mask_generators(grid))(samples, gen(0))
    assert batch.inputs.shape == (3, 3, 4, 8, 8)
    assert batch.extras["label"].tolist() == [0, 1, 2]
    assert batch.extras["name"] == ["clip0", "clip1", "clip2"]
    assert len(batch.masks) == 2
    for masks in batch.masks:
        assert masks.context.shape[0] == masks.target.shape[0] == 3
        assert masks.target_blocks == ()


def test_bare_tensors_and_image_key():
    batch = MaskCollator(RandomTube((1, 4, 4), 0.5))([torch.zeros(3, 8, 8)] * 2, gen(0))
    assert batch.extras == () and batch.masks[0].context.shape == (2, 8)
    batch = MaskCollator(RandomTube((1, 4, 4), 0.5))([{"image": torch.zeros(3, 8, 8), "y": 1}] * 2, gen(0))
    assert batch.extras["y"].tolist() == [1, 1]


def test_collate_rejects_bad_batches():
    collate = MaskCollator(RandomTube((1, 4, 4), 0.5))
    with pytest.raises(ShapeError, match=r"\(3, 8, 8\)"):
        collate([torch.zeros(3, 8, 8), torch.zeros(3, 8, 9)], gen(0))
    with pytest.raises(ShapeError, match="no tensor"):
        collate([{"label": 1}], gen(0))
    with pytest.raises(ShapeError, match="empty"):
        collate([], gen(0))
    with pytest.raises(MaskError, match="at least one"):
        MaskCollator([])


def test_stack_masks_rejects_mixed_layouts():
    a = MaskSpec([0], [1], 4)
    with pytest.raises(MaskError, match=r"\[4, 5\]"):
        stack_masks([a, MaskSpec([0], [1], 5)])
    with pytest.raises(MaskError, match="target blocks"):
        stack_masks([a, MaskSpec([0], [1], 4, target_blocks=(torch.tensor([1]),))])


def test_apply_masks_matches_indexing_values_and_gradients():
    x = torch.randn(3, 10, 4, requires_grad=True)
    idx = torch.tensor([[0, 9, 3], [5, 5, 1], [2, 8, 7]])
    out = apply_masks(x, idx)
    expected = torch.stack([x[b, idx[b]] for b in range(3)])
    assert torch.equal(out, expected)
    weights = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    manual = torch.zeros(3, 10, 4)
    for b in range(3):
        for k in range(3):
            manual[b, idx[b, k]] += weights[b, k]
    torch.testing.assert_close(grad, manual)


def test_apply_masks_errors():
    x = torch.randn(2, 5, 3)
    with pytest.raises(IndexOutOfBounds, match=r"\[0, 5\)"):
        apply_masks(x, torch.tensor([[0, 5], [1, 2]]))
    with pytest.raises(ShapeError, match=r"\(B, N, D\)"):
        apply_masks(x[0], torch.tensor([[0]]))
    with pytest.raises(ShapeError, match="batch size"):
        apply_masks(x, torch.tensor([[0, 1]]))
    with pytest.raises(ShapeError, match="integer"):
        apply_masks(x, torch.tensor([[0.0], [1.0]]))
