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
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depthwise causal convolution over a sequence, continuing from ``state``.

    Args:
        x: input ``(B, Ch, L)``, or ``(B, L, Ch)`` when ``channels_last``.
        weight: depthwise kernel ``(Ch, 1, K)`` (an ``nn.Conv1d(groups=Ch)`` weight) or ``(Ch, K)``.
        bias: ``(Ch,)`` or None.
        state: the previous ``K`` inputs ``(B, Ch, K)``; None means zeros (start of a sequence).
        activation: ``"silu"`` or None.
        use_kernel: use ``causal_conv1d``'s CUDA kernel when importable (no state in or out of it).
        channels_last: x and y are ``(B, L, Ch)`` (the layout of a linear projection): the
            convolution then runs as a channels-last 2D one, with no transposed copy.

    Returns:
        ``(y, new_state)``: y ``(B, Ch, L)`` (``(B, L, Ch)`` when ``channels_last``), new_state
        ``(B, Ch, K)`` = the last ``K`` inputs.
    """
    if channels_last:
        return _causal_conv1d_channels_last(x, weight, bias, state, activation, use_kernel)
    w = weight.reshape(weight.shape[0], weight.shape[-1])  # (Ch, K)
    k, length = w.shape[-1], x.shape[-1]
    if activation not in ("silu", None):
        raise ValueError(f"activation={activation!r} is not one of ('silu', None)")
    carried = state is not None
    state = state.to(x.dtype) if carried else x.new_zeros(x.shape[0], x.shape[1], k)
    if use_kernel and x.is_cuda and kernel_available("causal_conv1d"):
        from causal_conv1d import causal_conv1d_fn

        window = torch.cat([state, x], dim=-1)  # (B, Ch, K + L)
        y = causal_conv1d_fn(window[..., 1:].contiguous(), w, bias, activation=activation)[..., k - 1 :]
        return y, window[..., -k:]
    if carried or length < k:
        # the first input of the carried window has left the receptive field of every output
        window = torch.cat([state, x], dim=-1)  # (B, Ch, K + L)
        y = F.conv1d(window[..., 1:], w.unsqueeze(1), bias, groups=w.shape[0])  # (B, Ch, L)
        new_state = window[..., -k:]
    else:
        # a fresh sequence: zero left padding inside the conv, no concatenated copy of x; split,
        # not slicing, so that the backward is one concatenation, not a zero-filled buffer and a copy
        y = F.conv1d(x, w.unsqueeze(1), bias, padding=k - 1, groups=w.shape[0])  # (B, Ch, L + K - 1)
        y = y.split([length, k - 1], dim=-1)[0]  # (B, Ch, L)
        new_state = x[..., length - k :].clone()  # (B, Ch, K); a copy, not a view of the sequence
    if activation == "silu":
        y = F.silu(y)
    return y, new_state


def _causal_conv1d_channels_last(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    state: torch.Tensor | None,
    activation: str | None,
    use_kernel: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`causal_conv1d` for x ``(B, L, Ch)``: a ``(B, Ch, 1, L)`` channels-last 2D convolution."""
    if use_kernel and x.is_cuda:
        y, new_state = causal_conv1d(x.transpose(1, 2), weight, bias, state, activation, use_kernel)
        return y.transpose(1, 2), new_state
    if activation not in ("silu", None):
        raise ValueError(f"activation={activation!r} is not one of ('silu', None)")
    w = weight.reshape(weight.shape[0], 1, 1, weight.shape[-1])  # (Ch, 1, 1, K)
    k, length = w.shape[-1], x.shape[1]
    if state is not None or length < k:
        if state is None:
            state = x.new_zeros(x.shape[0], x.shape[2], k)
        # the first input of the carried window has left the receptive field of every output
        window = torch.cat([state.to(x.dtype).transpose(1, 2), x], dim=1)  # (B, K + L, Ch)
        inputs = window[:, 1:].contiguous()  # (B, K - 1 + L, Ch)
        padding = 0
        new_state = window[:, -k:].transpose(1, 2).contiguous()  # (B, Ch, K)
    else:  # a fresh sequence: zero left padding inside the conv, no concatenated copy of x
        inputs, padding = x, k - 1
        new_state = x[:, length - k :].transpose(1, 2).contiguous()  # (B, Ch, K)
    y = F.conv2d(inputs.unsqueeze(1).permute(0, 3, 1, 2), w, bias, padding=(0, padding), groups=w.shape[0])
    y = y.permute(0, 2, 3, 1)[:, 0]  # (B, L + padding, Ch), a view of the channels-last output
    if padding:  # split, not slicing: its backward is one concatenation, not a zero fill and a copy
        y = y.split([length, padding], dim=1)[0]  # (B, L, Ch)
    if activation == "silu":
        y = F.silu(y)
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
