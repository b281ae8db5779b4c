"""SSM layers compute in ``promote(input dtype, fp32)``: fp64 layers agree to fp64 precision.

Chunked vs reference scans (values and gradients), the Mamba-3 layer against the spec equations
run position by position, streaming and ``step`` against the whole-sequence pass, and the dtype
rules for low-precision inputs (fp32 compute and state, output in the input's dtype).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.ssm import Block, Mamba1, Mamba2, MixerModel, RMSNorm, dispatch
from mambajepa.ssm.dispatch import ENV_VAR
from mambajepa.ssm.mamba3 import Mamba3, Mamba3State

D_MODEL = 8
TOL = 1e-12  # relative to the largest magnitude of the compared tensors

MAMBA2_CONFIGS = {
    "gated_norm": {"ngroups": 2},
    "mlp_part_norm_before_gate": {"d_ssm": 8, "norm_before_gate": True, "D_has_hdim": True},
    "no_norm_dt_limit": {"rmsnorm": False, "dt_limit": (0.01, 0.5)},
}
MAMBA3_CONFIGS = {
    "siso": {},
    "siso_groups_full_rope": {"ngroups": 2, "rope_fraction": 1.0},
    "mimo": {"is_mimo": True, "mimo_rank": 2},
    "mimo_outproj_norm": {"is_mimo": True, "mimo_rank": 3, "is_outproj_norm": True, "ngroups": 2},
}


def perturbed(layer: nn.Module, seed: int) -> nn.Module:
    """``layer`` in fp64 with every parameter moved off its (often symmetric) init."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("in_proj.weight"):
                p.mul_(3.0)  # a wider spread of step sizes, decays and angles
            else:
                p.add_(0.3 * noise)
    return layer.double()


def mamba1(seed: int = 0) -> Mamba1:
    torch.manual_seed(seed)
    return perturbed(Mamba1(D_MODEL, d_state=4, d_conv=3, chunk_size=3), seed)


def mamba2(seed: int = 0, **kwargs) -> Mamba2:
    torch.manual_seed(seed)
    return perturbed(Mamba2(D_MODEL, d_state=4, d_conv=3, headdim=4, chunk_size=4, **kwargs), seed)


def mamba3(seed: int = 0, **kwargs) -> Mamba3:
    torch.manual_seed(seed)
    return perturbed(Mamba3(D_MODEL, d_state=8, headdim=4, chunk_size=4, **kwargs), seed)


LAYERS = {
    "mamba1": mamba1,
    **{f"mamba2_{name}": (lambda cfg=cfg: mamba2(**cfg)) for name, cfg in MAMBA2_CONFIGS.items()},
    **{f"mamba3_{name}": (lambda cfg=cfg: mamba3(**cfg)) for name, cfg in MAMBA3_CONFIGS.items()},
}


def random_state(layer: nn.Module, batch: int, seed: int):
    """A state of the layer's own type and dtypes, filled with random values."""
    gen = torch.Generator().manual_seed(seed)
    zero = layer.init_state(batch)
    fields = {name: torch.randn(t.shape, generator=gen, dtype=t.dtype) for name, t in vars(zero).items()}
    return type(zero)(**fields)


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str, tol: float = TOL) -> None:
    assert a.dtype == b.dtype == torch.float64, f"{what}: dtypes {a.dtype}, {b.dtype}"
    scale = max(a.abs().max().item(), b.abs().max().item(), 1e-3)
    torch.testing.assert_close(a, b, rtol=0.0, atol=tol * scale, msg=lambda m: f"{what}: {m}")


