"""Block, BiMamba / Bidirectional and MixerModel: residual wiring, directions, keys, streaming."""

import pytest
import torch
from torch import nn

from mambajepa.core.errors import ConfigError
from mambajepa.ssm import Bidirectional, BiMamba, Block, Mamba1, Mamba2, MixerModel, RMSNorm, make_mixer_cls

TOL = {"rtol": 1e-4, "atol": 1e-5}
M2 = {"layer": "Mamba2", "d_state": 4, "headdim": 8, "chunk_size": 4}


@pytest.mark.parametrize("d_intermediate", [0, 24])
def test_mixer_model_equals_hand_wired_prenorm_residual_stack(d_intermediate):
    torch.manual_seed(0)
    model = MixerModel(
        16, 2, vocab_size=None, ssm_cfg={"layer": "Mamba1", "d_state": 4}, d_intermediate=d_intermediate
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("norm2.weight") or name == "norm_f.weight":
                p.add_(0.5 * torch.randn_like(p))
    x = torch.randn(2, 7, 16)
    residual = x
    for layer in model.layers:
        h = layer.mixer(layer.norm(residual))
        if d_intermediate:
            residual = residual + h
            h = layer.mlp(layer.norm2(residual))
        residual = residual + h
        # next block's input is (h, residual - h); the sum is what each norm sees
    expected = model.norm_f(residual)
    torch.testing.assert_close(model(inputs_embeds=x), expected, **TOL)


def test_block_residual_in_fp32_and_drop_path():
    torch.manual_seed(0)
    block = Block(8, lambda d: nn.Linear(d, d), norm_cls=RMSNorm, residual_in_fp32=True, drop_path=0.5)
    _, r = block(torch.randn(4, 3, 8, dtype=torch.bfloat16))
    assert r.dtype == torch.float32
    # drop path: in training each sample's branch joins the residual either zeroed or scaled by 1/keep
    block.train()
    hidden, residual = torch.randn(64, 3, 8), torch.randn(64, 3, 8)
    _, r_new = block(hidden, residual)
    delta = r_new - residual
    dropped = delta.flatten(1).abs().amax(1) == 0
    torch.testing.assert_close(delta[~dropped], 2 * hidden[~dropped])
    assert 0 < dropped.sum() < 64
    block.eval()
    _, r_eval = block(hidden, residual)
    torch.testing.assert_close(r_eval, residual + hidden)


def test_bimamba_is_forward_plus_flipped_backward_scan_with_videomamba_names():
    torch.manual_seed(0)
    bi = BiMamba(16, d_state=4, d_conv=3, impl="chunked", chunk_size=4)
    keys = set(bi.state_dict())
    assert {
        "conv1d_b.weight",
        "conv1d_b.bias",
        "x_proj_b.weight",
        "dt_proj_b.weight",
        "dt_proj_b.bias",
        "A_b_log",
        "D_b",
        "in_proj.weight",
        "out_proj.weight",
    } <= keys
    assert not any(k.startswith("in_proj_b") or k.startswith("out_proj_b") for k in keys)
    assert bi.A_b_log._no_weight_decay and bi.D_b._no_weight_decay
    # out_proj is linear (no bias) and the gate is shared, so the sum splits into two causal layers
    fwd, bwd = Mamba1(16, d_state=4, d_conv=3), Mamba1(16, d_state=4, d_conv=3)
    sd = bi.state_dict()
    fwd.load_state_dict({k: v for k, v in sd.items() if k in fwd.state_dict()})
    bwd_sd = {k: sd[k] for k in ("in_proj.weight", "out_proj.weight")}
    bwd_sd.update({k.replace("_b", ""): v for k, v in sd.items() if "_b" in k})
    bwd_sd["A_log"] = sd["A_b_log"]
    bwd.load_state_dict(bwd_sd)
    x = torch.randn(2, 9, 16)
    torch.testing.assert_close(bi(x), fwd(x) + bwd(x.flip(1)).flip(1), **TOL)


def test_bidirectional_wrapper_sees_the_future_and_is_reversal_symmetric():
    torch.manual_seed(0)
    f, b = Mamba2(16, d_state=4, headdim=8, chunk_size=4), Mamba2(16, d_state=4, headdim=8, chunk_size=4)
    x = torch.randn(2, 10, 16, requires_grad=True)
    y = Bidirectional(f, b)(x)
    # reversing time and swapping the roles of the two mixers gives the reversed output
    torch.testing.assert_close(Bidirectional(b, f)(x.flip(1)).flip(1), y, **TOL)
    (grad,) = torch.autograd.grad(y[:, 0].sum(), x)
    assert grad[:, -1].abs().sum() > 0  # position 0 depends on the last input
    assert Bidirectional(f, b, merge="concat", d_model=16)(x).shape == x.shape


@pytest.mark.parametrize("layer", [BiMamba(8, d_state=2), Bidirectional(Mamba1(8), Mamba1(8))])
def test_bidirectional_layers_refuse_streaming(layer):
    with pytest.raises(ConfigError, match="bidirectional"):
        layer(torch.randn(1, 3, 8), return_state=True)
    with pytest.raises(ConfigError, match="bidirectional"):
        layer.init_state(1)
    with pytest.raises(ConfigError, match="bidirectional"):
        layer.step(torch.randn(1, 8), None)


def test_mixer_model_keys_are_mamba_ssm():
    model = MixerModel(16, 2, vocab_size=10, ssm_cfg={"layer": "Mamba1", "d_state": 4}, d_intermediate=32)
    keys = set(model.state_dict())
    for i in range(2):
        assert {
            f"layers.{i}.norm.weight",
            f"layers.{i}.mixer.in_proj.weight",
            f"layers.{i}.mixer.A_log",
            f"layers.{i}.norm2.weight",
            f"layers.{i}.mlp.fc1.weight",
            f"layers.{i}.mlp.fc2.weight",
        } <= keys
    assert {"embedding.weight", "norm_f.weight"} <= keys
    assert not any("embedding" in k for k in MixerModel(16, 1, vocab_size=None).state_dict())


@pytest.mark.parametrize(
    "ssm_cfg", [{"layer": "Mamba1", "d_state": 4, "chunk_size": 4}, M2], ids=["m1", "m2"]
)
def test_mixer_model_streaming_and_step_equal_whole(ssm_cfg):
    torch.manual_seed(0)
    model = MixerModel(16, 2, vocab_size=12, ssm_cfg=ssm_cfg, residual_in_fp32=True)
    ids = torch.randint(0, 12, (2, 13))
    whole = model(ids)
    a, state = model(ids[:, :6], return_state=True)
    b, state = model(ids[:, 6:], state=state, return_state=True)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, **TOL)
    state, steps = model.init_state(2), []
    for t in range(13):
        h, state = model.step(state, input_ids=ids[:, t])
        steps.append(h)
    torch.testing.assert_close(torch.stack(steps, 1), whole, **TOL)


