"""Probes and collapse statistics on synthetic features with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from mambajepa.core.errors import ShapeError
from mambajepa.eval.attentive_probe import attentive_probe_accuracy
from mambajepa.eval.collapse import effective_rank, feature_std, is_collapsed
from mambajepa.eval.knn import knn_accuracy, knn_predict
from mambajepa.eval.linear_probe import fit_linear_probe, linear_probe_accuracy
from mambajepa.eval.probe import format_probe_table, learning_criterion


def gaussian_classes(n: int, dim: int, k: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=torch.Generator().manual_seed(99)) * 3
    y = torch.randint(k, (n,), generator=g)
    return centres[y] + spread * torch.randn(n, dim, generator=g), y


def test_linear_probe_separates_separable_classes_and_not_random_labels():
    x, y = gaussian_classes(400, 8, 4, 0.5, 0)
    xt, yt = gaussian_classes(200, 8, 4, 0.5, 1)
    assert linear_probe_accuracy(x, y, xt, yt, 4) == 1.0
    shuffled = y[torch.randperm(400, generator=torch.Generator().manual_seed(3))]
    assert linear_probe_accuracy(x, shuffled, xt, yt, 4) < 0.5


def test_linear_probe_is_invariant_to_feature_scale():
    x, y = gaussian_classes(300, 6, 3, 2.0, 0)
    a = fit_linear_probe(x, y, 3, steps=50).predict(x)
    b = fit_linear_probe(1000 * x + 5, y, 3, steps=50).predict(1000 * x + 5)
    assert torch.equal(a, b)
    with pytest.raises(ShapeError):
        fit_linear_probe(x, y + 3, 3)


def test_knn_by_hand():
    train_x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, -1.0]])
    train_y = torch.tensor([0, 0, 1, 1, 2])
    queries = torch.tensor([[1.0, 0.05], [0.05, 1.0]])
    # centred on the training mean, each query's two nearest neighbours share its class
    assert knn_predict(train_x, train_y, queries, 3, k=2).tolist() == [0, 1]
    x, y = gaussian_classes(300, 8, 5, 0.5, 0)
    xt, yt = gaussian_classes(100, 8, 5, 0.5, 1)
    assert knn_accuracy(x, y, xt, yt, 5, k=10) > 0.95


def test_collapse_statistics():
    g = torch.Generator().manual_seed(0)
    iso = torch.randn(2000, 16, generator=g)
    assert effective_rank(iso) > 15.0
    line = torch.randn(500, 1, generator=g) * torch.randn(1, 16, generator=g)  # rank one
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-3)
    const = torch.ones(10, 16)
    assert feature_std(const) == 0.0 and effective_rank(const) == 1.0
    assert feature_std(iso) == pytest.approx(1.0, abs=0.05)
    assert is_collapsed(feature_std(const), 1.0, 16) and not is_collapsed(1.0, 15.0, 16)
    # a diagonal spectrum (2, 1, 1, 0): exp(entropy of (1/2, 1/4, 1/4)) by hand
    m = torch.zeros(8, 4)
    m[0, 0], m[1, 0], m[2, 1], m[3, 1], m[4, 2], m[5, 2] = 2, -2, 1, -1, 1, -1
    p = torch.tensor([0.5, 0.25, 0.25])
    assert effective_rank(m) == pytest.approx(math.exp(float(-(p * p.log()).sum())), rel=1e-6)


def test_attentive_probe_reads_what_mean_pooling_loses():
    """The class is which of 8 tokens carries a marker: invisible to the token mean, plain to attention."""
    g = torch.Generator().manual_seed(0)

    def make(n):
        y = torch.randint(8, (n,), generator=g)
        tokens = 0.1 * torch.randn(n, 8, 16, generator=g)
        tokens[:, :, 8:] += torch.eye(8)  # positional code of each token
        tokens[torch.arange(n), y, :8] += 3.0  # the marker (same content for every class)
        return tokens, y

    (xt, yt), (xe, ye) = make(512), make(256)
    linear = linear_probe_accuracy(xt.mean(1), yt, xe.mean(1), ye, 8)
    attentive = attentive_probe_accuracy(xt, [yt], xe, [ye], [8], steps=200, lr=1e-2)[0]
    assert attentive > 0.9 and attentive > linear + 0.3, (attentive, linear)


def test_learning_criterion_and_table():
    def entry(acc):
        return {"linear_acc": acc, "knn_acc": acc, "chance": 0.25}

    trained = {
        "shape": entry(0.9),
        "colour": entry(0.99),
        "feature_std": 0.5,
        "effective_rank": 20.0,
        "feature_dim": 64,
    }
    trained["random_init"] = {
        "shape": entry(0.7),
        "colour": entry(1.0),
        "feature_std": 0.5,
        "effective_rank": 20.0,
    }
    verdict = learning_criterion(trained)
    assert verdict["error_ratio"] == pytest.approx(0.1 / 0.3)
    assert verdict["passed"] and verdict["worse_tasks"] == []  # colour 0.99 vs 1.0 is within tolerance
    trained["colour"] = entry(0.9)
    assert learning_criterion(trained)["worse_tasks"] == ["colour"]
    table = format_probe_table(trained)
    assert "shape" in table and "0.900" in table and "0.700" in table
