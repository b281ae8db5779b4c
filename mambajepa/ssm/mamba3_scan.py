"""Mamba-3 scans: the sequential reference and the chunked (SSD-style) parallel form.

Both compute, per head, the exponential-trapezoidal recurrence with a cumulative rotation of
keys and queries (``specs/mamba3.md``)::

    theta_t = theta_{t-1} + dtheta_t
    k_t, q_t = rot(theta_t, k_t), rot(theta_t, q_t)
    h_t = alpha_t h_{t-1} + beta_t sum_r v_{t-1,r} k_{t-1,r}^T + gamma_t sum_r v_{t,r} k_{t,r}^T
    y_{t,r} = h_t q_{t,r}

with ``alpha = exp(adt)``, ``beta = (1 - lam) dt alpha`` and ``gamma = lam dt``. The skip term
``D v`` and the output gate are applied by the layer, not here.

Dimension legend:
    B  batch            L  sequence length      R  MIMO rank (1 for SISO)
    H  heads            P  head dim (values)    N  state dim (keys / queries)
    S  rotation angles  C  chunks               Q  chunk length

Both compute in ``promote(q.dtype, fp32)``: fp32 for fp32 and lower-precision inputs, fp64 for
fp64 ones. Carried state (in that dtype): ``angle (B, H, S)`` wrapped to [0, 2pi),
``ssm (B, H, P, N)``, ``k_prev (B, R, H, N)`` the last rotated key, ``v_prev (B, R, H, P)`` the
last per-rank value.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

TWO_PI = 2.0 * math.pi
# Up to this many chunks, states pass between chunks through one (C+1) x (C+1) decay matmul;
# beyond it that matmul's quadratic cost outgrows a loop over chunks (not over positions).
MATRIX_PASS_MAX_CHUNKS = 32


class ScanState(NamedTuple):
    """Recurrent state of one Mamba-3 scan (compute-dtype tensors, shapes in the module legend)."""

    angle: torch.Tensor  # (B, H, S) cumulative rotation, wrapped to [0, 2pi)
    ssm: torch.Tensor  # (B, H, P, N)
    k_prev: torch.Tensor  # (B, R, H, N) rotated key of the last position
    v_prev: torch.Tensor  # (B, R, H, P) per-rank value of the last position


def _rotate_into(out: torch.Tensor, v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Write ``v`` with pairs ``(v[2i], v[2i+1])`` rotated by ``(cos[i], sin[i])`` into ``out``."""
    n = 2 * cos.shape[-1]
    v0, v1 = v[..., 0:n:2], v[..., 1:n:2]  # (..., S) strided views
    torch.mul(v0, cos, out=out[..., 0:n:2]).addcmul_(v1, sin, value=-1.0)
    torch.mul(v0, sin, out=out[..., 1:n:2]).addcmul_(v1, cos)
    out[..., n:] = v[..., n:]
    return out


def _sum_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient back to ``shape``."""
    return t.sum_to_size(shape) if t.shape != shape else t


class _RotatePairs(torch.autograd.Function):
    """Pairwise rotation with a hand-written backward: the rotation by ``-theta`` for ``v`` and
    ``(g0 v0 + g1 v1, g1 v0 - g0 v1)`` for ``(cos, sin)``; no zero-filled slice gradients."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        shape = torch.broadcast_shapes(v.shape[:-1], cos.shape[:-1]) + v.shape[-1:]
        out = _rotate_into(v.new_empty(shape), v.expand(shape), cos, sin)
        ctx.save_for_backward(v, cos, sin)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        v, cos, sin = ctx.saved_tensors
        grad_v = grad_cos = grad_sin = None
        if ctx.needs_input_grad[0]:
            grad_v = _sum_to(_rotate_into(torch.empty_like(grad), grad, cos, -sin), v.shape)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            n = 2 * cos.shape[-1]
            g0, g1 = grad[..., 0:n:2], grad[..., 1:n:2]
            v0, v1 = v[..., 0:n:2], v[..., 1:n:2]
            grad_cos = _sum_to(g0 * v0 + g1 * v1, cos.shape)
            grad_sin = _sum_to(g1 * v0 - g0 * v1, sin.shape)
        return grad_v, grad_cos, grad_sin


