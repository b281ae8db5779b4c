"""Multi-head self-attention on ``F.scaled_dot_product_attention`` with optional RoPE on q and k.

Parameter names follow timm / V-JEPA 2 (``qkv`` one fused projection, ``proj`` the output), so
their weights load after prefix stripping only.

Dimension legend:
    B batch, N tokens, D model width, H heads, Dh = D / H head width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.core.errors import ShapeError
from mambajepa.nn.rope import RopeTables


class Attention(nn.Module):
    """Self-attention ``proj(softmax(q kᵀ / √Dh) v)`` with q, k optionally rotated by RoPE.

    Args:
        dim: model width D.
        num_heads: number of heads H (must divide D).
        qkv_bias: whether the fused q/k/v projection has a bias.
        attn_drop: dropout on attention weights (training only).
        proj_drop: dropout after the output projection.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, device=device, dtype=dtype)
        self.proj = nn.Linear(dim, dim, device=device, dtype=dtype)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self,
        x: torch.Tensor,
        rope: RopeTables | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend over the tokens of ``x``.

        Args:
            x: ``(B, N, D)``.
            rope: tables for the N tokens' positions (``(B or 1, 1, N, Dh)``), or None.
            attn_mask: boolean (True = may attend) or additive mask broadcastable to
                ``(B, H, N, N)``, or None.

        Returns:
            ``(B, N, D)``.

        Raises:
            ShapeError: if ``x`` is not 3-D of width D.
        """
        if x.ndim != 3 or x.shape[-1] != self.num_heads * self.head_dim:
            raise ShapeError(
                f"attention expects (B, N, {self.num_heads * self.head_dim}), got {tuple(x.shape)}"
            )
        B, N, D = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim)  # (B, N, 3, H, Dh)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, H, N, Dh)
        v = qkv[2]
        if rope is not None:
            q, k = rope.apply(qkv[:2]).unbind(0)  # q and k rotated in one pass: (B, H, N, Dh) each
        else:
            q, k = qkv[0], qkv[1]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop if self.training else 0.0
        )  # (B, H, N, Dh)
        out = out.transpose(1, 2).reshape(B, N, D)  # (B, N, D)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, head_dim={self.head_dim}"


def attention_reference(
    x: torch.Tensor, attn: Attention, rope: RopeTables | None = None, attn_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Explicit-softmax form of :meth:`Attention.forward` (no dropout), the ground truth for tests.

    Args:
        x: ``(B, N, D)``.
        attn: the module whose weights are used.
        rope: optional rotary tables.
        attn_mask: optional boolean (True = may attend) or additive mask.

    Returns:
        ``(B, N, D)``.
    """
    B, N, D = x.shape
    H, Dh = attn.num_heads, attn.head_dim
    q, k, v = attn.qkv(x).chunk(3, dim=-1)  # (B, N, D) each
    q, k, v = (t.reshape(B, N, H, Dh).transpose(1, 2) for t in (q, k, v))  # (B, H, N, Dh)
    if rope is not None:
        q, k = rope.apply(q), rope.apply(k)
    scores = q @ k.transpose(-1, -2) / Dh**0.5  # (B, H, N, N)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    out = scores.softmax(-1) @ v  # (B, H, N, Dh)
    return attn.proj(out.transpose(1, 2).reshape(B, N, D))  # (B, N, H·Dh) -> (B, N, D)
