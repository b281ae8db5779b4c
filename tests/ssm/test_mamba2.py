"""Mamba-2: chunked SSD vs sequential reference, streaming vs whole, step vs forward, layout."""

import pytest
import torch
from scan_grads import scan_grads

from mambajepa.core.errors import ConfigError
from mambajepa.ssm import Mamba2
from mambajepa.ssm.ssd import ssd_chunked, ssd_ref

pytest.importorskip("hypothesis")  # a dev extra: without it this module is skipped
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TOL = {"rtol": 1e-4, "atol": 1e-5}


def _ssd_inputs(batch, length, groups, hg, headdim, n_state, with_init, seed):
    g = torch.Generator().manual_seed(seed)
    heads = groups * hg
    x = torch.randn(batch, length, heads, headdim, generator=g)
    dt = torch.rand(batch, length, heads, generator=g) * 0.5 + 0.01
    A = -torch.rand(heads, generator=g) * 4 - 0.1
    B = torch.randn(batch, length, groups, n_state, generator=g)
    C = torch.randn(batch, length, groups, n_state, generator=g)
    h0 = torch.randn(batch, heads, headdim, n_state, generator=g) if with_init else None
    return [x, dt, A, B, C, h0]


@settings(max_examples=20)
@given(
    batch=st.integers(1, 2),
    length=st.integers(1, 40),
    groups=st.integers(1, 2),
    hg=st.integers(1, 2),
    headdim=st.integers(1, 4),
    n_state=st.integers(1, 4),
    chunk=st.integers(1, 16),
    with_init=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_chunked_ssd_matches_ref_values_andscan_grads(
    batch, length, groups, hg, headdim, n_state, chunk, with_init, seed
):
    inputs = _ssd_inputs(batch, length, groups, hg, headdim, n_state, with_init, seed)
    y_r, h_r, g_r = scan_grads(ssd_ref, inputs, seed)
    y_c, h_c, g_c = scan_grads(lambda *a: ssd_chunked(*a, chunk_size=chunk), inputs, seed)
    torch.testing.assert_close(y_c, y_r, **TOL)
    torch.testing.assert_close(h_c, h_r, **TOL)
    for a, b in zip(g_c, g_r):
        torch.testing.assert_close(a, b, **TOL)


def test_chunked_ssd_is_finite_under_strong_decay():
    x, dt, A, B, C, _ = _ssd_inputs(1, 50, 1, 2, 3, 2, False, 0)
    A = A * 0 - 500.0
    leaves = [t.clone().requires_grad_(True) for t in (x, dt, A, B, C)]
    y_c, _ = ssd_chunked(*leaves, chunk_size=16)
    y_c.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in leaves)
    torch.testing.assert_close(y_c, ssd_ref(x, dt, A, B, C)[0], **TOL)


CONFIGS = {
    "default": {},
    "groups": {"ngroups": 2},
    "hdim_D_no_norm": {"D_has_hdim": True, "rmsnorm": False},
    "mlp_part": {"d_ssm": 16},  # 16 of 32 inner channels through the SSM, the rest a gated MLP
    "norm_before_gate_dt_limit": {"norm_before_gate": True, "dt_limit": (0.01, 0.2)},
}


def _layer(impl="chunked", seed=0, **kw):
    torch.manual_seed(seed)
    m = Mamba2(16, d_state=4, d_conv=3, expand=2, headdim=4, impl=impl, chunk_size=4, **kw)
    with torch.no_grad():
        m.D.add_(torch.randn_like(m.D))
        m.conv1d.bias.add_(torch.randn_like(m.conv1d.bias))
        if m.rmsnorm:
            m.norm.weight.add_(0.3 * torch.randn_like(m.norm.weight))
    return m


@pytest.mark.parametrize("cfg", list(CONFIGS), ids=list(CONFIGS))
@pytest.mark.parametrize("length", [1, 13])
def test_layer_chunked_matches_ref_for_every_parameter(cfg, length):
    ref, fast = _layer("ref", **CONFIGS[cfg]), _layer("chunked", **CONFIGS[cfg])
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(2, length, 16)
    xr, xf = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    yr, yf = ref(xr), fast(xf)
    torch.testing.assert_close(yf, yr, **TOL)
    g = torch.randn_like(yr)
    (yr * g).sum().backward()
    (yf * g).sum().backward()
    torch.testing.assert_close(xf.grad, xr.grad, **TOL)
    fast_params = dict(fast.named_parameters())
    for name, p in ref.named_parameters():
        torch.testing.assert_close(fast_params[name].grad, p.grad, **TOL, msg=name)


