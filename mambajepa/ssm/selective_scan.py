"""Mamba-1 selective scan (S6): a sequential reference, a blocked parallel form and the CUDA kernel.

Dimensions: ``B`` batch, ``L`` length, ``E`` channels (``d_inner``), ``N`` state size,
``nc`` number of chunks, ``T`` chunk length.

The recurrence, per channel ``e`` and state index ``n``::

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * u_t * B_t        h: (B, E, N)
    y_t = sum_n C_t[n] * h_t[:, :, n]                             y: (B, E)

``delta`` arrives already discretised (bias added, softplus applied); the skip ``D * u`` and the
``silu(z)`` gate are applied by the layer. Every implementation takes an initial state and
returns the final one, so sequences can be processed piece by piece.

The blocked form (``chunked``) walks the sequence in cache-sized blocks of ``T`` positions:
per block, the decays ``exp(delta * A)`` and inputs ``delta * u * B`` are formed with vectorised
ops over ``(T, B, E, N)``, the states by one fused in-place multiply-add per position, and the
outputs by one batched matmul with ``C``. Its backward is written by hand: it keeps only the
inputs and the state at each block start, recomputes a block's states and runs the adjoint
recurrence backwards, so no ``(B, L, E, N)`` tensor is ever stored (the memory scheme of the
CUDA kernel) and every pass works on data that fits in cache. Results equal the sequential
reference; nothing is divided by a decay, so strongly decaying channels cannot overflow.
"""

from __future__ import annotations

import math

import torch

