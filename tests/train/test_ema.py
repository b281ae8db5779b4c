"""EMA target networks: momentum schedules, update math, frozen target."""

import math

import pytest
import torch
from torch import nn

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.nn.ema import EMA, ema_copy, ema_momentum, ema_update_


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.GELU(), nn.Linear(6, 3))


@pytest.mark.parametrize(
    "kind, step, expected",
    [
        ("linear", 0, 0.996),
        ("linear", 50, 0.998),
        ("linear", 25, 0.997),
        ("linear", 100, 1.0),
        ("linear", 150, 1.0),
        ("constant", 0, 0.996),
        ("constant", 80, 0.996),
        ("cosine", 0, 0.996),
        ("cosine", 50, 0.998),
        ("cosine", 25, 1.0 - 0.004 * (1 + math.cos(math.pi / 4)) / 2),
        ("cosine", 100, 1.0),
    ],
)
def test_momentum_schedule_values(kind, step, expected):
    assert ema_momentum(step, 100, 0.996, 1.0, kind) == pytest.approx(expected, abs=1e-12)


def test_unknown_schedule_kind_is_rejected_at_construction():
    with pytest.raises(ConfigError, match="'step'"):
        EMA(small_net(), kind="step")
    with pytest.raises(ValueError, match="start momentum=1.5"):
        EMA(small_net(), start=1.5)


def test_copy_is_frozen_and_independent():
    online = small_net()
    target = ema_copy(online)
    assert all(not p.requires_grad for p in target.parameters())
    assert all(p.requires_grad for p in online.parameters())
    with torch.no_grad():
        online[0].weight.add_(1.0)
    assert not torch.equal(online[0].weight, target[0].weight)


def test_update_math_matches_formula_including_buffers():
    online, target = small_net(0), ema_copy(small_net(1))
    online[1].running_mean.fill_(0.25)
    before = {n: p.clone() for n, p in target.named_parameters()}
    ema_update_(target, online, 0.9)
    for name, p in online.named_parameters():
        expected = 0.9 * before[name] + 0.1 * p.detach()
        torch.testing.assert_close(dict(target.named_parameters())[name], expected)
    assert torch.equal(target[1].running_mean, online[1].running_mean)


def test_repeated_updates_have_closed_form():
    online, target = small_net(0), ema_copy(small_net(1))
    t0 = target[3].weight.clone()
    o = online[3].weight.detach()
    m, k = 0.8, 7
    for _ in range(k):
        ema_update_(target, online, m)
    torch.testing.assert_close(target[3].weight, m**k * t0 + (1 - m**k) * o)


def test_momentum_one_freezes_and_zero_copies():
    online, target = small_net(0), ema_copy(small_net(1))
    frozen = [p.clone() for p in target.parameters()]
    ema_update_(target, online, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), frozen))
    ema_update_(target, online, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), online.parameters()))
    with pytest.raises(ValueError, match="momentum=1.1"):
        ema_update_(target, online, 1.1)


def test_mismatched_networks_are_reported():
    with pytest.raises(ShapeError, match="0.weight"):
        ema_update_(nn.Sequential(nn.Linear(3, 3)), nn.Sequential(nn.Linear(4, 3)), 0.5)


def test_target_never_receives_gradients_through_a_training_step():
    online = small_net(0)
    ema = EMA(online, max_steps=10)
    predictor = nn.Linear(3, 3)
    opt = torch.optim.SGD(list(online.parameters()) + list(predictor.parameters()), lr=0.1)
    x = torch.randn(8, 4)
    for step in range(3):
        target = ema(x)
        assert not target.requires_grad
        loss = (predictor(online(x)) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in ema.parameters())
        assert all(p.grad is not None for p in online.parameters())
        opt.step()
        before = [p.clone() for p in ema.target.parameters()]
        m = ema.update(online, step)
        assert m == pytest.approx(ema_momentum(step, 10, 0.996, 1.0, "linear"))
        for p_t, p_b, p_o in zip(ema.target.parameters(), before, online.parameters()):
            torch.testing.assert_close(p_t, m * p_b + (1 - m) * p_o.detach())
    # even called directly, the frozen target builds no graph from plain inputs
    assert not ema.target(x).requires_grad


def test_state_dict_holds_only_the_target():
    online = small_net()
    ema = EMA(online)
    keys = list(ema.state_dict())
    assert keys and all(k.startswith("target.") for k in keys)
    assert sum(p.numel() for p in ema.parameters()) == sum(p.numel() for p in online.parameters())
    assert not any(p.requires_grad for p in ema.parameters())
