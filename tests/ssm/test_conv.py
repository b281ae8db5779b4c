"""Causal depthwise conv: the whole-sequence form equals a plain concatenated-window conv and
the position-by-position step, with and without a carried state, in values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from mambajepa.ssm.conv import causal_conv1d, causal_conv1d_step


def _window_conv(x, w, b, state, activation):
    """Reference: convolve the carried window followed by the sequence (no padding, no layout tricks)."""
    k = w.shape[-1]
    window = torch.cat([state, x], dim=-1)  # (B, Ch, K + L)
    y = F.conv1d(window[..., 1:], w.unsqueeze(1), b, groups=w.shape[0])
    return (F.silu(y) if activation == "silu" else y), window[..., -k:]


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 17])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("activation", ["silu", None])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_matches_window_reference(length, with_state, activation, channels_last):
    torch.manual_seed(length)
    batch, ch, k = 2, 6, 4
    x = torch.randn(batch, ch, length, dtype=torch.float64, requires_grad=True)
    w = torch.randn(ch, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(ch, dtype=torch.float64, requires_grad=True)
    s = torch.randn(batch, ch, k, dtype=torch.float64, requires_grad=True)
    state = s if with_state else None
    if channels_last:  # same values, (B, L, Ch) in and out
        y, new_state = causal_conv1d(
            x.transpose(1, 2).contiguous(),
            w.unsqueeze(1),
            b,
            state,
            activation=activation,
            channels_last=True,
        )
        y = y.transpose(1, 2)
    else:
        y, new_state = causal_conv1d(x, w.unsqueeze(1), b, state, activation=activation)
    y_ref, ns_ref = _window_conv(x, w, b, s if with_state else torch.zeros_like(s), activation)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(new_state, ns_ref)
    gy, gs = torch.randn_like(y), torch.randn_like(new_state)
    inputs = [x, w, b] + ([s] if with_state else [])
    grads = torch.autograd.grad((y * gy).sum() + (new_state * gs).sum(), inputs)
    grads_ref = torch.autograd.grad((y_ref * gy).sum() + (ns_ref * gs).sum(), inputs)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref)


def test_conv_equals_steps():
    torch.manual_seed(0)
    batch, ch, k, length = 2, 5, 4, 9
    x = torch.randn(batch, ch, length)
    w, b = torch.randn(ch, 1, k), torch.randn(ch)
    state = torch.randn(batch, ch, k)
    y, final = causal_conv1d(x, w, b, state)
    s = state
    for t in range(length):
        y_t, s = causal_conv1d_step(x[..., t], w, b, s)
        torch.testing.assert_close(y_t, y[..., t], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s, final)