def outputs_and_grads(monkeypatch, layer: nn.Module, impl: str, u: torch.Tensor, state):
    """Output and final state of ``layer`` forced to ``impl``, and the gradients of a fixed random
    loss of both w.r.t. the input, the initial state and every parameter."""
    monkeypatch.setenv(ENV_VAR, impl)
    layer.zero_grad()
    u = u.clone().requires_grad_(True)
    leaves = {name: t.clone().requires_grad_(True) for name, t in vars(state).items()}
    y, final = layer(u, state=type(state)(**leaves), return_state=True)
    values = {"output": y, **{f"state.{name}": t for name, t in vars(final).items()}}
    gen = torch.Generator().manual_seed(99)
    sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in values.values()).backward()
    grads = {"grad input": u.grad, **{f"grad state.{n}": t.grad for n, t in leaves.items()}}
    grads.update({f"grad {n}": p.grad.clone() for n, p in layer.named_parameters()})
    return {k: v.detach() for k, v in values.items()}, grads


@pytest.mark.parametrize("make", list(LAYERS.values()), ids=list(LAYERS))
def test_float64_chunked_equals_ref_values_and_gradients(monkeypatch, make):
    layer = make()
    u = torch.randn(2, 11, D_MODEL, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    state = random_state(layer, 2, seed=2)
    ref_values, ref_grads = outputs_and_grads(monkeypatch, layer, "ref", u, state)
    chk_values, chk_grads = outputs_and_grads(monkeypatch, layer, "chunked", u, state)
    for name in ref_values:
        assert_close(chk_values[name], ref_values[name], name)
    assert chk_grads.keys() == ref_grads.keys()
    for name in ref_grads:
        assert ref_grads[name] is not None, name
        assert_close(chk_grads[name], ref_grads[name], name)


def spec_mamba3(layer: Mamba3, u: torch.Tensor, state: Mamba3State) -> tuple[torch.Tensor, torch.Tensor]:
    """The Mamba-3 equations of ``specs/mamba3.md`` run position by position, sharing no code with
    the layer: complex multiplication for the rotation, no wrapping of the angle.

    Returns:
        the output ``(B, L, D)`` and the final SSM state ``(B, H, P, N)``.
    """
    H, P, N, G, R = layer.nheads, layer.headdim, layer.d_state, layer.ngroups, layer.mimo_rank
    S, batch = layer.num_rope_angles, u.shape[0]
    z, x, b, c, dd_dt, dd_a, trap, ang = (u @ layer.in_proj.weight.T).split(layer.split_sizes, dim=-1)
    group = torch.arange(H) // (H // G)  # the B/C group each head reads
    ones = torch.ones(1, H, P, dtype=u.dtype)
    mimo_x, mimo_z, mimo_o = (
        (getattr(layer, name).transpose(0, 1) if layer.is_mimo else ones)
        for name in ("mimo_x", "mimo_z", "mimo_o")
    )  # (R, H, P)

    def rms(v: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return v / torch.sqrt(v.pow(2).mean(-1, keepdim=True) + 1e-5) * weight

    def rot(theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # theta (B, H, S), v (B, R, H, N)
        pairs = torch.view_as_complex(v[..., : 2 * S].unflatten(-1, (S, 2)).contiguous())
        turned = pairs * torch.polar(torch.ones_like(theta), theta)[:, None]  # e^{i theta}
        return torch.cat([torch.view_as_real(turned).flatten(-2), v[..., 2 * S :]], dim=-1)

    def key(proj: torch.Tensor, norm: RMSNorm, bias: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        normed = rms(proj.view(batch, R, G, N), norm.weight)[:, :, group]  # (B, R, H, N)
        return rot(theta, normed + bias.transpose(0, 1))

    theta, h = state.angle.clone(), state.ssm.clone()
    vk_prev = torch.einsum("brhp,brhn->bhpn", state.v_prev[:, None] * mimo_x, state.k_prev)
    outs = []
    for t in range(u.shape[1]):
        a = dd_a[:, t]
        A = (-torch.where(a >= 0, 1 + a, 1 / (1 - a))).clamp(max=-layer.A_floor)  # (B, H)
        dt = F.softplus(dd_dt[:, t] + layer.dt_bias)
        lam = torch.sigmoid(trap[:, t])
        alpha = torch.exp(dt * A)
        beta, gamma = (1 - lam) * dt * alpha, lam * dt
        theta = theta + dt[..., None] * math.pi * torch.tanh(ang[:, t])[:, None, :]  # (B, H, S)
        k = key(b[:, t], layer.B_norm, layer.B_bias, theta)
        q = key(c[:, t], layer.C_norm, layer.C_bias, theta)
        v = x[:, t].view(batch, 1, H, P) * mimo_x  # (B, R, H, P)
        vk = torch.einsum("brhp,brhn->bhpn", v, k)
        h = alpha[..., None, None] * h + beta[..., None, None] * vk_prev + gamma[..., None, None] * vk
        vk_prev = vk
        y = torch.einsum("bhpn,brhn->brhp", h, q) + layer.D[:, None] * v  # (B, R, H, P)
        gate = F.silu(z[:, t].view(batch, 1, H, P) * mimo_z)
        y = rms(y, layer.norm.weight.view(H, P)) * gate if layer.is_outproj_norm else y * gate
        outs.append((y * mimo_o).sum(1).flatten(-2) @ layer.out_proj.weight.T)  # (B, D)
    return torch.stack(outs, dim=1), h


@pytest.mark.parametrize("impl", ["ref", "chunked"])
@pytest.mark.parametrize("cfg", list(MAMBA3_CONFIGS.values()), ids=list(MAMBA3_CONFIGS))
def test_float64_mamba3_equals_spec_recurrence(monkeypatch, cfg, impl):
    monkeypatch.setenv(ENV_VAR, impl)
    layer = mamba3(seed=3, **cfg)
    u = torch.randn(2, 13, D_MODEL, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    state = random_state(layer, 2, seed=5)
    with torch.no_grad():
        y, final = layer(u, state=state, return_state=True)
        y_spec, h_spec = spec_mamba3(layer, u, state)
    assert_close(y, y_spec, "output")
    assert_close(final.ssm, h_spec, "final ssm state")


def causal_conv_silu(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """``silu`` of the depthwise causal convolution of ``x (B, L, Ch)``, as a sum over the taps."""
    k, length = conv.weight.shape[-1], x.shape[1]
    padded = F.pad(x, (0, 0, k - 1, 0))  # (B, K - 1 + L, Ch)
    out = sum(padded[:, j : j + length] * conv.weight[:, 0, j] for j in range(k)) + conv.bias
    return F.silu(out)


def spec_mamba1(layer: Mamba1, u: torch.Tensor) -> torch.Tensor:
    """Mamba-1 (conv, selective scan, ``D`` skip, ``silu(z)`` gate) position by position."""
    x, z = (u @ layer.in_proj.weight.T).chunk(2, dim=-1)  # (B, L, E)
    x = causal_conv_silu(x, layer.conv1d)
    dt, B, C = (x @ layer.x_proj.weight.T).split([layer.dt_rank, layer.d_state, layer.d_state], dim=-1)
    delta = F.softplus(dt @ layer.dt_proj.weight.T + layer.dt_proj.bias)  # (B, L, E)
    A = -torch.exp(layer.A_log)  # (E, N)
    h, ys = torch.zeros(u.shape[0], layer.d_inner, layer.d_state, dtype=u.dtype), []
    for t in range(u.shape[1]):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * x[:, t])[..., None] * B[:, t, None]
        ys.append((h * C[:, t, None]).sum(-1) + layer.D * x[:, t])  # (B, E)
    return (torch.stack(ys, dim=1) * F.silu(z)) @ layer.out_proj.weight.T


def spec_mamba2(layer: Mamba2, u: torch.Tensor) -> torch.Tensor:
    """Mamba-2 (conv, SSD recurrence, ``D`` skip, ``rmsnorm(y * silu(z))``) position by position."""
    H, P, N, G = layer.nheads, layer.headdim, layer.d_state, layer.ngroups
    assert layer.d_mlp == 0 and layer.rmsnorm and not layer.norm_before_gate and not layer.D_has_hdim
    z, xBC, dt = (u @ layer.in_proj.weight.T).split([layer.d_ssm, layer.conv_dim, H], dim=-1)
    x, B, C = causal_conv_silu(xBC, layer.conv1d).split([layer.d_ssm, G * N, G * N], dim=-1)
    group = torch.arange(H) // (H // G)  # the B/C group each head reads
    B, C = B.unflatten(-1, (G, N))[:, :, group], C.unflatten(-1, (G, N))[:, :, group]  # (B, L, H, N)
    x = x.unflatten(-1, (H, P))  # (B, L, H, P)
    dt = F.softplus(dt + layer.dt_bias)  # (B, L, H)
    A = -torch.exp(layer.A_log)  # (H,)
    h, ys = torch.zeros(u.shape[0], H, P, N, dtype=u.dtype), []
    for t in range(u.shape[1]):
        h = (
            torch.exp(dt[:, t] * A)[..., None, None] * h
            + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, :, None]
        )
        ys.append(torch.einsum("bhpn,bhn->bhp", h, C[:, t]) + layer.D[:, None] * x[:, t])
    gated = (torch.stack(ys, dim=1).flatten(-2) * F.silu(z)).unflatten(-1, (G, -1))  # (B, L, G, S/G)
    normed = gated / torch.sqrt(gated.pow(2).mean(-1, keepdim=True) + layer.norm.eps)
    return (normed.flatten(-2) * layer.norm.weight) @ layer.out_proj.weight.T


@pytest.mark.parametrize("impl", ["ref", "chunked"])
@pytest.mark.parametrize(
    "make, spec", [(mamba1, spec_mamba1), (lambda: mamba2(ngroups=2), spec_mamba2)], ids=["mamba1", "mamba2"]
)
def test_float64_mamba1_mamba2_equal_spec_recurrence(monkeypatch, make, spec, impl):
    monkeypatch.setenv(ENV_VAR, impl)
    layer = make()
    u = torch.randn(2, 13, D_MODEL, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        assert_close(layer(u), spec(layer, u), "output")


@pytest.mark.parametrize("cfg", list(MAMBA3_CONFIGS.values()), ids=list(MAMBA3_CONFIGS))
def test_float64_mamba3_streaming_and_step_equal_whole(monkeypatch, cfg):
    monkeypatch.setenv(ENV_VAR, "chunked")
    layer = mamba3(seed=6, **cfg)
    u = torch.randn(2, 14, D_MODEL, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    u.requires_grad_(True)
    whole, whole_state = layer(u, return_state=True)
    pieces, state = [], None
    for start, stop in [(0, 5), (5, 6), (6, 11), (11, 14)]:  # not aligned to the chunk
        y, state = layer(u[:, start:stop], state=state, return_state=True)
        pieces.append(y)
    streamed = torch.cat(pieces, dim=1)
    assert_close(streamed, whole, "streamed output")
    for name, t in vars(whole_state).items():
        assert_close(getattr(state, name), t, f"streamed state {name}")
    w = torch.randn(whole.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    (g_whole,) = torch.autograd.grad((whole * w).sum(), u)
    (g_stream,) = torch.autograd.grad((streamed * w).sum(), u)
    assert_close(g_stream, g_whole, "input grad through the carried state")
    with torch.no_grad():
        state, steps = layer.init_state(2), []
        for t in range(u.shape[1]):
            y_t, state = layer.step(u[:, t], state)
            steps.append(y_t)
    assert_close(torch.stack(steps, dim=1), whole.detach(), "step outputs")
    for name, t in vars(whole_state).items():
        assert_close(getattr(state, name), t.detach(), f"step state {name}")


@pytest.mark.parametrize("make", [mamba1, lambda: mamba2(ngroups=2)], ids=["mamba1", "mamba2"])
def test_float64_mamba1_mamba2_step_equals_whole(monkeypatch, make):
    monkeypatch.setenv(ENV_VAR, "chunked")
    layer = make()
    u = torch.randn(2, 9, D_MODEL, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        whole, final = layer(u, return_state=True)
        state, steps = layer.init_state(2), []
        for t in range(u.shape[1]):
            y_t, state = layer.step(u[:, t], state)
            steps.append(y_t)
    assert_close(torch.stack(steps, dim=1), whole, "step outputs")
    for name, t in vars(final).items():
        assert_close(getattr(state, name), t, f"step state {name}")


def test_float64_mixer_model_step_equals_whole():
    torch.manual_seed(10)
    cfg = {"layer": "Mamba3", "d_state": 8, "headdim": 4, "chunk_size": 4}
    model = MixerModel(D_MODEL, 2, vocab_size=None, ssm_cfg=cfg, d_intermediate=16, residual_in_fp32=True)
    model = perturbed(model, 10)
    x = torch.randn(2, 7, D_MODEL, dtype=torch.float64)
    with torch.no_grad():
        whole = model(inputs_embeds=x)
        state, steps = model.init_state(2), []
        for t in range(x.shape[1]):
            h, state = model.step(state, inputs_embeds=x[:, t])
            steps.append(h)
    assert_close(torch.stack(steps, dim=1), whole, "step outputs")


@pytest.mark.parametrize(
    "dtype, compute",
    [(torch.bfloat16, torch.float32), (torch.float32, torch.float32), (torch.float64, torch.float64)],
)
def test_block_residual_is_at_least_fp32(dtype, compute):
    block = Block(D_MODEL, lambda d: nn.Linear(d, d, dtype=dtype), norm_cls=RMSNorm, residual_in_fp32=True)
    block.norm.to(dtype)
    hidden, residual = block(torch.randn(2, 3, D_MODEL, dtype=dtype))
    assert hidden.dtype == dtype
    assert residual.dtype == compute


@pytest.mark.parametrize("name", ["mamba1", "mamba2_gated_norm", "mamba3_mimo_outproj_norm"])
@pytest.mark.parametrize(
    "dtype, compute",
    [(torch.bfloat16, torch.float32), (torch.float32, torch.float32), (torch.float64, torch.float64)],
)
def test_output_in_input_dtype_state_in_compute_dtype(monkeypatch, name, dtype, compute):
    """Low-precision layers still run their scans in fp32 (the state is the scan's accumulator)
    and track the fp32 layer; fp64 layers stay in fp64."""
    monkeypatch.setenv(ENV_VAR, "chunked")
    layer = LAYERS[name]().float()
    u = torch.randn(2, 9, D_MODEL, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        y32 = layer(u)
        layer.to(dtype)
        y, state = layer(u.to(dtype), return_state=True)
        y_t, _ = layer.step(u[:, 0].to(dtype), layer.init_state(2))
    assert y.dtype == y_t.dtype == dtype
    assert state.ssm.dtype == compute
    if isinstance(layer, Mamba3):
        assert state.angle.dtype == state.k_prev.dtype == compute
    assert (y.float() - y32).abs().max() <= 0.05 * y32.abs().max()


def test_float64_never_resolves_to_the_fused_kernels(monkeypatch):
    """The CUDA kernels take no fp64 inputs: fp64 layers run the chunked form, with one warning
    when ``fused`` was asked for."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(dispatch, "_warned", set())
    monkeypatch.setattr(dispatch, "kernel_available", lambda module: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dispatch.resolve_impl("auto", "cuda", torch.bfloat16) == "fused"
    assert dispatch.resolve_impl("auto", "cuda", torch.float32) == "fused"
    assert dispatch.resolve_impl("auto", "cuda", torch.float64) == "chunked"
    with pytest.warns(RuntimeWarning, match="float64"):
        assert dispatch.resolve_impl("fused", "cuda", torch.float64) == "chunked"
