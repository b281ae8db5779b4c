"""Mamba-3 layer: chunked vs reference (values and gradients), streaming, step, checkpoint layout."""

from __future__ import annotations

import math

import pytest
import torch

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.ssm.mamba3 import Mamba3, Mamba3State, heavy_tail

pytest.importorskip("hypothesis")  # a dev extra: without it this module is skipped
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

D_MODEL = 8  # d_inner 16, headdim 4 -> 4 heads


def make_layer(seed: int = 0, **kwargs) -> Mamba3:
    """A small layer whose every parameter is perturbed away from its symmetric init."""
    torch.manual_seed(seed)
    cfg = {"d_model": D_MODEL, "d_state": 8, "expand": 2, "headdim": 4, "chunk_size": 4, **kwargs}
    layer = Mamba3(**cfg)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name == "in_proj.weight":
                p.mul_(3.0)  # wider spread of dt, A, lambda and angles
            else:
                p.add_(0.3 * torch.randn_like(p))
    return layer


def random_state(layer: Mamba3, batch: int, seed: int) -> Mamba3State:
    gen = torch.Generator().manual_seed(seed)
    zero = layer.init_state(batch)
    return Mamba3State(
        *(
            torch.randn(t.shape, generator=gen) * (3.0 if name == "angle" else 0.5)
            for name, t in vars(zero).items()
        )
    )


def run(layer: Mamba3, impl: str, u: torch.Tensor, state: Mamba3State | None):
    """Output, final state, and gradients of a fixed random loss w.r.t. params, input and state."""
    layer.zero_grad()
    layer.impl = impl
    u = u.clone().requires_grad_(True)
    leaves = None
    if state is not None:
        leaves = [t.clone().requires_grad_(True) for t in vars(state).values()]
        state = Mamba3State(*leaves)
    y, new = layer(u, state=state, return_state=True)
    gen = torch.Generator().manual_seed(123)
    loss = (y * torch.randn(y.shape, generator=gen)).sum() + sum(
        (t.float() * torch.randn(t.shape, generator=gen)).sum() for t in vars(new).values()
    )
    loss.backward()
    grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
    grads["input"] = u.grad
    if leaves is not None:
        grads.update({f"state.{n}": t.grad for n, t in zip(vars(new), leaves)})
    return y.detach(), {k: v.detach() for k, v in vars(new).items()}, grads


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str, rtol: float = 3e-5) -> None:
    scale = max(a.abs().max().item(), b.abs().max().item(), 1e-3)
    torch.testing.assert_close(a, b, rtol=0.0, atol=rtol * scale, msg=lambda m: f"{what}: {m}")


def test_heavy_tail_matches_definition_and_has_finite_gradients():
    a = torch.tensor([-5.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 5.0], requires_grad=True)
    expected = torch.where(a >= 0, 1 + a, 1 / (1 - a))
    torch.testing.assert_close(heavy_tail(a), expected.detach())
    heavy_tail(a).sum().backward()
    assert torch.isfinite(a.grad).all()
    torch.testing.assert_close(a.grad[3], torch.tensor(1.0))