def test_make_mixer_cls_and_bidirectional_stack():
    assert isinstance(make_mixer_cls({"layer": "Mamba2", "headdim": 8})(16), Mamba2)
    assert isinstance(make_mixer_cls({"layer": "Mamba1"}, bidirectional=True)(16), BiMamba)
    assert isinstance(make_mixer_cls(M2, bidirectional=True)(16), Bidirectional)
    with pytest.raises(ConfigError, match="Mamba4"):
        make_mixer_cls({"layer": "Mamba4"})
    model = MixerModel(16, 2, ssm_cfg=M2, bidirectional=True)
    x = torch.randn(2, 6, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(model(inputs_embeds=x)[:, 0].sum(), x)
    assert grad[:, -1].abs().sum() > 0
    with pytest.raises(ConfigError):
        model(inputs_embeds=x, return_state=True)


def test_mixer_model_input_errors():
    model = MixerModel(16, 1, vocab_size=None)
    with pytest.raises(ConfigError, match="inputs_embeds"):
        model(input_ids=torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ConfigError, match="exactly one"):
        model()


def test_mixer_model_with_mamba3_streams():
    pytest.importorskip("mambajepa.ssm.mamba3")
    torch.manual_seed(0)
    cfg = {"layer": "Mamba3", "d_state": 8, "headdim": 8, "chunk_size": 4}
    model = MixerModel(16, 2, vocab_size=None, ssm_cfg=cfg)
    x = torch.randn(2, 9, 16)
    whole = model(inputs_embeds=x)
    a, state = model(inputs_embeds=x[:, :4], return_state=True)
    b, _ = model(inputs_embeds=x[:, 4:], state=state, return_state=True)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, **TOL)
    bi = MixerModel(16, 1, ssm_cfg=cfg, bidirectional=True)
    assert bi(inputs_embeds=x).shape == x.shape
