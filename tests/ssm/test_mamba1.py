"""Mamba-1: blocked scan vs sequential reference, streaming vs whole, step vs forward, layout."""

import pytest
import torch
from scan_grads import scan_grads

from mambajepa.core.errors import ShapeError
from mambajepa.ssm import Mamba1
from mambajepa.ssm.selective_scan import selective_scan_chunked, selective_scan_ref

pytest.importorskip("hypothesis")  # a dev extra: without it this module is skipped
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TOL = {"rtol": 1e-4, "atol": 1e-5}


def _scan_inputs(batch, length, channels, n_state, with_init, seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, length, channels, generator=g)
    delta = torch.rand(batch, length, channels, generator=g) * 0.5 + 0.01
    A = -torch.rand(channels, n_state, generator=g) * 4 - 0.1
    B = torch.randn(batch, length, n_state, generator=g)
    C = torch.randn(batch, length, n_state, generator=g)
    h0 = torch.randn(batch, channels, n_state, generator=g) if with_init else None
    return [u, delta, A, B, C, h0]


@settings(max_examples=20)
@given(
    batch=st.integers(1, 2),
    length=st.integers(1, 40),
    channels=st.integers(1, 5),
    n_state=st.integers(1, 4),
    chunk=st.integers(1, 9),
    with_init=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_chunked_scan_matches_ref_values_andscan_grads(
    batch, length, channels, n_state, chunk, with_init, seed
):
    inputs = _scan_inputs(batch, length, channels, n_state, with_init, seed)
    y_r, h_r, g_r = scan_grads(selective_scan_ref, inputs, seed)
    y_c, h_c, g_c = scan_grads(lambda *a: selective_scan_chunked(*a, chunk_size=chunk), inputs, seed)
    torch.testing.assert_close(y_c, y_r, **TOL)
    torch.testing.assert_close(h_c, h_r, **TOL)
    for a, b in zip(g_c, g_r):
        torch.testing.assert_close(a, b, **TOL)


def test_hand_written_backward_passes_gradcheck_in_float64():
    inputs = [t.double() if t is not None else None for t in _scan_inputs(2, 7, 3, 2, True, 5)]
    leaves = [t.requires_grad_(True) for t in inputs]
    assert torch.autograd.gradcheck(lambda *a: selective_scan_chunked(*a, chunk_size=3), leaves)


def test_chunked_scan_is_stable_under_strong_decay():
    """Decays of exp(-60) per step must not overflow the blocked form (no division by decays)."""
    u, delta, A, B, C, _ = _scan_inputs(1, 64, 3, 2, False, 0)
    A = A * 0 - 600.0
    delta = delta * 0 + 0.1
    y_r, _ = selective_scan_ref(u, delta, A, B, C)
    y_c, _ = selective_scan_chunked(u, delta, A, B, C, chunk_size=32)
    assert torch.isfinite(y_c).all()
    torch.testing.assert_close(y_c, y_r, **TOL)


def _layer(impl="chunked", seed=0, **kw):
    torch.manual_seed(seed)
    m = Mamba1(16, d_state=4, d_conv=3, expand=2, impl=impl, **kw)
    with torch.no_grad():  # move D and the conv bias off their trivial init values
        m.D.add_(torch.randn_like(m.D))
        m.conv1d.bias.add_(torch.randn_like(m.conv1d.bias))
    return m


@pytest.mark.parametrize("length", [1, 7, 23])
def test_layer_chunked_matches_ref_for_every_parameter(length):
    ref, fast = _layer("ref"), _layer("chunked", chunk_size=4)
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
@given(cuts=st.lists(st.integers(1, 29), max_size=3, unique=True), impl=st.sampled_from(["chunked", "ref"]))
def test_streaming_pieces_equal_whole_with_gradients(cuts, impl):
    m = _layer(impl, chunk_size=4)
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
    # gradients flow through the carried state into earlier pieces
    g = torch.randn_like(y_whole)
    (y_whole * g).sum().backward()
    (y_pieces * g).sum().backward()
    torch.testing.assert_close(xs.grad, xw.grad, **TOL)


def test_step_equals_forward():
    m = _layer("chunked", chunk_size=4)
    x = torch.randn(3, 11, 16)
    y, final = m(x, return_state=True)
    state = m.init_state(3)
    steps = []
    for t in range(11):
        y_t, state = m.step(x[:, t], state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), y, **TOL)
    torch.testing.assert_close(state.ssm, final.ssm, **TOL)
    torch.testing.assert_close(state.conv, final.conv, **TOL)


def test_parameter_layout_is_mamba_ssm():
    m = Mamba1(32, d_state=16, d_conv=4, expand=2)  # d_inner 64, dt_rank ceil(32/16) = 2
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (128, 32),
        "conv1d.weight": (64, 1, 4),
        "conv1d.bias": (64,),
        "x_proj.weight": (2 + 32, 64),
        "dt_proj.weight": (64, 2),
        "dt_proj.bias": (64,),
        "A_log": (64, 16),
        "D": (64,),
        "out_proj.weight": (32, 64),
    }
    no_wd = {n for n, p in m.named_parameters() if getattr(p, "_no_weight_decay", False)}
    assert no_wd == {"A_log", "D"}
    # S4D-real init and softplus(dt_bias) inside [dt_min, dt_max]
    torch.testing.assert_close(-torch.exp(m.A_log[0]), -torch.arange(1.0, 17.0))
    dt = torch.nn.functional.softplus(m.dt_proj.bias)
    assert dt.min() >= 1e-4 and dt.max() <= 0.1 + 1e-6


def test_bad_input_shape_is_named():
    m = Mamba1(16, d_state=4)
    with pytest.raises(ShapeError, match="d_model=16"):
        m(torch.randn(2, 5, 8))
    with pytest.raises(ShapeError, match=r"\(B, d_model\)"):
        m.step(torch.randn(2, 3, 16), m.init_state(2))
