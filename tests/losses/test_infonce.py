"""InfoNCE against a loop-based cross-entropy, and its learnable temperature."""

import math

import pytest
import torch

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.losses import InfoNCE, info_nce


def reference(a, b, tau, bidirectional, groups=None):
    def unit(rows):
        return [[x / math.sqrt(sum(y * y for y in r)) for x in r] for r in rows]

    a, b = unit(a.double().tolist()), unit(b.double().tolist())
    n = len(a)
    sim = [[sum(x * y for x, y in zip(a[i], b[j])) / tau for j in range(n)] for i in range(n)]

    def negative(i, j):  # a row with the same group id as row i is left out, unless it is i's positive
        return groups is None or j == i or groups[i] != groups[j]

    def ce(rows):
        return (
            sum(
                math.log(sum(math.exp(v) for j, v in enumerate(row) if negative(i, j))) - row[i]
                for i, row in enumerate(rows)
            )
            / n
        )

    forward = ce(sim)
    if not bidirectional:
        return forward
    return 0.5 * (forward + ce([list(col) for col in zip(*sim)]))


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_matches_reference(bidirectional, tau):
    torch.manual_seed(0)
    a, b = torch.randn(5, 7), torch.randn(5, 7)
    ours = info_nce(a, b, tau, bidirectional).item()
    assert ours == pytest.approx(reference(a, b, tau, bidirectional), rel=1e-5)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_rows_with_the_same_group_are_not_each_others_negatives(bidirectional):
    torch.manual_seed(2)
    a, b = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    groups = torch.tensor([0, 1, 0, 2, 1, 0])
    ours = info_nce(a, b, 0.1, bidirectional, groups=groups).item()
    assert ours == pytest.approx(reference(a, b, 0.1, bidirectional, groups.tolist()), rel=1e-9)
    assert ours != pytest.approx(reference(a, b, 0.1, bidirectional), rel=1e-3)
    distinct = info_nce(a, b, 0.1, bidirectional, groups=torch.arange(6)).item()
    assert distinct == pytest.approx(info_nce(a, b, 0.1, bidirectional).item(), rel=1e-12)
    with pytest.raises(ShapeError, match="groups"):
        info_nce(a, b, 0.1, groups=torch.zeros(5, dtype=torch.long))
    with pytest.raises(ShapeError, match="groups"):
        info_nce(a, b, 0.1, groups=torch.zeros(6))


def test_bidirectional_is_mean_of_both_directions():
    torch.manual_seed(1)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    both = info_nce(a, b, 0.2)
    one_way = 0.5 * (info_nce(a, b, 0.2, bidirectional=False) + info_nce(b, a, 0.2, bidirectional=False))
    torch.testing.assert_close(both, one_way)
    assert info_nce(a, b, 0.2, bidirectional=False).item() != pytest.approx(both.item())


def test_aligned_pairs_give_near_zero_loss():
    a = torch.eye(4)
    assert info_nce(a, a.clone(), 0.01).item() < 1e-6
    assert info_nce(a, a.roll(1, dims=0), 0.01).item() > 10.0


def test_learnable_temperature():
    module = InfoNCE(temperature=0.1, learnable=True)
    assert module.log_scale.requires_grad and module.log_scale._no_weight_decay
    assert module.temperature.item() == pytest.approx(0.1)
    torch.manual_seed(2)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    loss = module(a, b)
    assert loss.item() == pytest.approx(info_nce(a, b, 0.1).item(), rel=1e-5)
    loss.backward()
    assert module.log_scale.grad is not None and module.log_scale.grad.item() != 0.0
    fixed = InfoNCE(temperature=0.1)
    assert list(fixed.parameters()) == [] and "log_scale" not in fixed.state_dict()
    clamped = InfoNCE(temperature=1e-4, learnable=True, max_scale=50.0)
    assert clamped.temperature.item() == pytest.approx(1 / 50.0)


def test_inputs_checked():
    with pytest.raises(ShapeError, match=r"\(B, D\)"):
        info_nce(torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    with pytest.raises(ShapeError, match=r"\(3, 4\) and \(2, 4\)"):
        info_nce(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(ConfigError, match="temperature=0"):
        info_nce(torch.randn(3, 4), torch.randn(3, 4), 0.0)
    with pytest.raises(ConfigError, match="temperature=-1"):
        InfoNCE(-1)
