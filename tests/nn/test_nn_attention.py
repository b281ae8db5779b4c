"""SDPA attention and the transformer block against explicit-softmax references (values and gradients)."""

import pytest
import torch

from mambajepa.core.errors import ShapeError
from mambajepa.nn import Attention, RotaryEmbedding, TransformerBlock, attention_reference


def _grads(module, x, fn):
    module.zero_grad()
    x = x.detach().requires_grad_(True)
    out = fn(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), x.grad.clone(), {n: p.grad.clone() for n, p in module.named_parameters()}


@pytest.mark.parametrize("use_rope", [False, True])
@pytest.mark.parametrize("mask", [None, "bool", "float"])
def test_sdpa_matches_reference(use_rope, mask):
    torch.manual_seed(0)
    attn = Attention(48, 4)
    x = torch.randn(2, 9, 48)
    rope = RotaryEmbedding(12, 3)(torch.randint(0, 5, (2, 9, 3))) if use_rope else None
    attn_mask = None
    if mask == "bool":
        attn_mask = torch.rand(2, 1, 9, 9) > 0.3
        attn_mask[..., 0] = True  # every query sees at least one key
    elif mask == "float":
        attn_mask = torch.randn(2, 1, 9, 9)
    fast = _grads(attn, x, lambda t: attn(t, rope=rope, attn_mask=attn_mask))
    ref = _grads(attn, x, lambda t: attention_reference(t, attn, rope=rope, attn_mask=attn_mask))
    torch.testing.assert_close(fast[0], ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast[1], ref[1], rtol=1e-4, atol=1e-5)
    for name in fast[2]:
        torch.testing.assert_close(fast[2][name], ref[2][name], rtol=1e-4, atol=1e-5)


def test_block_is_prenorm_residual():
    torch.manual_seed(1)
    block = TransformerBlock(32, 2, mlp_ratio=2.0).eval()
    x = torch.randn(3, 5, 32)
    h = x + attention_reference(block.norm1(x), block.attn)
    expected = h + block.mlp.fc2(torch.nn.functional.gelu(block.mlp.fc1(block.norm2(h))))
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    assert block.mlp.fc1.out_features == 64


def test_attention_rejects_wrong_width():
    with pytest.raises(ShapeError, match="48"):
        Attention(48, 4)(torch.randn(2, 3, 40))
    with pytest.raises(ValueError, match="divisible"):
        Attention(50, 4)
