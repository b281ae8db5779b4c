"""VICReg and Barlow Twins against hand-computed values and loop-based reference formulas."""

import math

import pytest
import torch

from mambajepa.core.errors import ShapeError
from mambajepa.losses import BarlowTwinsLoss, VICRegLoss, barlow_twins_loss, vicreg_loss, vicreg_terms


def vicreg_reference(za, zb, lam=25.0, mu=25.0, nu=1.0, gamma=1.0, eps=1e-4):
    """VICReg with explicit loops over plain floats (unbiased variance and covariance)."""
    za, zb = za.double().tolist(), zb.double().tolist()
    m, d = len(za), len(za[0])
    inv = sum((a - b) ** 2 for ra, rb in zip(za, zb) for a, b in zip(ra, rb)) / (m * d)

    def stats(z):
        means = [sum(r[j] for r in z) / m for j in range(d)]
        cov = [
            [sum((r[i] - means[i]) * (r[j] - means[j]) for r in z) / (m - 1) for j in range(d)]
            for i in range(d)
        ]
        var = sum(max(0.0, gamma - math.sqrt(cov[j][j] + eps)) for j in range(d)) / d
        off = sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
        return var, off

    va, ca = stats(za)
    vb, cb = stats(zb)
    return lam * inv + mu * (va + vb) / 2 + nu * (ca + cb)


def barlow_reference(za, zb, lambd=0.005, eps=1e-5):
    za, zb = za.double().tolist(), zb.double().tolist()
    m, d = len(za), len(za[0])

    def standardize(z):
        out = [[0.0] * d for _ in range(m)]
        for j in range(d):
            mean = sum(r[j] for r in z) / m
            var = sum((r[j] - mean) ** 2 for r in z) / m
            for i in range(m):
                out[i][j] = (z[i][j] - mean) / math.sqrt(var + eps)
        return out

    a, b = standardize(za), standardize(zb)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k][i] * b[k][j] for k in range(m)) / m
            loss += (1 - c) ** 2 if i == j else lambd * c**2
    return loss


def test_vicreg_hand_values():
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    terms = vicreg_terms(z, z.clone())
    # var per dim = 2 -> std > 1 -> no variance penalty; cov offdiag = 2 -> 2 * 2^2 / 2 per branch
    assert terms.invariance.item() == 0.0
    assert terms.variance.item() == 0.0
    assert terms.covariance.item() == pytest.approx(8.0)
    assert terms.loss.item() == pytest.approx(8.0)
    collapsed = torch.zeros(3, 2)
    terms = vicreg_terms(collapsed, collapsed)
    assert terms.variance.item() == pytest.approx(1.0 - math.sqrt(1e-4))
    assert terms.loss.item() == pytest.approx(25 * (1.0 - math.sqrt(1e-4)))


def test_vicreg_matches_reference_and_module():
    torch.manual_seed(0)
    za, zb = 0.5 * torch.randn(2, 6, 5), 0.5 * torch.randn(2, 6, 5)  # leading dims flatten to 12 rows
    ours = vicreg_loss(za, zb).item()
    assert ours == pytest.approx(vicreg_reference(za.reshape(12, 5), zb.reshape(12, 5)), rel=1e-5)
    assert VICRegLoss()(za, zb).item() == pytest.approx(ours)
    weighted = vicreg_loss(za, zb, sim_weight=1.0, var_weight=2.0, cov_weight=3.0).item()
    ref = vicreg_reference(za.reshape(12, 5), zb.reshape(12, 5), 1.0, 2.0, 3.0)
    assert weighted == pytest.approx(ref, rel=1e-5)


def test_barlow_hand_values():
    za = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    zb = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    # C = [[1, -1], [1, -1]]: on-diagonal (1-1)^2 + (1+1)^2 = 4, off-diagonal 0.005 * (1 + 1)
    assert barlow_twins_loss(za, zb, eps=0.0).item() == pytest.approx(4.01)
    assert barlow_twins_loss(za, za, eps=0.0).item() == pytest.approx(0.005 * 2)


def test_barlow_matches_reference_and_module():
    torch.manual_seed(1)
    za, zb = torch.randn(9, 4), torch.randn(9, 4)
    ours = barlow_twins_loss(za, zb).item()
    assert ours == pytest.approx(barlow_reference(za, zb), rel=1e-5)
    assert BarlowTwinsLoss(lambd=0.1)(za, zb).item() == pytest.approx(barlow_reference(za, zb, 0.1), rel=1e-5)


@pytest.mark.parametrize("fn", [vicreg_loss, barlow_twins_loss])
def test_regularizers_check_inputs(fn):
    with pytest.raises(ShapeError, match=r"\(4, 3\) and \(4, 2\)"):
        fn(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ShapeError, match="at least 2"):
        fn(torch.zeros(1, 3), torch.zeros(1, 3))


def test_regularizers_push_towards_spread_features():
    # gradient descent on the VICReg variance/covariance terms un-collapses near-constant features
    torch.manual_seed(0)
    z = (0.01 * torch.randn(16, 4)).requires_grad_()
    start = vicreg_terms(z, z.detach()).variance.item()
    opt = torch.optim.SGD([z], lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        vicreg_loss(z, z.detach(), sim_weight=0.0).backward()
        opt.step()
    assert vicreg_terms(z, z.detach()).variance.item() < 0.1 * start
