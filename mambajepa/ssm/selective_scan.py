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
    """Positions per block such that a block's ``(T, B, N, E)`` fp32 tensors stay near 2 MiB (cache)."""
    per_position = max(1, batch * channels * n_state)
    return int(min(256, max(4, 2 ** round(math.log2(max(1, 2**19 // per_position))))))


def _block_states(
    u: torch.Tensor,
    delta: torch.Tensor,
    At: torch.Tensor,
    B: torch.Tensor,
    h_prev: torch.Tensor,
    decay: torch.Tensor,
    h: torch.Tensor,
) -> None:
    """Decays and states of one time-major block, written into the buffers ``decay`` and ``h``.

    Args:
        u, delta: ``(T, B, E)``.
        At: ``A`` transposed, ``(N, E)``.
        B: ``(T, B, N)``.
        h_prev: state before the block, ``(B, N, E)``.
        decay, h: outputs ``(T, B, N, E)``: ``exp(delta * A)`` and the states after every position.
    """
    torch.mul(delta.unsqueeze(2), At, out=decay).exp_()  # (T, B, N, E)
    torch.mul((delta * u).unsqueeze(2), B.unsqueeze(-1), out=h)  # inputs delta * u * B, (T, B, N, E)
    for h_t, decay_t in zip(h.unbind(0), decay.unbind(0)):  # one fused multiply-add per position
        h_prev = h_t.addcmul_(decay_t, h_prev)


class _BlockedSelectiveScan(torch.autograd.Function):
    """Selective scan over cache-sized blocks in the ``(L, B, N, E)`` layout, hand-written backward.

    Channels ``E`` are the contiguous dimension, so the outer products that form decays and
    inputs broadcast scalars along long rows and the reductions over ``N`` or ``E`` are batched
    matrix-vector products. Forward keeps only the inputs and the state at each block start;
    backward recomputes a block's decays and states from its start state into the same
    cache-resident buffers and runs the adjoint recurrence backwards, so no ``(B, L, E, N)``
    tensor is ever allocated (the memory scheme of the CUDA kernel).
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, h0, block):
        # u, delta: (L, B, E); B, C: (L, B, N); A: (E, N); h0: (B, E, N) -- time-major, compute dtype
        length, batch, channels = u.shape
        At = A.t().contiguous()  # (N, E)
        h_start = h0.transpose(1, 2).contiguous()  # (B, N, E)
        decay = u.new_empty(min(block, length), batch, At.shape[0], channels)  # (T, B, N, E), reused
        h = torch.empty_like(decay)
        y = u.new_empty(length, batch, 1, channels)
        starts = []
        for a in range(0, length, block):
            b = min(a + block, length)
            starts.append(h_start)
            _block_states(u[a:b], delta[a:b], At, B[a:b], h_start, decay[: b - a], h[: b - a])
            torch.matmul(C[a:b].unsqueeze(2), h[: b - a], out=y[a:b])  # (T, B, 1, E)
            h_start = h[b - a - 1].clone()
        ctx.save_for_backward(u, delta, At, B, C, torch.stack(starts))
        ctx.block = block
        return y.squeeze(2), h_start.transpose(1, 2).contiguous()  # (L, B, E), (B, E, N)

    @staticmethod
    def backward(ctx, dy, dh_last):
        u, delta, At, B, C, starts = ctx.saved_tensors
        length, block = u.shape[0], ctx.block
        dy = torch.zeros_like(u) if dy is None else dy.contiguous()
        # adjoint dL/dh at the end of the block being processed, (B, N, E)
        g_next = torch.zeros_like(starts[0]) if dh_last is None else dh_last.transpose(1, 2).contiguous()
        du, ddelta = torch.empty_like(u), torch.empty_like(u)  # (L, B, E)
        dB, dC = torch.empty_like(B), torch.empty_like(C)  # (L, B, N)
        dAt = torch.zeros_like(At)  # (N, E)
        shape = (min(block, length), *starts.shape[1:2], *At.shape)
        decay_buf, h_buf, g_buf, tmp_buf = (u.new_empty(shape) for _ in range(4))  # (T, B, N, E), reused
        for k in reversed(range(starts.shape[0])):
            a = k * block
            b = min(a + block, length)
            n = b - a
            decay, h, g, tmp = decay_buf[:n], h_buf[:n], g_buf[:n], tmp_buf[:n]
            dy_k, delta_k = dy[a:b], delta[a:b]
            du_k = delta_k * u[a:b]  # (T, B, E)
            _block_states(u[a:b], delta_k, At, B[a:b], starts[k], decay, h)
            # adjoint recurrence: g_t = C_t dy_t + decay_{t+1} g_{t+1}; the block end receives g_next
            torch.mul(C[a:b].unsqueeze(-1), dy_k.unsqueeze(2), out=g)  # (T, B, N, E)
            g[-1] += g_next
            g_rows, decay_rows = g.unbind(0), decay.unbind(0)
            for t in range(n - 2, -1, -1):
                g_rows[t].addcmul_(decay_rows[t + 1], g_rows[t + 1])
            torch.matmul(h, dy_k.unsqueeze(-1), out=dC[a:b].unsqueeze(-1))  # (T, B, N, 1)
            torch.matmul(g, du_k.unsqueeze(-1), out=dB[a:b].unsqueeze(-1))  # (T, B, N, 1)
            dux = torch.matmul(B[a:b].unsqueeze(2), g).squeeze(2)  # (T, B, E): d/d(delta * u)
            # d/d(delta * A) = g * decay * h_prev; g * decay is also the adjoint passed backwards
            dlog = g.mul_(decay)  # (T, B, N, E), in place of g
            g_next = dlog[0].clone()
            dlog[1:] *= h[:-1]
            dlog[0] *= starts[k]
            dAt += torch.mul(dlog, delta_k.unsqueeze(2), out=tmp).sum((0, 1))
            torch.addcmul(torch.mul(dlog, At, out=tmp).sum(2), dux, u[a:b], out=ddelta[a:b])
            torch.mul(dux, delta_k, out=du[a:b])
        return du, ddelta, dAt.t(), dB, dC, g_next.transpose(1, 2), None


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
    """``mamba_ssm``'s CUDA ``selective_scan_fn`` (fp32 ``A`` and state); falls back to chunked for an
    initial state or fp64 inputs, which it does not take."""
    if initial_state is not None or u.dtype == torch.float64 or not kernel_available("mamba_ssm"):
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
