"""Parameter groups: multipliers, frozen modules, no-decay rules, exhaustiveness."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mambajepa.core.errors import ConfigError
from mambajepa.methods.base import ParamGroupSpec
from mambajepa.ssm.norm import RMSNorm
from mambajepa.train.optim import build_optimizer, set_group_hparams, split_param_groups


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 6, bias=False))
        self.encoder.token = nn.Parameter(torch.randn(3, 6))  # 2-D but tagged
        self.encoder.token._no_weight_decay = True
        self.text = nn.Sequential(nn.Linear(6, 6), RMSNorm(6))
        self.frozen = nn.Linear(6, 6)
        self.frozen.requires_grad_(False)


def _specs(m: _Toy) -> list[ParamGroupSpec]:
    return [
        ParamGroupSpec("encoder", m.encoder),
        ParamGroupSpec("text", m.text, lr_mult=0.05, wd_mult=2.0),
        ParamGroupSpec("frozen", m.frozen),
    ]


def test_groups_split_decay_and_skip_frozen():
    m = _Toy()
    groups = {g.name: g for g in split_param_groups(m, _specs(m))}
    assert set(groups) == {"encoder", "encoder.no_decay", "text", "text.no_decay"}
    assert groups["encoder"].names == ["encoder.0.weight", "encoder.2.weight"]
    assert sorted(groups["encoder.no_decay"].names) == [
        "encoder.0.bias",
        "encoder.1.bias",
        "encoder.1.weight",
        "encoder.token",
    ]
    assert groups["text"].names == ["text.0.weight"]
    assert sorted(groups["text.no_decay"].names) == ["text.0.bias", "text.1.weight"]
    assert all(not n.startswith("frozen") for g in groups.values() for n in g.names)


def test_multipliers_reach_the_optimizer_and_the_update():
    m = _Toy()
    opt = build_optimizer(
        split_param_groups(m, _specs(m)), lr=1.0, weight_decay=0.5, betas=(0.9, 0.95), eps=1e-8
    )
    set_group_hparams(opt, lr=0.1, weight_decay=0.2)
    hp = {g["name"]: (g["lr"], g["weight_decay"]) for g in opt.param_groups}
    assert hp["encoder"] == pytest.approx((0.1, 0.2))
    assert hp["encoder.no_decay"] == pytest.approx((0.1, 0.0))
    assert hp["text"] == pytest.approx((0.005, 0.4))
    assert hp["text.no_decay"] == pytest.approx((0.005, 0.0))
    # with zero gradients AdamW only applies decoupled decay: p <- p * (1 - lr * wd)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p) if p.requires_grad else None
    opt.step()
    after = dict(m.named_parameters())
    torch.testing.assert_close(after["encoder.0.weight"], before["encoder.0.weight"] * (1 - 0.1 * 0.2))
    torch.testing.assert_close(after["text.0.weight"], before["text.0.weight"] * (1 - 0.005 * 0.4))
    for name in ("encoder.token", "encoder.1.weight", "encoder.0.bias", "text.1.weight", "frozen.weight"):
        assert torch.equal(after[name], before[name]), name


def test_missing_parameter_is_named():
    m = _Toy()
    with pytest.raises(ConfigError, match=r"text\.0\.weight"):
        split_param_groups(m, [ParamGroupSpec("encoder", m.encoder)])


def test_duplicated_parameter_is_named():
    m = _Toy()
    with pytest.raises(ConfigError, match=r"'encoder\.token' is in two groups: 'encoder' and 'all'"):
        split_param_groups(m, [ParamGroupSpec("encoder", m.encoder), ParamGroupSpec("all", m)])


def test_foreign_parameter_and_repeated_names():
    m = _Toy()
    with pytest.raises(ConfigError, match="not registered"):
        split_param_groups(m, [*_specs(m), ParamGroupSpec("other", nn.Linear(2, 2))])
    with pytest.raises(ConfigError, match="used twice"):
        split_param_groups(m, [ParamGroupSpec("a", m.encoder), ParamGroupSpec("a", m.text)])


def test_default_group_covers_a_method():
    from mambajepa.methods.regression import MLPRegression, RegressionModelConfig

    method = MLPRegression(RegressionModelConfig(head_lr_mult=0.5))
    groups = split_param_groups(method, method.param_groups())
    n_trainable = sum(1 for p in method.parameters() if p.requires_grad)
    assert sum(len(g.params) for g in groups) == n_trainable
    assert {g.name: g.lr_mult for g in groups}["head"] == 0.5