@settings(max_examples=60)
@given(
    batch=st.integers(1, 2),
    length=st.sampled_from([1, 2, 3, 4, 5, 7, 9, 13]),
    chunk=st.integers(1, 5),
    ngroups=st.sampled_from([1, 2, 4]),
    rank=st.sampled_from([0, 1, 2, 3]),  # 0 = SISO
    d_state=st.sampled_from([4, 6, 8]),
    rope_fraction=st.sampled_from([0.5, 1.0]),
    outproj_norm=st.booleans(),
    with_state=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_chunked_equals_ref_values_and_gradients(
    batch, length, chunk, ngroups, rank, d_state, rope_fraction, outproj_norm, with_state, seed
):
    layer = make_layer(
        seed,
        chunk_size=chunk,
        ngroups=ngroups,
        d_state=d_state,
        rope_fraction=rope_fraction,
        is_outproj_norm=outproj_norm,
        is_mimo=rank > 0,
        mimo_rank=max(rank, 1),
    )
    u = torch.randn(batch, length, D_MODEL, generator=torch.Generator().manual_seed(seed))
    state = random_state(layer, batch, seed + 1) if with_state else None
    y_ref, s_ref, g_ref = run(layer, "ref", u, state)
    y_chk, s_chk, g_chk = run(layer, "chunked", u, state)
    assert_close(y_chk, y_ref, "output")
    for name in s_ref:
        assert_close(s_chk[name], s_ref[name], f"final state {name}")
    assert g_ref.keys() == g_chk.keys()
    for name in g_ref:
        assert_close(g_chk[name], g_ref[name], f"grad {name}")


@pytest.mark.parametrize("mimo", [False, True])
def test_chunked_streaming_equals_whole_sequence(mimo):
    layer = make_layer(3, is_mimo=mimo, mimo_rank=2, chunk_size=4, impl="chunked")
    u = torch.randn(2, 19, D_MODEL, requires_grad=True)
    whole, whole_state = layer(u, return_state=True)
    pieces, state = [], None
    for start, stop in [(0, 5), (5, 6), (6, 14), (14, 19)]:  # not aligned to the chunk
        y, state = layer(u[:, start:stop], state=state, return_state=True)
        pieces.append(y)
    streamed = torch.cat(pieces, dim=1)
    assert_close(streamed, whole, "streamed output", rtol=1e-5)
    for name in vars(whole_state):
        assert_close(getattr(state, name), getattr(whole_state, name), f"state {name}", rtol=1e-5)
    # gradients flow through the carried state: same input gradient as the whole pass
    w = torch.randn_like(whole)
    (g_whole,) = torch.autograd.grad((whole * w).sum(), u)
    (g_stream,) = torch.autograd.grad((streamed * w).sum(), u)
    assert g_stream[:, :5].abs().sum() > 0
    assert_close(g_stream, g_whole, "input grad through carried state", rtol=1e-5)


@pytest.mark.parametrize("mimo, outproj_norm", [(False, False), (True, True)])
def test_step_equals_forward(mimo, outproj_norm):
    layer = make_layer(5, is_mimo=mimo, mimo_rank=3, is_outproj_norm=outproj_norm, impl="chunked")
    u = torch.randn(2, 11, D_MODEL)
    with torch.no_grad():
        y, final = layer(u, return_state=True)
        state = layer.init_state(2)
        steps = []
        for t in range(u.shape[1]):
            y_t, state = layer.step(u[:, t], state)
            steps.append(y_t)
    assert_close(torch.stack(steps, dim=1), y, "step outputs", rtol=1e-5)
    for name in vars(final):
        assert_close(getattr(state, name), getattr(final, name), f"state {name}", rtol=1e-5)


def test_chunk_size_does_not_change_the_result():
    u = torch.randn(2, 23, D_MODEL)
    outs = []
    for chunk in (1, 3, 8, 64):
        layer = make_layer(7, chunk_size=chunk, impl="chunked")
        with torch.no_grad():
            outs.append(layer(u))
    for out in outs[1:]:
        assert_close(out, outs[0], "chunk-size invariance", rtol=1e-5)


def test_many_chunks_match_ref_values_and_gradients():
    """Enough chunks that states pass between chunks by the loop, not the decay matrix."""
    from mambajepa.ssm.mamba3_scan import MATRIX_PASS_MAX_CHUNKS

    length, chunk = 150, 3
    assert length // chunk > MATRIX_PASS_MAX_CHUNKS
    layer = make_layer(11, chunk_size=chunk, d_state=16)
    u = torch.randn(1, length, D_MODEL)
    state = random_state(layer, 1, 12)
    y_ref, s_ref, g_ref = run(layer, "ref", u, state)
    y_chk, s_chk, g_chk = run(layer, "chunked", u, state)
    assert torch.isfinite(y_chk).all()
    assert_close(y_chk, y_ref, "long output")
    for name in s_ref:
        assert_close(s_chk[name], s_ref[name], f"final state {name}")
    for name in g_ref:
        assert_close(g_chk[name], g_ref[name], f"grad {name}")
    assert (s_chk["angle"] >= 0).all() and (s_chk["angle"] < 2 * math.pi).all()


def mamba_ssm_state_dict(d_model, d_state, expand, headdim, ngroups, rope_fraction, mimo_rank, outproj_norm):
    """The keys and shapes of ``mamba_ssm.modules.mamba3.Mamba3``, written from its parameter table."""
    d_inner = expand * d_model
    nheads = d_inner // headdim
    split = int(d_state * rope_fraction)
    angles = (split - split % 2) // 2
    rank = mimo_rank or 1
    shapes = {
        "dt_bias": (nheads,),
        "B_bias": (nheads, rank, d_state),
        "C_bias": (nheads, rank, d_state),
        "D": (nheads,),
        "in_proj.weight": (2 * d_inner + 2 * d_state * ngroups * rank + 3 * nheads + angles, d_model),
        "B_norm.weight": (d_state,),
        "C_norm.weight": (d_state,),
        "out_proj.weight": (d_model, d_inner),
    }
    if mimo_rank:
        shapes.update({f"mimo_{n}": (nheads, rank, headdim) for n in "xzo"})
    if outproj_norm:
        shapes["norm.weight"] = (d_inner,)
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(s, generator=gen) for k, s in shapes.items()}


