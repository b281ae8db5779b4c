"""Mamba-2 state-space duality (SSD) scan: sequential reference, chunked form and CUDA kernel.

Dimensions: ``B`` batch, ``L`` length, ``H`` heads, ``P`` head dim, ``G`` groups (B/C shared by
``H // G`` heads), ``N`` state size, ``nc`` chunks, ``T``/``S`` positions inside a chunk.

The recurrence, with one scalar decay per head::

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t (outer) B_t        h: (B, H, P, N)
    y_t = h_t @ C_t                                                y: (B, H, P)

``dt`` arrives discretised (bias, softplus and limits applied); ``D`` and the gate belong to the
layer. The chunked form follows the SSD algorithm (Dao & Gu, 2024) in four numbered steps:
(1) outputs from inputs of the same chunk, a masked attention-like product; (2) the state each
chunk leaves behind; (3) the recurrence between chunk boundaries; (4) outputs from the state a
chunk starts with. Decays enter only as ``exp`` of differences of cumulative sums that are
``<= 0``, so nothing overflows. Chunk states are held as ``(N, hg * P)`` matrices per group, so
steps 2 and 4 are a few large matmuls rather than many ``P x N`` ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mambajepa.ssm.dispatch import kernel_available


def ssd_ref(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequential SSD scan in fp32 (fp64 for fp64 inputs): the ground truth.

    Args:
        x: inputs ``(B, L, H, P)``.
        dt: step sizes ``(B, L, H)``, already positive.
        A: ``(H,)``, negative.
        B: ``(B, L, G, N)``.
        C: ``(B, L, G, N)``.
        initial_state: ``(B, H, P, N)`` or None for zeros.

    Returns:
        ``(y, final_state)``: y ``(B, L, H, P)`` in x's dtype, final_state ``(B, H, P, N)`` in fp32
        (or fp64).
    """
    dtype = x.dtype
    cdt = torch.promote_types(dtype, torch.float32)
    batch, length, heads, headdim = x.shape
    groups, n_state = B.shape[-2:]
    x, dt, A = x.to(cdt), dt.to(cdt), A.to(cdt)
    B = B.to(cdt).repeat_interleave(heads // groups, dim=2)  # (B, L, H, N)
    C = C.to(cdt).repeat_interleave(heads // groups, dim=2)
    h = initial_state.to(cdt) if initial_state is not None else x.new_zeros(batch, heads, headdim, n_state)
    ys = []
    for t in range(length):
        decay = torch.exp(dt[:, t] * A)[:, :, None, None]  # (B, H, 1, 1)
        h = decay * h + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", h, C[:, t]))
    y = torch.stack(ys, dim=1) if ys else x.new_zeros(batch, 0, heads, headdim)
    return y.to(dtype), h


def _segsum_exp(a_cum: torch.Tensor) -> torch.Tensor:
    """``exp(a_cum[..., t] - a_cum[..., s])`` for ``s <= t``, 0 above the diagonal: ``(..., T, T)``."""
    T = a_cum.shape[-1]
    diff = a_cum[..., :, None] - a_cum[..., None, :]  # (..., T, S)
    causal = torch.ones(T, T, dtype=torch.bool, device=a_cum.device).tril()
    return diff.masked_fill_(~causal, float("-inf")).exp_()  # in place on the fresh difference tensor


def ssd_chunked(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD; same arguments and results as :func:`ssd_ref`.

    Args:
        x, dt, A, B, C, initial_state: as in :func:`ssd_ref`.
        chunk_size: positions per chunk ``T``; any length works (the tail chunk is padded).

    Returns:
        ``(y, final_state)`` as in :func:`ssd_ref`.
    """
    dtype = x.dtype
    batch, length, heads, headdim = x.shape
    groups, n_state = B.shape[-2:]
    hg = heads // groups
    cdt = torch.promote_types(dtype, torch.float32)  # fp32 (or fp64) compute
    x, dt, A, B, C = x.to(cdt), dt.to(cdt), A.to(cdt), B.to(cdt), C.to(cdt)
    T = min(chunk_size, max(length, 1))
    pad = (-length) % T
    if pad:  # dt = 0 in the padding: decay 1 and no input, so the final state is unchanged
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
        dt = F.pad(dt, (0, 0, 0, pad))
    nc = (length + pad) // T

    # Layouts: inputs stay in their natural chunked order (B, nc, T, G, hg, P), heads split into
    # (group, head-in-group) so that B and C are never repeated over heads; chunk states are kept
    # as (N, hg * P) matrices per group so that steps 2 and 4 are few large matmuls.
    xdt = (x * dt.unsqueeze(-1)).view(batch, nc, T, groups, hg, headdim)  # (B, nc, T, G, hg, P)
    a_cum = torch.cumsum(dt.view(batch, nc, T, groups, hg) * A.view(groups, hg), dim=2)  # (B, nc, T, G, hg)
    Bc = B.view(batch, nc, T, groups, n_state).transpose(2, 3).contiguous()  # (B, nc, G, T, N)
    Cc = C.view(batch, nc, T, groups, n_state).transpose(2, 3).contiguous()  # (B, nc, G, T, N)

    # 1. outputs from inputs of the same chunk (one decay mask per head)
    scores = torch.matmul(Cc, Bc.transpose(-1, -2)).unsqueeze(3)  # (B, nc, G, 1, T, S)
    mask = _segsum_exp(a_cum.permute(0, 1, 3, 4, 2))  # (B, nc, G, hg, T, S)
    y = torch.matmul(scores * mask, xdt.permute(0, 1, 3, 4, 2, 5))  # (B, nc, G, hg, T, P)
    y = y.permute(0, 1, 4, 2, 3, 5)  # (B, nc, T, G, hg, P)

    # 2. state left by each chunk when it starts from zero
    to_end = torch.exp(a_cum[:, :, -1:] - a_cum).unsqueeze(-1)  # (B, nc, T, G, hg, 1)
    weighted = (xdt * to_end).view(batch, nc, T, groups, hg * headdim).transpose(2, 3)  # (B, nc, G, T, hg*P)
    chunk_states = torch.matmul(Bc.transpose(-1, -2), weighted)  # (B, nc, G, N, hg*P)

    # 3. recurrence between chunk boundaries: start states (nc of them) and the final state
    if initial_state is not None:
        init = initial_state.to(cdt).view(batch, groups, hg, headdim, n_state).permute(0, 1, 4, 2, 3)
        init = init.reshape(batch, groups, n_state, hg * headdim)  # (B, G, N, hg*P)
    else:
        init = x.new_zeros(batch, groups, n_state, hg * headdim)
    # a loop over chunks (not positions): nc small multiply-adds on (B, G, N, hg, P) states
    chunk_decay = torch.exp(a_cum[:, :, -1]).view(batch, nc, groups, 1, hg, 1)  # (B, nc, G, 1, hg, 1)
    states = [init.view(batch, groups, n_state, hg, headdim)]
    for decay, added in zip(
        chunk_decay.unbind(1), chunk_states.view(batch, nc, groups, n_state, hg, headdim).unbind(1)
    ):
        states.append(torch.addcmul(added, decay, states[-1]))  # (B, G, N, hg, P)
    starts, final = torch.stack(states[:-1], dim=1), states[-1]  # (B, nc, G, N, hg, P), (B, G, N, hg, P)

    # 4. outputs from the state each chunk starts with
    y_off = torch.matmul(Cc, starts.reshape(batch, nc, groups, n_state, hg * headdim))  # (B, nc, G, T, hg*P)
    y_off = y_off.view(batch, nc, groups, T, hg, headdim).transpose(2, 3)  # (B, nc, T, G, hg, P)
    y = torch.addcmul(y, y_off, torch.exp(a_cum).unsqueeze(-1))

    y = y.reshape(batch, nc * T, heads, headdim)[:, :length]  # (B, L, H, P)
    final = final.permute(0, 1, 3, 4, 2).reshape(batch, heads, headdim, n_state)  # (B, H, P, N)
    return y.to(dtype), final


def ssd_fused(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mamba_ssm``'s Triton ``mamba_chunk_scan_combined`` (fp32 state); chunked form when it is
    missing or for fp64 inputs, which it does not take."""
    if x.dtype == torch.float64 or not kernel_available("mamba_ssm"):
        return ssd_chunked(x, dt, A, B, C, initial_state, chunk_size)
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    y, final = mamba_chunk_scan_combined(
        x, dt, A, B, C, chunk_size, initial_states=initial_state, return_final_states=True
    )
    return y, final.float()


def ssd_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    impl: str = "chunked",
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the SSD scan with an already resolved implementation.

    Args:
        x, dt, A, B, C, initial_state: as in :func:`ssd_ref`.
        impl: ``"ref"``, ``"chunked"`` or ``"fused"``.
        chunk_size: chunk length of the chunked and fused forms.

    Returns:
        ``(y, final_state)``.

    Raises:
        ValueError: unknown ``impl``.
    """
    if impl == "ref":
        return ssd_ref(x, dt, A, B, C, initial_state)
    if impl == "chunked":
        return ssd_chunked(x, dt, A, B, C, initial_state, chunk_size)
    if impl == "fused":
        return ssd_fused(x, dt, A, B, C, initial_state, chunk_size)
    raise ValueError(f"impl={impl!r} is not one of ('ref', 'chunked', 'fused')")