from mambajepa.ssm.dispatch import kernel_available


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequential selective scan in fp32 (fp64 for fp64 inputs): the ground truth.

    Args:
        u: inputs ``(B, L, E)``.
        delta: step sizes ``(B, L, E)``, already positive.
        A: ``(E, N)``, negative.
        B: input projections ``(B, L, N)``.
        C: output projections ``(B, L, N)``.
        initial_state: ``(B, E, N)`` or None for zeros.

    Returns:
        ``(y, final_state)``: y ``(B, L, E)`` in u's dtype, final_state ``(B, E, N)`` in fp32 (or fp64).
    """
    dtype = u.dtype
    cdt = torch.promote_types(dtype, torch.float32)
    u, delta, B, C, A = (t.to(cdt) for t in (u, delta, B, C, A))
    batch, length, channels = u.shape
    h = initial_state.to(cdt) if initial_state is not None else u.new_zeros(batch, channels, A.shape[-1])
    ys = []
    for t in range(length):
        decay = torch.exp(delta[:, t, :, None] * A)  # (B, E, N)
        h = decay * h + (delta[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))  # (B, E)
    y = torch.stack(ys, dim=1) if ys else u.new_zeros(batch, 0, channels)
    return y.to(dtype), h


def default_chunk_size(batch: int, channels: int, n_state: int) -> int:
    """Positions per block such that a block's ``(T, B, E, N)`` fp32 tensors stay near 1 MiB (cache)."""
    per_position = max(1, batch * channels * n_state)
    return int(min(256, max(4, 2 ** round(math.log2(max(1, 2**18 // per_position))))))


def _block_states(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, h0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """States of one time-major block: u, delta ``(T, B, E)``, B ``(T, B, N)``, h0 ``(B, E, N)``.

    Returns ``(h, decay, x)``, each ``(T, B, E, N)``: the states after every position, the
    per-position decays ``exp(delta * A)`` and the inputs ``delta * u * B``.
    """
    decay = torch.exp(delta.unsqueeze(-1) * A)  # (T, B, E, N)
    x = (delta * u).unsqueeze(-1) * B.unsqueeze(2)  # (T, B, E, N)
    h = torch.empty_like(x)
    prev = h0
    for t in range(x.shape[0]):  # one fused multiply-add per position, in place, on cache-resident data
        prev = torch.addcmul(x[t], decay[t], prev, out=h[t])
    return h, decay, x


class _BlockedSelectiveScan(torch.autograd.Function):
    """Selective scan over cache-sized blocks with a hand-written backward.

    Forward keeps only the inputs and the state at each block start; backward recomputes a
    block's states from its start state and runs the adjoint recurrence backwards in time, so
    no ``(B, L, E, N)`` tensor is ever materialised (the memory scheme of the CUDA kernel).
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, h0, block):
        # u, delta: (L, B, E); B, C: (L, B, N); A: (E, N); h0: (B, E, N) -- time-major, compute dtype
        length = u.shape[0]
        ys, starts = [], []
        h_last = h0
        for a in range(0, length, block):
            b = min(a + block, length)
            starts.append(h_last)
            h, _, _ = _block_states(u[a:b], delta[a:b], A, B[a:b], h_last)
            ys.append(torch.matmul(h, C[a:b].unsqueeze(-1)).squeeze(-1))  # (T, B, E)
            h_last = h[-1].clone()
        ctx.save_for_backward(u, delta, A, B, C, torch.stack(starts))
        ctx.block = block
        return torch.cat(ys), h_last  # (L, B, E)

    @staticmethod
    def backward(ctx, dy, dh_last):
        u, delta, A, B, C, starts = ctx.saved_tensors
        length, block = u.shape[0], ctx.block
        dy = torch.zeros_like(u) if dy is None else dy.contiguous()
        g_next = torch.zeros_like(starts[0]) if dh_last is None else dh_last.clone()  # dL/dh at block end
        du, ddelta, dB, dC = [], [], [], []  # per block, last block first
        dA = torch.zeros_like(A)
        for k in reversed(range(len(starts))):
            a = k * block
            b = min(a + block, length)
            u_k, delta_k, B_k, C_k, dy_k = u[a:b], delta[a:b], B[a:b], C[a:b], dy[a:b]
            h, decay, x = _block_states(u_k, delta_k, A, B_k, starts[k])
            # adjoint recurrence: g_t = dy_t C_t + decay_{t+1} g_{t+1}; the block end receives g_next
            g = dy_k.unsqueeze(-1) * C_k.unsqueeze(2)  # (T, B, E, N)
            g[-1] += g_next
            for t in range(b - a - 2, -1, -1):
                g[t].addcmul_(decay[t + 1], g[t + 1])
            g_next = decay[0] * g[0]
            dC.append(torch.matmul(dy_k.unsqueeze(-2), h).squeeze(-2))  # (T, B, N)
            # d/d(delta * A) = g * decay * h_prev = g * (h - x)
            dlog = g * (h - x)  # (T, B, E, N)
            dA += (dlog * delta_k.unsqueeze(-1)).sum((0, 1))
            dux = torch.matmul(g, B_k.unsqueeze(-1)).squeeze(-1)  # (T, B, E): d/d(delta * u)
            dB.append(torch.matmul((delta_k * u_k).unsqueeze(-2), g).squeeze(-2))  # (T, B, N)
            ddelta.append(torch.addcmul((dlog * A).sum(-1), dux, u_k))
            du.append(dux * delta_k)
        du, ddelta, dB, dC = (torch.cat(grads[::-1]) for grads in (du, ddelta, dB, dC))  # (L, B, .)
        return du, ddelta, dA, dB, dC, g_next, None


def selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    chunk_size: int | None = None,
    time_major: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocked selective scan; same arguments and results as :func:`selective_scan_ref`.

    Args:
        u, delta, A, B, C, initial_state: as in :func:`selective_scan_ref`.
        time_major: u, delta, B, C (and y) are ``(L, B, .)`` instead of ``(B, L, .)``.
        chunk_size: positions per block ``T``; None picks :func:`default_chunk_size`.
            The result does not depend on it.

    Returns:
        ``(y, final_state)`` as in :func:`selective_scan_ref`.
    """
    dtype = u.dtype
    cdt = torch.promote_types(dtype, torch.float32)  # fp32 (or fp64) compute
    if not time_major:
        y, h_last = selective_scan_chunked(
            *(t.transpose(0, 1) for t in (u, delta)),
            A,
            *(t.transpose(0, 1) for t in (B, C)),
            initial_state,
            chunk_size,
            time_major=True,
        )
        return y.transpose(0, 1), h_last
    length, batch, channels = u.shape
    n_state = A.shape[-1]
    if length == 0:
        h0 = initial_state if initial_state is not None else u.new_zeros(batch, channels, n_state, dtype=cdt)
        return u.new_zeros(0, batch, channels), h0.to(cdt)
    block = chunk_size or default_chunk_size(batch, channels, n_state)
    h0 = (
        initial_state.to(cdt)
        if initial_state is not None
        else u.new_zeros(batch, channels, n_state, dtype=cdt)
    )
    u, delta, B, C = (t.to(cdt).contiguous() for t in (u, delta, B, C))  # (L, B, .)
    y, h_last = _BlockedSelectiveScan.apply(u, delta, A.to(cdt).contiguous(), B, C, h0, block)
    return y.to(dtype), h_last


def selective_scan_fused(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mamba_ssm``'s CUDA ``selective_scan_fn`` (no initial state: falls back to chunked)."""
    if initial_state is not None or not kernel_available("mamba_ssm"):
        return selective_scan_chunked(u, delta, A, B, C, initial_state)
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    y, last = selective_scan_fn(
        u.transpose(1, 2).contiguous(),  # (B, E, L)
        delta.transpose(1, 2).contiguous(),
        A.float(),
        B.transpose(1, 2).contiguous(),  # (B, N, L)
        C.transpose(1, 2).contiguous(),
        return_last_state=True,
    )
    return y.transpose(1, 2), last.float()


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    impl: str = "chunked",
    chunk_size: int | None = None,
    time_major: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the selective scan with an already resolved implementation.

    Args:
        u, delta, A, B, C, initial_state: as in :func:`selective_scan_ref`.
        impl: ``"ref"``, ``"chunked"`` or ``"fused"`` (see :func:`mambajepa.ssm.dispatch.resolve_impl`).
        chunk_size: chunk length of the chunked form.
        time_major: u, delta, B, C and y are ``(L, B, .)`` instead of ``(B, L, .)``.

    Returns:
        ``(y, final_state)``.

    Raises:
        ValueError: unknown ``impl``.
    """
    if impl == "chunked":
        return selective_scan_chunked(u, delta, A, B, C, initial_state, chunk_size, time_major)
    if impl not in ("ref", "fused"):
        raise ValueError(f"impl={impl!r} is not one of ('ref', 'chunked', 'fused')")
    if time_major:
        u, delta, B, C = (t.transpose(0, 1) for t in (u, delta, B, C))
    fn = selective_scan_ref if impl == "ref" else selective_scan_fused
    y, h_last = fn(u, delta, A, B, C, initial_state)
    return (y.transpose(0, 1) if time_major else y), h_last
