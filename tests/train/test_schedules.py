"""Schedules as pure functions of the step: values at known steps and shape properties."""

from __future__ import annotations

import math

import pytest

from mambajepa.core.errors import ConfigError
from mambajepa.core.schedules import anneal, ema_momentum, lr_at, weight_decay_at

pytest.importorskip("hypothesis")  # a dev extra: without it this module is skipped
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def test_warmup_then_cosine_at_known_steps():
    kw = dict(max_steps=110, lr=1.0, min_lr=0.1, warmup_steps=10, kind="cosine")
    assert lr_at(0, **kw) == pytest.approx(0.1)  # lr / warmup: the first update is not a no-op
    assert lr_at(4, **kw) == pytest.approx(0.5)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(10, **kw) == pytest.approx(1.0)  # start of the decay
    assert lr_at(60, **kw) == pytest.approx(0.55)  # half way: (lr + min_lr) / 2
    assert lr_at(35, **kw) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert lr_at(110, **kw) == pytest.approx(0.1)
    assert lr_at(500, **kw) == pytest.approx(0.1)  # clamped past the end


def test_constant_and_linear():
    assert lr_at(50, 100, 2.0, 0.0, 0, "constant") == 2.0
    assert lr_at(3, 100, 2.0, 0.0, 10, "constant") == pytest.approx(0.8)  # warm-up still applies
    assert lr_at(50, 100, 2.0, 0.0, 0, "linear") == pytest.approx(1.0)
    assert lr_at(75, 100, 2.0, 1.0, 0, "linear") == pytest.approx(1.25)
    with pytest.raises(ConfigError, match="'step'"):
        anneal(0.5, 1.0, 0.0, "step")


def test_weight_decay_schedule():
    assert weight_decay_at(70, 100, 0.05, None) == 0.05
    assert weight_decay_at(0, 100, 0.04, 0.4, "cosine") == pytest.approx(0.04)
    assert weight_decay_at(50, 100, 0.04, 0.4, "cosine") == pytest.approx(0.22)
    assert weight_decay_at(100, 100, 0.04, 0.4, "linear") == pytest.approx(0.4)


def test_ema_momentum_kinds():
    assert ema_momentum(0, 100, 0.996, 1.0, "linear") == pytest.approx(0.996)
    assert ema_momentum(50, 100, 0.996, 1.0, "linear") == pytest.approx(0.998)
    assert ema_momentum(100, 100, 0.996, 1.0, "linear") == pytest.approx(1.0)
    assert ema_momentum(50, 100, 0.99, 1.0, "constant") == 0.99
    # BYOL: 1 - (1 - start) * (cos(pi t) + 1) / 2
    assert ema_momentum(25, 100, 0.99, 1.0, "cosine") == pytest.approx(
        1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2
    )


@given(
    max_steps=st.integers(1, 500),
    warmup=st.integers(0, 50),
    lr=st.floats(1e-6, 10.0),
    ratio=st.floats(0.0, 1.0),
    kind=st.sampled_from(["cosine", "linear", "constant"]),
)
def test_decay_is_monotone_and_bounded(max_steps, warmup, lr, ratio, kind):
    warmup = min(warmup, max_steps)
    min_lr = lr * ratio
    values = [lr_at(s, max_steps, lr, min_lr, warmup, kind) for s in range(max_steps + 1)]
    after = values[warmup:]
    assert all(b <= a + 1e-12 for a, b in zip(after, after[1:]))
    assert all(min_lr - 1e-12 <= v <= lr + 1e-12 for v in values[warmup:])
    assert all(0 < v <= lr + 1e-12 for v in values[:warmup])
