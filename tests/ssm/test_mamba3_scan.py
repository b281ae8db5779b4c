"""Mamba-3 scans against independent references: Mamba-2's exponential-Euler scan, closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from mambajepa.ssm.mamba3_scan import ScanState, mamba3_scan_chunked, mamba3_scan_ref, rotate_pairs

SCANS = {"ref": mamba3_scan_ref, "chunked": lambda *a: mamba3_scan_chunked(*a, chunk_size=4)}


def zero_state(batch, rank, heads, headdim, d_state, angles) -> ScanState:
    return ScanState(
        torch.zeros(batch, heads, angles),
        torch.zeros(batch, heads, headdim, d_state),
        torch.zeros(batch, rank, heads, d_state),
        torch.zeros(batch, rank, heads, headdim),
    )


def mamba2_euler_scan(q, k, v, dt, A):
    """Mamba-2 recurrence ``h_t = exp(dt_t A_t) h_{t-1} + dt_t v_t k_t^T``, ``y_t = h_t q_t`` (R = 1)."""
    batch, length, heads, d_state = k.shape
    h = torch.zeros(batch, heads, v.shape[-1], d_state)
    ys = []
    for t in range(length):
        h = torch.exp(dt[:, t] * A[:, t])[..., None, None] * h + dt[:, t, :, None, None] * (
            v[:, t, :, :, None] * k[:, t, :, None, :]
        )
        ys.append((h * q[:, t, :, None, :]).sum(-1))
    return torch.stack(ys, dim=1)  # (B, L, H, P)


@pytest.mark.parametrize("impl", list(SCANS))
def test_lambda_one_without_rotation_is_mamba2_exponential_euler(impl):
    torch.manual_seed(0)
    B, L, H, P, N, S = 2, 10, 3, 4, 6, 3
    q, k = torch.randn(B, L, H, N), torch.randn(B, L, H, N)
    v = torch.randn(B, L, H, P)
    dt = torch.rand(B, L, H) + 0.05
    A = -torch.rand(B, L, H) * 2 - 1e-4
    lam = torch.ones(B, L, H)
    y, _ = SCANS[impl](
        q[:, :, None],
        k[:, :, None],
        v[:, :, None],
        dt * A,
        dt,
        lam,
        torch.zeros(B, L, H, S),
        zero_state(B, 1, H, P, N, S),
    )
    torch.testing.assert_close(y[:, :, 0], mamba2_euler_scan(q, k, v, dt, A), rtol=1e-5, atol=1e-5)
    # and lambda < 1 is a different scan: the test would notice a dropped trapezoid term
    y_half, _ = SCANS[impl](
        q[:, :, None],
        k[:, :, None],
        v[:, :, None],
        dt * A,
        dt,
        0.5 * lam,
        torch.zeros(B, L, H, S),
        zero_state(B, 1, H, P, N, S),
    )
    assert (y_half[:, :, 0] - mamba2_euler_scan(q, k, v, dt, A)).abs().max() > 1e-2


@pytest.mark.parametrize("impl", list(SCANS))
def test_trapezoid_closed_form_two_steps(impl):
    """h_1 = a_1 (g_0 v_0 k_0) + b_1 v_0 k_0 + g_1 v_1 k_1 with the spec's alpha, beta, gamma."""
    torch.manual_seed(1)
    N, P = 4, 2
    q, k = torch.randn(1, 2, 1, 1, N), torch.randn(1, 2, 1, 1, N)
    v = torch.randn(1, 2, 1, 1, P)
    dt, lam = torch.tensor([[[0.7], [0.4]]]), torch.tensor([[[0.3], [0.8]]])
    adt = torch.tensor([[[-0.2], [-0.9]]])
    y, final = SCANS[impl](q, k, v, adt, dt, lam, torch.zeros(1, 2, 1, 1), zero_state(1, 1, 1, P, N, 1))
    alpha = adt.exp()
    beta, gamma = (1 - lam) * dt * alpha, lam * dt
    outer = [v[0, t, 0, 0][:, None] * k[0, t, 0, 0][None, :] for t in range(2)]
    h0 = gamma[0, 0, 0] * outer[0]
    h1 = alpha[0, 1, 0] * h0 + beta[0, 1, 0] * outer[0] + gamma[0, 1, 0] * outer[1]
    torch.testing.assert_close(final.ssm[0, 0], h1)
    torch.testing.assert_close(y[0, 1, 0, 0], h1 @ q[0, 1, 0, 0])


@pytest.mark.parametrize("impl", list(SCANS))
def test_rotation_is_cumulative(impl):
    """With unit keys/queries, no decay and lambda = 1: y_t = sum_s dt cos(theta_t - theta_s).

    A per-step rotation (rotating k_s and q_t by their own increments only) would give
    cos(d_t - d_s) instead; the increments are chosen so both differ clearly.
    """
    d = torch.tensor([0.3, 0.5, 0.7, -0.4])
    L = d.numel()
    e1 = torch.tensor([1.0, 0.0])
    q = k = e1.expand(1, L, 1, 1, 2)
    v = torch.ones(1, L, 1, 1, 1)
    zeros, ones = torch.zeros(1, L, 1), torch.ones(1, L, 1)
    y, final = SCANS[impl](q, k, v, zeros, ones, ones, d.view(1, L, 1, 1), zero_state(1, 1, 1, 1, 2, 1))
    theta = d.cumsum(0)
    cumulative = torch.stack([torch.cos(theta[t] - theta[: t + 1]).sum() for t in range(L)])
    per_step = torch.stack([torch.cos(d[t] - d[: t + 1]).sum() for t in range(L)])
    torch.testing.assert_close(y.flatten(), cumulative)
    assert (cumulative - per_step).abs().max() > 0.1
    torch.testing.assert_close(final.angle.flatten(), theta[-1:] % (2 * math.pi))