@settings(max_examples=10)
@given(cuts=st.lists(st.integers(1, 29), max_size=3, unique=True), cfg=st.sampled_from(list(CONFIGS)))
def test_streaming_pieces_equal_whole_with_gradients(cuts, cfg):
    m = _layer("chunked", **CONFIGS[cfg])
    x = torch.randn(2, 30, 16)
    xw, xs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y_whole, s_whole = m(xw, return_state=True)
    bounds = [0, *sorted(cuts), 30]
    state, pieces = None, []
    for a, b in zip(bounds[:-1], bounds[1:]):
        y, state = m(xs[:, a:b], state=state, return_state=True)
        pieces.append(y)
    y_pieces = torch.cat(pieces, dim=1)
    torch.testing.assert_close(y_pieces, y_whole, **TOL)
    torch.testing.assert_close(state.ssm, s_whole.ssm, **TOL)
    torch.testing.assert_close(state.conv, s_whole.conv, **TOL)
    g = torch.randn_like(y_whole)
    (y_whole * g).sum().backward()
    (y_pieces * g).sum().backward()
    torch.testing.assert_close(xs.grad, xw.grad, **TOL)


@pytest.mark.parametrize("cfg", list(CONFIGS), ids=list(CONFIGS))
def test_step_equals_forward(cfg):
    m = _layer("chunked", **CONFIGS[cfg])
    x = torch.randn(3, 9, 16)
    y, final = m(x, return_state=True)
    state = m.init_state(3)
    steps = []
    for t in range(9):
        y_t, state = m.step(x[:, t], state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), y, **TOL)
    torch.testing.assert_close(state.ssm, final.ssm, **TOL)
    torch.testing.assert_close(state.conv, final.conv, **TOL)


def test_parameter_layout_is_mamba_ssm():
    m = Mamba2(32, d_state=8, d_conv=4, expand=2, headdim=16, ngroups=2)  # E 64, H 4, conv 64 + 32
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (2 * 64 + 2 * 2 * 8 + 4, 32),
        "conv1d.weight": (96, 1, 4),
        "conv1d.bias": (96,),
        "dt_bias": (4,),
        "A_log": (4,),
        "D": (4,),
        "norm.weight": (64,),
        "out_proj.weight": (32, 64),
    }
    no_wd = {n for n, p in m.named_parameters() if getattr(p, "_no_weight_decay", False)}
    assert no_wd == {"A_log", "D", "dt_bias"}
    A = torch.exp(m.A_log)
    assert A.min() >= 1 and A.max() <= 16


def test_inconsistent_sizes_raise_config_error():
    with pytest.raises(ConfigError, match="headdim=24"):
        Mamba2(32, headdim=24)
    with pytest.raises(ConfigError, match="ngroups=3"):
        Mamba2(32, headdim=16, ngroups=3)


@pytest.mark.parametrize("group_size", [8, 24])
def test_gated_rms_norm_matches_module_values_andscan_grads(group_size):
    from mambajepa.ssm.mamba2 import gated_rms_norm
    from mambajepa.ssm.norm import RMSNormGated

    torch.manual_seed(0)
    norm = RMSNormGated(24, eps=1e-5, group_size=group_size, norm_before_gate=False)
    with torch.no_grad():
        norm.weight.add_(torch.randn_like(norm.weight))
    y = torch.randn(2, 5, 24, requires_grad=True)
    z = torch.randn(2, 5, 24, requires_grad=True)
    g = torch.randn(2, 5, 24)
    ours = gated_rms_norm(y, z, norm)
    grads = torch.autograd.grad((ours * g).sum(), (y, z, norm.weight))
    ref = norm(y, z)
    grads_ref = torch.autograd.grad((ref * g).sum(), (y, z, norm.weight))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    leaves = [t.detach().double().requires_grad_(True) for t in (y, z, norm.weight)]
    norm64 = type("Norm", (), {"weight": leaves[2], "group_size": group_size, "eps": 1e-5})
    assert torch.autograd.gradcheck(lambda a, b, w: gated_rms_norm(a, b, norm64), leaves)
