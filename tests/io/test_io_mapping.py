"""The foreign-checkpoint mapping: ignore, strip, rename, merge, and the mismatch report."""

import pytest
import torch
from torch import nn

from mambajepa.core.errors import CheckpointError
from mambajepa.core.mapping import CheckpointMapping, Merge, compare_state_dict, load_mapped, map_state_dict


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(4, 12)
        self.norm = nn.LayerNorm(4)


def test_strip_rename_and_merge():
    q, k, v = (torch.full((4, 4), float(i)) for i in range(3))
    state = {
        "module._orig_mod.layer.attention.query.weight": q,
        "module._orig_mod.layer.attention.key.weight": k,
        "module._orig_mod.layer.attention.value.weight": v,
        "module._orig_mod.final_ln.bias": torch.ones(4),
        "predictor.anything": torch.zeros(1),
    }
    mapping = CheckpointMapping(
        ignore=(r"^predictor\.",),
        renames=((r"^layer\.attention\.", "attn."), (r"^final_ln\.", "norm.")),
        merges=(Merge(("query", "key", "value"), "qkv"),),
    )
    mapped, ignored = map_state_dict(state, mapping)
    assert ignored == ["predictor.anything"]
    assert sorted(mapped) == ["attn.qkv.weight", "norm.bias"]
    assert torch.equal(mapped["attn.qkv.weight"], torch.cat([q, k, v]))


def test_incomplete_merge_is_left_for_the_report():
    state = {"a.query.weight": torch.zeros(1), "a.key.weight": torch.zeros(1)}
    mapped, _ = map_state_dict(state, CheckpointMapping(merges=(Merge(("query", "key", "value"), "qkv"),)))
    assert sorted(mapped) == ["a.key.weight", "a.query.weight"]


def test_report_lists_every_kind_of_mismatch():
    model = Tiny()
    state = dict(model.state_dict())
    del state["norm.bias"]
    state["norm.weight"] = torch.ones(5)
    state["head.weight"] = torch.ones(1)
    report = compare_state_dict(model, state)
    assert report.missing == ["norm.bias"]
    assert report.unexpected == ["head.weight"]
    assert report.wrong_shape == [("norm.weight", (5,), (4,))]
    with pytest.raises(
        CheckpointError, match=r"1 missing: norm.bias; 1 unexpected: head.weight; 1 wrong shape"
    ):
        load_mapped(model, state, source="ckpt")


def test_load_mapped_loads_values_and_refuses_collisions():
    source, target = Tiny(), Tiny()
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    load_mapped(target, state)
    assert torch.equal(target.attn.qkv.weight, source.attn.qkv.weight)
    with pytest.raises(CheckpointError, match="collide"):
        map_state_dict({"module.x": torch.zeros(1), "x": torch.zeros(1)}, CheckpointMapping())