@pytest.mark.parametrize("width", [6, 7])
def test_rotation_passes_the_unrotated_tail_through(width):
    v = torch.arange(1.0, width + 1.0)  # S = 2: entries from 4 on are untouched
    angle = torch.tensor([math.pi / 2, math.pi])
    out = rotate_pairs(v, angle.cos(), angle.sin())
    expected = torch.cat((torch.tensor([-2.0, 1.0, -3.0, -4.0]), v[4:]))
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("impl", list(SCANS))
def test_carried_key_and_value_enter_with_beta(impl):
    """One step from a state with only (k_prev, v_prev) set: h_0 = beta_0 v_prev k_prev^T."""
    N, P = 4, 3
    k_prev, v_prev = torch.randn(1, 1, 1, N), torch.randn(1, 1, 1, P)
    state = zero_state(1, 1, 1, P, N, 1)._replace(k_prev=k_prev, v_prev=v_prev)
    dt, lam, adt = torch.full((1, 1, 1), 0.6), torch.full((1, 1, 1), 0.25), torch.full((1, 1, 1), -0.5)
    _, final = SCANS[impl](
        torch.zeros(1, 1, 1, 1, N),
        torch.zeros(1, 1, 1, 1, N),
        torch.zeros(1, 1, 1, 1, P),
        adt,
        dt,
        lam,
        torch.zeros(1, 1, 1, 1),
        state,
    )
    beta = (1 - 0.25) * 0.6 * math.exp(-0.5)
    torch.testing.assert_close(final.ssm[0, 0], beta * v_prev[0, 0, 0][:, None] * k_prev[0, 0, 0][None, :])


def test_chunk_state_passing_matrix_equals_loop():
    from mambajepa.ssm.mamba3_scan import pass_chunk_states

    torch.manual_seed(2)
    h0, states = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 6, 4, 5)
    decay = -torch.rand(2, 3, 6) * 3
    by_matrix, final_matrix = pass_chunk_states(h0, states, decay, matrix=True)
    by_loop, final_loop = pass_chunk_states(h0, states, decay, matrix=False)
    torch.testing.assert_close(by_matrix, by_loop)
    torch.testing.assert_close(final_matrix, final_loop)
    torch.testing.assert_close(by_loop[:, :, 0], h0)
    torch.testing.assert_close(
        by_loop[:, :, 2], decay[:, :, 1, None, None].exp() * by_loop[:, :, 1] + states[:, :, 1]
    )
    torch.testing.assert_close(
        final_loop, decay[:, :, 5, None, None].exp() * by_loop[:, :, 5] + states[:, :, 5]
    )


def rotate_pairs_autograd(v, cos, sin):
    """Plain-autograd rotation: the independent reference for the hand-written backward."""
    n = 2 * cos.shape[-1]
    v0, v1 = v[..., 0:n:2], v[..., 1:n:2]
    rotated = torch.stack((v0 * cos - v1 * sin, v0 * sin + v1 * cos), dim=-1).flatten(-2)
    batch = rotated.shape[:-1]  # v and the angles broadcast together
    return torch.cat((rotated, v[..., n:].expand(*batch, -1)), dim=-1)


@pytest.mark.parametrize("width, angles", [(8, 2), (8, 4), (7, 3)])
def test_rotation_backward_matches_autograd_and_gradcheck(width, angles):
    gen = torch.Generator().manual_seed(width + angles)
    # v broadcasts over heads (dim 3), the angles over ranks (dim 2)
    v = torch.randn(2, 5, 3, 1, width, dtype=torch.float64, generator=gen, requires_grad=True)
    theta = torch.randn(2, 5, 1, 4, angles, dtype=torch.float64, generator=gen)
    cos, sin = theta.cos().requires_grad_(True), theta.sin().requires_grad_(True)
    torch.autograd.gradcheck(rotate_pairs, (v, cos, sin))
    out = rotate_pairs(v, cos, sin)
    ref = rotate_pairs_autograd(v, cos, sin)
    torch.testing.assert_close(out, ref)
    w = torch.randn(out.shape, dtype=torch.float64, generator=gen)
    for got, want in zip(
        torch.autograd.grad((out * w).sum(), (v, cos, sin)),
        torch.autograd.grad((ref * w).sum(), (v, cos, sin)),
    ):
        torch.testing.assert_close(got, want)


def test_intra_chunk_weights_match_autograd_formula_and_gradcheck():
    from mambajepa.ssm.mamba3_scan import intra_chunk_weights

    g = torch.Generator().manual_seed(3)
    cum = -torch.rand(2, 3, 6, generator=g, dtype=torch.float64).cumsum(-1)
    scale = torch.rand(2, 3, 6, generator=g, dtype=torch.float64)
    gamma = torch.rand(2, 3, 6, generator=g, dtype=torch.float64)
    leaves = [t.requires_grad_(True) for t in (cum, scale, gamma)]
    strict = torch.ones(6, 6, dtype=torch.bool).tril(-1)
    seg = (cum[..., :, None] - cum[..., None, :]).masked_fill(~strict, float("-inf"))
    expected = seg.exp() * scale[..., None, :] + torch.diag_embed(gamma)
    torch.testing.assert_close(intra_chunk_weights(*leaves), expected)
    assert torch.autograd.gradcheck(intra_chunk_weights, leaves)
