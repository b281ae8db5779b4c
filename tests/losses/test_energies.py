"""Energies against values computed by hand."""

import math

import pytest
import torch

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.losses import Energy, cosine_energy, energy, l1_energy, l2_energy, smooth_l1_energy

PRED = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
ZERO = torch.zeros(2, 2)


def test_l2_and_l1_by_hand():
    assert l2_energy(PRED, ZERO).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert l1_energy(PRED, ZERO).item() == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert l2_energy(PRED, PRED).item() == 0.0


def test_smooth_l1_by_hand():
    pred = torch.tensor([[0.5, 2.0]])
    target = torch.zeros(1, 2)
    # beta = 1: 0.5 * 0.5^2 = 0.125 (quadratic), 2 - 0.5 = 1.5 (linear)
    assert smooth_l1_energy(pred, target).item() == pytest.approx((0.125 + 1.5) / 2)
    # beta = 2: 0.5 * 0.25 / 2 = 0.0625, |2| is not < 2 -> 2 - 1 = 1
    assert smooth_l1_energy(pred, target, beta=2.0).item() == pytest.approx((0.0625 + 1.0) / 2)
    with pytest.raises(ConfigError, match="beta=0"):
        smooth_l1_energy(pred, target, beta=0)


def test_cosine_by_hand():
    pred = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, 1.0], [2.0, 2.0], [-1.0, 0.0], [4.0, 3.0]])
    per_token = [1.0, 0.0, 2.0, 1.0 - 24.0 / 25.0]
    assert cosine_energy(pred, target).item() == pytest.approx(sum(per_token) / 4, abs=1e-6)


def test_l2_gradient_is_two_residual_over_n():
    pred = torch.randn(2, 3, 4, requires_grad=True)
    target = torch.randn(2, 3, 4)
    (grad,) = torch.autograd.grad(l2_energy(pred, target), pred)
    torch.testing.assert_close(grad, 2 * (pred.detach() - target) / pred.numel())


@pytest.mark.parametrize("kind", ["l2", "l1", "smooth_l1", "cosine"])
def test_module_and_dispatch_agree_with_functions(kind):
    torch.manual_seed(0)
    pred, target = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    fn = {"l2": l2_energy, "l1": l1_energy, "smooth_l1": smooth_l1_energy, "cosine": cosine_energy}[kind]
    assert torch.equal(Energy(kind)(pred, target), fn(pred, target))
    assert torch.equal(energy(pred, target, kind), fn(pred, target))


def test_inputs_are_checked():
    with pytest.raises(ShapeError, match=r"\(2, 3\) and \(2, 4\)"):
        l2_energy(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ShapeError, match="floating"):
        l1_energy(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ConfigError, match="'l3'"):
        Energy("l3")
    with pytest.raises(ConfigError, match="'huber'"):
        energy(PRED, ZERO, "huber")


def test_cosine_is_scale_invariant():
    pred, target = torch.randn(4, 6), torch.randn(4, 6)
    a = cosine_energy(pred, target)
    b = cosine_energy(3.0 * pred, 0.5 * target)
    assert a.item() == pytest.approx(b.item(), abs=1e-6)
    assert 0.0 <= a.item() <= 2.0 and not math.isnan(a.item())