@pytest.mark.parametrize(
    "cfg",
    [
        {"d_model": 32, "d_state": 16, "expand": 2, "headdim": 8, "ngroups": 1, "rope_fraction": 0.5},
        {"d_model": 24, "d_state": 10, "expand": 2, "headdim": 12, "ngroups": 2, "rope_fraction": 0.5},
        {"d_model": 32, "d_state": 16, "expand": 1, "headdim": 8, "ngroups": 2, "rope_fraction": 1.0},
    ],
)
@pytest.mark.parametrize("mimo_rank, outproj_norm", [(0, False), (0, True), (3, False), (2, True)])
def test_mamba_ssm_state_dict_loads_strict(cfg, mimo_rank, outproj_norm):
    sd = mamba_ssm_state_dict(**cfg, mimo_rank=mimo_rank, outproj_norm=outproj_norm)
    layer = Mamba3(**cfg, is_mimo=mimo_rank > 0, mimo_rank=mimo_rank or 4, is_outproj_norm=outproj_norm)
    layer.load_state_dict(sd, strict=True)
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == {
        k: tuple(v.shape) for k, v in sd.items()
    }
    for name, p in layer.state_dict().items():
        torch.testing.assert_close(p, sd[name])
    with torch.no_grad():
        assert torch.isfinite(layer(torch.randn(1, 5, cfg["d_model"]))).all()


def test_in_proj_split_order_is_z_x_B_C_dt_A_trap_angle():
    """Zeroing the ``z`` rows (the first d_inner) zeroes the gate silu(z)=0 and so the output."""
    layer = make_layer(2)
    with torch.no_grad():
        layer.in_proj.weight[: layer.d_inner] = 0.0
        assert layer(torch.randn(1, 4, D_MODEL)).abs().max() == 0.0
    layer = make_layer(2)
    sizes = layer.split_sizes
    assert sizes == [16, 16, 8, 8, 4, 4, 4, 2]
    # the angle rows (last S) only matter through the rotation: zero angles == rope with theta 0
    u = torch.randn(1, 6, D_MODEL)
    with torch.no_grad():
        layer.in_proj.weight[-sizes[-1] :] = 0.0
        y0 = layer(u)
        layer.in_proj.weight[-sizes[-1] :] = 1.0
        y1 = layer(u)
    assert (y0 - y1).abs().max() > 1e-4


def test_no_weight_decay_flags():
    layer = Mamba3(16, d_state=8, headdim=8, is_mimo=True, mimo_rank=2, is_outproj_norm=True)
    flagged = {n for n, p in layer.named_parameters() if getattr(p, "_no_weight_decay", False)}
    assert flagged == {"dt_bias", "D", "B_bias", "C_bias", "mimo_x", "mimo_z", "mimo_o"}


def test_dt_bias_init_is_inverse_softplus_of_dt_range():
    layer = Mamba3(64, d_state=8, headdim=8, dt_min=1e-3, dt_max=0.1)
    dt = torch.nn.functional.softplus(layer.dt_bias)
    assert (dt >= 1e-3 * 0.999).all() and (dt <= 0.1 * 1.001).all()


def test_errors_name_the_bad_value():
    with pytest.raises(ConfigError, match="headdim=48"):
        Mamba3(32, headdim=48)
    with pytest.raises(ConfigError, match="ngroups=3"):
        Mamba3(32, headdim=8, ngroups=3)
    with pytest.raises(ConfigError, match="rope_fraction=0.25"):
        Mamba3(32, headdim=8, rope_fraction=0.25)
    layer = Mamba3(16, d_state=8, headdim=8)
    with pytest.raises(ShapeError, match=r"\(2, 3, 15\)"):
        layer(torch.randn(2, 3, 15))
    with pytest.raises(ShapeError, match="Mamba3.step"):
        layer.step(torch.randn(2, 3, 16), layer.init_state(2))
    bad = layer.init_state(3)
    with pytest.raises(ShapeError, match="angle"):
        layer(torch.randn(2, 3, 16), state=bad)


def test_impl_env_var_forces_reference(monkeypatch):
    import mambajepa.ssm.mamba3 as module

    calls = []
    real = module.mamba3_scan_ref
    monkeypatch.setattr(module, "mamba3_scan_ref", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setenv("MAMBAJEPA_SSM_IMPL", "ref")
    layer = make_layer(1, impl="chunked")
    with torch.no_grad():
        layer(torch.randn(1, 3, D_MODEL))
    assert calls == [1]


def test_bfloat16_layer_keeps_fp32_state_and_tracks_fp32_output():
    layer = make_layer(4, is_mimo=True, mimo_rank=2, is_outproj_norm=True, impl="chunked")
    low = Mamba3(
        **{k: getattr(layer, k) for k in ("d_model", "d_state", "expand", "headdim")},
        is_mimo=True,
        mimo_rank=2,
        is_outproj_norm=True,
        chunk_size=4,
        dtype=torch.bfloat16,
    )
    low.load_state_dict(layer.state_dict())
    u = torch.randn(2, 9, D_MODEL)
    with torch.no_grad():
        y, _ = layer(u, return_state=True)
        y_low, state = low(u.bfloat16(), return_state=True)
        y_step, _ = low.step(u[:, 0].bfloat16(), low.init_state(2))
    assert y_low.dtype == y_step.dtype == torch.bfloat16
    assert state.ssm.dtype == state.angle.dtype == state.k_prev.dtype == torch.float32
    assert state.v_prev.dtype == torch.bfloat16
    assert (y_low.float() - y).abs().max() < 0.05 * y.abs().max()
