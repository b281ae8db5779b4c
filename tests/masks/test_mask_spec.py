"""MaskSpec validation: every typed error, its message, and the ratios."""

import pytest
import torch

from mambajepa.core.errors import MambaJepaError
from mambajepa.masks import (
    DuplicateIndex,
    EmptyContext,
    EmptyTarget,
    IndexOutOfBounds,
    MaskError,
    MaskSpec,
    OverlappingMasks,
    mask_ratio,
)

pytest.importorskip("hypothesis")  # a dev extra: without it this module is skipped
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def test_valid_mask_passes_and_reports_ratios():
    spec = MaskSpec([0, 1, 2, 3, 4], [8, 9], total_tokens=10)
    assert spec.validate() is spec
    assert spec.context_indices.dtype == torch.long
    assert mask_ratio(spec) == pytest.approx(0.2)
    assert spec.context_ratio == pytest.approx(0.5)


@pytest.mark.parametrize(
    "context, target, total, error, needle",
    [
        ([], [1, 2], 4, EmptyContext, "context_indices is empty"),
        ([0, 1], [], 4, EmptyTarget, "target_indices is empty"),
        ([0, 7], [1], 4, IndexOutOfBounds, "[7]"),
        ([0, -1], [1], 4, IndexOutOfBounds, "[-1]"),
        ([0], [1, 4], 4, IndexOutOfBounds, "target_indices holds [4]"),
        ([0, 2, 2], [1], 4, DuplicateIndex, "context_indices repeats [2]"),
        ([0], [3, 1, 3], 4, DuplicateIndex, "target_indices repeats [3]"),
        ([0, 1, 2], [2, 3], 4, OverlappingMasks, "[2]"),
    ],
)
def test_each_error_is_typed_and_names_the_values(context, target, total, error, needle):
    spec = MaskSpec(context, target, total_tokens=total)
    with pytest.raises(error) as info:
        spec.validate()
    assert needle in str(info.value)
    assert isinstance(info.value, MaskError)
    assert isinstance(info.value, MambaJepaError)
    assert isinstance(info.value, ValueError)


def test_error_order_empty_before_bounds():
    # the seed's strict step expects EmptyTarget for (context=[0], target=[]) regardless of the rest
    with pytest.raises(EmptyTarget):
        MaskSpec([0, 99], [], total_tokens=32).validate()


def test_target_blocks_are_checked():
    blocks = (torch.tensor([2, 3]), torch.tensor([3, 5]))
    with pytest.raises(MaskError, match=r"target_blocks\[1\] holds \[5\]"):
        MaskSpec([0, 1], [2, 3], 6, target_blocks=blocks).validate()
    with pytest.raises(DuplicateIndex, match=r"target_blocks\[0\]"):
        MaskSpec([0, 1], [2, 3], 6, target_blocks=(torch.tensor([2, 2]),)).validate()
    MaskSpec([0, 1], [2, 3, 5], 6, target_blocks=blocks).validate()


def test_malformed_index_containers_raise_mask_error():
    with pytest.raises(MaskError, match="1-D"):
        MaskSpec(torch.zeros(2, 2, dtype=torch.long), [1], 8)
    with pytest.raises(MaskError, match="integer"):
        MaskSpec(torch.tensor([0.0, 1.0]), [2], 8)


def test_long_previews_are_truncated():
    spec = MaskSpec(list(range(20)), list(range(20)), total_tokens=40)
    with pytest.raises(OverlappingMasks) as info:
        spec.validate()
    assert "..." in str(info.value) and "0, 1, 2" in str(info.value)


@given(
    context=st.lists(st.integers(-2, 12), max_size=8),
    target=st.lists(st.integers(-2, 12), max_size=8),
)
def test_validate_accepts_exactly_the_disjoint_in_range_unique_masks(context, target):
    total = 10
    valid = (
        bool(context)
        and bool(target)
        and all(0 <= i < total for i in context + target)
        and len(set(context)) == len(context)
        and len(set(target)) == len(target)
        and not set(context) & set(target)
    )
    spec = MaskSpec(context, target, total)
    if valid:
        spec.validate()
    else:
        with pytest.raises(MaskError):
            spec.validate()
