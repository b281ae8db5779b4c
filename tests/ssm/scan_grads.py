"""Shared helper of the scan tests: outputs and input gradients of a scan under a random loss."""

import torch


def scan_grads(fn, inputs, seed):
    """Run ``fn(*inputs)`` -> ``(y, h)`` on fresh leaves and backpropagate a seeded random loss.

    Returns:
        ``(y, h, [gradient of every input that is not None])``.
    """
    leaves = [t.clone().requires_grad_(True) if t is not None else None for t in inputs]
    y, h = fn(*leaves)
    g = torch.Generator().manual_seed(seed + 1)
    loss = (y * torch.randn(y.shape, generator=g)).sum() + (h * torch.randn(h.shape, generator=g)).sum()
    loss.backward()
    return y, h, [t.grad for t in leaves if t is not None]