def rotate_pairs(v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs ``(v[2i], v[2i+1])`` by the angles whose cos/sin are given.

    ``(v0, v1) -> (v0 cos - v1 sin, v0 sin + v1 cos)``, a complex multiplication by ``e^{i theta}``.

    Args:
        v: ``(..., N)`` vectors; entries past ``2S`` pass through unchanged.
        cos: ``(..., S)`` cosines, broadcastable against ``v[..., :S]``.
        sin: ``(..., S)`` sines, same shape as ``cos``.

    Returns:
        ``(..., N)`` rotated vectors (batch dims broadcast).
    """
    return _RotatePairs.apply(v, cos, sin)


def angle_dtype(device: torch.device) -> torch.dtype:
    """Accumulation dtype of the cumulative angle: float64 where the device has it (not MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def wrap_angle(theta: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Accumulated angles wrapped to [0, 2pi) and returned in ``dtype`` (the compute dtype)."""
    return torch.remainder(theta, TWO_PI).to(dtype)


def mamba3_scan_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    adt: torch.Tensor,
    dt: torch.Tensor,
    lam: torch.Tensor,
    dtheta: torch.Tensor,
    state: ScanState,
) -> tuple[torch.Tensor, ScanState]:
    """Sequential Mamba-3 scan in ``promote(q.dtype, fp32)``: the ground truth, one position at a time.

    Args:
        q: ``(B, L, R, H, N)`` queries (normed, biased, not yet rotated).
        k: ``(B, L, R, H, N)`` keys (normed, biased, not yet rotated).
        v: ``(B, L, R, H, P)`` per-rank values.
        adt: ``(B, L, H)`` ``dt * A`` (log of the decay ``alpha``), ``<= 0``.
        dt: ``(B, L, H)`` step sizes ``dt > 0``.
        lam: ``(B, L, H)`` trapezoid weights ``lambda`` in (0, 1).
        dtheta: ``(B, L, H, S)`` angle increments.
        state: the state before the first position.

    Returns:
        ``y (B, L, R, H, P)`` (``h_t q_{t,r}``, compute dtype) and the state after the last position.
    """
    cdt = torch.promote_types(q.dtype, torch.float32)
    acc = angle_dtype(q.device)
    theta = state.angle.to(acc)  # (B, H, S), accumulated like the chunked form
    h = state.ssm.to(cdt)  # (B, H, P, N)
    k_prev, v_prev = state.k_prev.to(cdt), state.v_prev.to(cdt)
    adt, dt, lam = adt.to(cdt), dt.to(cdt), lam.to(cdt)
    alpha = adt.exp()
    beta = (1.0 - lam) * dt * alpha
    gamma = lam * dt
    ys = []
    for t in range(q.shape[1]):
        theta = theta + dtheta[:, t].to(acc)
        angle = wrap_angle(theta, cdt)[:, None]  # (B, 1, H, S), shared by the R ranks
        cos, sin = angle.cos(), angle.sin()
        k_t = rotate_pairs(k[:, t].to(cdt), cos, sin)  # (B, R, H, N)
        q_t = rotate_pairs(q[:, t].to(cdt), cos, sin)
        v_t = v[:, t].to(cdt)  # (B, R, H, P)
        h = (
            alpha[:, t, :, None, None] * h
            + beta[:, t, :, None, None] * torch.einsum("brhp,brhn->bhpn", v_prev, k_prev)
            + gamma[:, t, :, None, None] * torch.einsum("brhp,brhn->bhpn", v_t, k_t)
        )
        ys.append(torch.einsum("bhpn,brhn->brhp", h, q_t))
        k_prev, v_prev = k_t, v_t
    return torch.stack(ys, dim=1), ScanState(wrap_angle(theta, cdt), h, k_prev, v_prev)


class _IntraChunkWeights(torch.autograd.Function):
    """Key weights inside a chunk, with a hand-written backward (see :func:`intra_chunk_weights`).

    The backward reuses the saved decays ``exp(c_t - c_j)``: one product with the incoming
    gradient gives both the scale gradient (a column sum) and the log-decay gradient (row minus
    column sums), instead of replaying the masked difference, ``exp`` and product step by step.
    """

    @staticmethod
    def forward(ctx, cum, scale, gamma):
        chunk = cum.shape[-1]
        strict = torch.ones(chunk, chunk, dtype=torch.bool, device=cum.device).tril(-1)
        decay = (
            (cum[..., :, None] - cum[..., None, :]).masked_fill_(~strict, float("-inf")).exp_()
        )  # (..., Q, Q)
        weight = decay * scale[..., None, :]  # zero on and above the diagonal
        weight.diagonal(dim1=-2, dim2=-1).copy_(gamma)
        ctx.save_for_backward(decay, scale)
        return weight

    @staticmethod
    def backward(ctx, grad):
        decay, scale = ctx.saved_tensors
        grad_gamma = grad.diagonal(dim1=-2, dim2=-1).clone()
        through = grad * decay  # (..., Q, Q), zero on and above the diagonal
        grad_scale = through.sum(-2)
        through.mul_(scale[..., None, :])  # d/d(c_t - c_j)
        grad_cum = through.sum(-1) - through.sum(-2)
        return grad_cum, grad_scale, grad_gamma


def intra_chunk_weights(cum: torch.Tensor, scale: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Weight of key ``j`` for query ``t`` inside a chunk: ``exp(c_t - c_j) s_j`` for ``j < t``,
    ``gamma_t`` for ``j = t`` and 0 for ``j > t``.

    Args:
        cum: ``(..., Q)`` cumulative log-decay from the chunk start (non-increasing).
        scale: ``(..., Q)`` per-key scales ``s_j``.
        gamma: ``(..., Q)`` diagonal weights.

    Returns:
        ``(..., Q, Q)`` weights (query index first).
    """
    return _IntraChunkWeights.apply(cum, scale, gamma)


def _pad_to_chunks(t: torch.Tensor, chunk: int) -> torch.Tensor:
    """Zero-pad dim 1 (length) to a multiple of ``chunk`` and split it into ``(C, Q)``."""
    pad = -t.shape[1] % chunk
    if pad:
        t = torch.cat((t, t.new_zeros(t.shape[0], pad, *t.shape[2:])), dim=1)
    return t.unflatten(1, (-1, chunk))  # (B, C, Q, ...)


def mamba3_scan_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    adt: torch.Tensor,
    dt: torch.Tensor,
    lam: torch.Tensor,
    dtheta: torch.Tensor,
    state: ScanState,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, ScanState]:
    """Chunked Mamba-3 scan: the same result as :func:`mamba3_scan_ref`, with no loop over time.

    Unrolling the recurrence, key ``j`` reaches query ``t >= j`` with weight
    ``exp(c_t - c_j) * (gamma_j + [j < t] mu_{j+1})`` where ``c`` is the cumulative sum of
    ``adt`` and ``mu = beta / alpha = (1 - lam) dt``: the trapezoid's second use of a key,
    taken one step later, folds into a per-key scale ``s_j = gamma_j + mu_{j+1}`` for strictly
    later queries, while the diagonal keeps ``gamma_t`` alone. The carried ``(k_prev, v_prev)``
    folds into the initial state as ``mu_0 v_prev k_prev^T``. Chunks then follow SSD: masked
    decay-weighted products inside a chunk, chunk states passed on by :func:`pass_chunk_states`.
    With MIMO the ``R`` ranks of a position are ``R`` keys sharing its weight. The last position
    has no successor here, so its ``mu`` is taken as zero and the
    returned ``ssm`` is the true ``h_{L-1}``; the next call adds the missing term through
    ``k_prev, v_prev``.

    Args:
        q, k, v, adt, dt, lam, dtheta, state: as in :func:`mamba3_scan_ref`.
        chunk_size: chunk length ``Q``; ``L`` need not be a multiple of it.

    Returns:
        ``y (B, L, R, H, P)`` (compute dtype) and the state after the last position.
    """
    length, rank = q.shape[1], q.shape[2]
    chunk = max(1, min(chunk_size, length))
    cdt = torch.promote_types(q.dtype, torch.float32)
    q, k, v = q.to(cdt), k.to(cdt), v.to(cdt)
    adt, dt, lam = adt.to(cdt), dt.to(cdt), lam.to(cdt)

    # 1. cumulative rotation (float64 accumulation, wrapped), applied to keys and queries
    acc = angle_dtype(q.device)
    theta = state.angle.to(acc)[:, None] + dtheta.to(acc).cumsum(dim=1)  # (B, L, H, S)
    angle = wrap_angle(theta, cdt)[:, :, None]  # (B, L, 1, H, S)
    cos, sin = angle.cos(), angle.sin()
    k = rotate_pairs(k, cos, sin)  # (B, L, R, H, N)
    q = rotate_pairs(q, cos, sin)

    # 2. per-key scales: gamma on the diagonal, gamma_j + mu_{j+1} for later queries
    gamma = lam * dt  # (B, L, H)
    mu = (1.0 - lam) * dt
    scale = gamma + F.pad(mu[:, 1:], (0, 0, 0, 1))  # (B, L, H)
    h0 = state.ssm.to(cdt) + mu[:, 0, :, None, None] * torch.einsum(
        "brhp,brhn->bhpn", state.v_prev.to(cdt), state.k_prev.to(cdt)
    )  # (B, H, P, N)

    # 3. chunk layout: (B, H, C, Q*R, .) with the rank as the fastest key index
    def keys(t: torch.Tensor) -> torch.Tensor:
        t = _pad_to_chunks(t, chunk)  # (B, C, Q, R, H, X)
        # contiguous once here, not copied again by every matmul (and its backward) that reads it
        return t.permute(0, 4, 1, 2, 3, 5).flatten(3, 4).contiguous()  # (B, H, C, Q*R, X)

    def per_pos(t: torch.Tensor) -> torch.Tensor:
        return _pad_to_chunks(t, chunk).permute(0, 3, 1, 2)  # (B, H, C, Q)

    qc, kc, vc = keys(q), keys(k), keys(v)
    adt_c, gamma_c, scale_c = per_pos(adt), per_pos(gamma), per_pos(scale)
    cum = adt_c.cumsum(dim=-1)  # (B, H, C, Q) log-decay from the chunk start

    # 4. intra-chunk: masked decay-weighted scores, strict lower part scaled by s_j
    weight = intra_chunk_weights(cum, scale_c, gamma_c)  # (B, H, C, Q, Q)
    scores = qc @ kc.transpose(-1, -2)  # (B, H, C, QR, QR)
    if rank == 1:
        scores = scores * weight
    else:
        scores = scores.unflatten(-1, (chunk, rank)).unflatten(-3, (chunk, rank))  # (B, H, C, Q, R, Q, R)
        scores = (scores * weight[..., :, None, :, None]).flatten(-2).flatten(-3, -2)  # (B, H, C, QR, QR)
    y = scores @ vc  # (B, H, C, QR, P)

    # 5. chunk states: sum_j exp(c_end - c_j) s_j v_j k_j^T
    to_end = ((cum[..., -1:] - cum).exp() * scale_c).repeat_interleave(rank, dim=-1)  # (B, H, C, QR)
    chunk_states = (vc * to_end[..., None]).transpose(-1, -2) @ kc  # (B, H, C, P, N)

    # 6. pass states between chunks: state entering each chunk, and the final state
    entering, final_ssm = pass_chunk_states(h0, chunk_states, cum[..., -1])  # (B, H, C, P, N), (B, H, P, N)

    # 7. inter-chunk: queries read the entering state, decayed from the chunk start
    from_start = cum.exp().repeat_interleave(rank, dim=-1)  # (B, H, C, QR)
    y = torch.addcmul(y, qc @ entering.transpose(-1, -2), from_start[..., None])

    # back to (B, L, R, H, P)
    y = y.unflatten(-2, (chunk, rank)).permute(0, 2, 3, 4, 1, 5).flatten(1, 2)[:, :length]
    # clones: the state must not keep the whole sequence's buffers alive
    final = ScanState(wrap_angle(theta[:, -1], cdt), final_ssm, k[:, -1].clone(), v[:, -1].clone())
    return y, final


def pass_chunk_states(
    h0: torch.Tensor, chunk_states: torch.Tensor, chunk_decay: torch.Tensor, matrix: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """States entering each chunk, from the initial state and each chunk's own contribution.

    ``entering[0] = h0`` and ``entering[c+1] = exp(chunk_decay[c]) entering[c] + chunk_states[c]``.

    Args:
        h0: ``(B, H, P, N)`` state before the first chunk.
        chunk_states: ``(B, H, C, P, N)`` what each chunk adds, decayed to its end.
        chunk_decay: ``(B, H, C)`` log-decay across each chunk (``<= 0``).
        matrix: one ``(C+1) x (C+1)`` masked decay matmul (True) or a loop over chunks (False);
            None picks by ``C`` against :data:`MATRIX_PASS_MAX_CHUNKS`.

    Returns:
        ``entering (B, H, C, P, N)``, the state before each chunk, and the final state
        ``(B, H, P, N)`` after the last chunk, both contiguous.
    """
    nchunks = chunk_states.shape[2]
    if matrix is None:
        matrix = nchunks <= MATRIX_PASS_MAX_CHUNKS
    if not matrix:
        # unbind, not indexing: its backward is one stack, not C zero-filled full-size buffers
        states = [h0]
        for decay, added in zip(chunk_decay.exp()[..., None, None].unbind(2), chunk_states.unbind(2)):
            states.append(decay * states[-1] + added)  # (B, H, P, N)
        return torch.stack(states[:-1], dim=2), states[-1]
    totals = F.pad(chunk_decay.cumsum(dim=-1), (1, 0))  # (B, H, C+1)
    causal = torch.ones(nchunks + 1, nchunks + 1, dtype=torch.bool, device=h0.device).tril()
    decay = (totals[..., :, None] - totals[..., None, :]).masked_fill(~causal, float("-inf")).exp()
    stacked = torch.cat((h0[:, :, None], chunk_states), dim=2).flatten(-2)  # (B, H, C+1, P*N)
    entering = (decay[..., :-1, :] @ stacked).unflatten(-1, h0.shape[-2:])  # (B, H, C, P, N)
    final = (decay[..., -1:, :] @ stacked).unflatten(-1, h0.shape[-2:])[:, :, 0]  # (B, H, P, N)
    return entering, final
