"""Causal depthwise 1D convolution with a carried window, as used in front of Mamba-1/2 scans.

Dimensions: ``B`` batch, ``L`` length, ``Ch`` channels, ``K`` kernel width (``d_conv``).

The carried state is the last ``K`` inputs, ``(B, Ch, K)``, oldest first (the layout of
``mamba_ssm``'s ``conv_state`` and VideoMamba's streaming cache). A whole-sequence call with a
state equals running :func:`causal_conv1d_step` position by position from that state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mambajepa.ssm.dispatch import kernel_available


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    state: torch.Tensor | None = None,
    activation: str | None = "silu",
    use_kernel: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depthwise causal convolution over a sequence, continuing from ``state``.

    Args:
        x: input ``(B, Ch, L)``.
        weight: depthwise kernel ``(Ch, 1, K)`` (an ``nn.Conv1d(groups=Ch)`` weight) or ``(Ch, K)``.
        bias: ``(Ch,)`` or None.
        state: the previous ``K`` inputs ``(B, Ch, K)``; None means zeros (start of a sequence).
        activation: ``"silu"`` or None.
        use_kernel: use ``causal_conv1d``'s CUDA kernel when importable (no state in or out of it).

    Returns:
        ``(y, new_state)``: y ``(B, Ch, L)``, new_state ``(B, Ch, K)`` = the last ``K`` inputs.
    """
    w = weight.reshape(weight.shape[0], weight.shape[-1])  # (Ch, K)
    k = w.shape[-1]
    if state is None:
        state = x.new_zeros(x.shape[0], x.shape[1], k)
    window = torch.cat([state.to(x.dtype), x], dim=-1)  # (B, Ch, K + L)
    new_state = window[..., -k:]
    if use_kernel and x.is_cuda and kernel_available("causal_conv1d"):
        from causal_conv1d import causal_conv1d_fn

        y = causal_conv1d_fn(window[..., 1:].contiguous(), w, bias, activation=activation)[..., k - 1 :]
        return y, new_state
    # the first input of the carried window has left the receptive field of every output
    y = F.conv1d(window[..., 1:], w.unsqueeze(1), bias, groups=w.shape[0])  # (B, Ch, L)
    if activation == "silu":
        y = F.silu(y)
    elif activation is not None:
        raise ValueError(f"activation={activation!r} is not one of ('silu', None)")
    return y, new_state


def causal_conv1d_step(
    x_t: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    state: torch.Tensor,
    activation: str | None = "silu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One position of :func:`causal_conv1d`: O(K) work, no in-place update (gradients flow).

    Args:
        x_t: input ``(B, Ch)``.
        weight: ``(Ch, 1, K)`` or ``(Ch, K)``.
        bias: ``(Ch,)`` or None.
        state: previous ``K`` inputs ``(B, Ch, K)``.
        activation: ``"silu"`` or None.

    Returns:
        ``(y_t, new_state)`` with y_t ``(B, Ch)`` and new_state ``(B, Ch, K)``.
    """
    w = weight.reshape(weight.shape[0], weight.shape[-1])  # (Ch, K)
    new_state = torch.cat([state[..., 1:], x_t.unsqueeze(-1).to(state.dtype)], dim=-1)  # (B, Ch, K)
    y = (new_state * w).sum(-1)
    if bias is not None:
        y = y + bias
    if activation == "silu":
        y = F.silu(y)
    elif activation is not None:
        raise ValueError(f"activation={activation!r} is not one of ('silu', None)")
    return y.to(x_t.dtype), new_state
