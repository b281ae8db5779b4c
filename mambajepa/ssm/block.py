"""Residual blocks in the ``mamba_ssm`` style: ``(hidden, residual) -> (hidden, residual)``.

Dimensions: ``B`` batch, ``L`` length, ``D`` width.

A block adds its input to the running residual stream, normalises it, mixes it, and hands the
mixer output and the residual to the next block (the "prenorm residual" of ``mamba_ssm``): the
sum ``hidden + residual`` is only formed at the start of the next block or by the final norm.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.nn.drop_path import DropPath


class GatedMLP(nn.Module):
    """``fc2(a * silu(g))`` with ``[a, g] = fc1(x)`` (``mamba_ssm.modules.mlp.GatedMLP`` layout).

    Args:
        in_features: input width.
        hidden_features: inner width (default ``8/3 * in_features`` rounded up to ``multiple_of``).
        out_features: output width (default ``in_features``).
        bias: biases in ``fc1``/``fc2``.
        multiple_of: rounding of the default hidden width.
        device, dtype: factory arguments.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        bias: bool = False,
        multiple_of: int = 128,
        device=None,
        dtype=None,
    ):
        super().__init__()
        out_features = out_features or in_features
        hidden = hidden_features or int(8 * in_features / 3)
        hidden = (hidden + multiple_of - 1) // multiple_of * multiple_of
        self.fc1 = nn.Linear(in_features, 2 * hidden, bias=bias, device=device, dtype=dtype)
        self.fc2 = nn.Linear(hidden, out_features, bias=bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(a * F.silu(gate))


class Block(nn.Module):
    """norm -> mixer (-> norm2 -> mlp), with the residual stream carried alongside.

    Args:
        dim: width D.
        mixer_cls: ``mixer_cls(dim) -> nn.Module`` (any Mamba1/2/3 or bidirectional mixer).
        mlp_cls: ``mlp_cls(dim) -> nn.Module`` or ``nn.Identity`` for no MLP sub-block.
        norm_cls: ``norm_cls(dim) -> nn.Module`` (``RMSNorm`` or ``nn.LayerNorm``).
        fused_add_norm: accepted for ``mamba_ssm`` compatibility; the add and the norm are the
            same operations either way (no fused kernel is used).
        residual_in_fp32: keep the residual stream in at least fp32 (``promote(dtype, fp32)``:
            fp32 for low-precision inputs, fp64 stays fp64).
        drop_path: stochastic-depth probability applied to the branch output before it joins the
            residual (VideoMamba's placement).
    """

    def __init__(
        self,
        dim: int,
        mixer_cls: Callable[[int], nn.Module],
        mlp_cls: Callable[[int], nn.Module] = nn.Identity,
        norm_cls: Callable[[int], nn.Module] = nn.LayerNorm,
        fused_add_norm: bool = False,
        residual_in_fp32: bool = False,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.residual_in_fp32 = residual_in_fp32
        self.fused_add_norm = fused_add_norm
        self.norm = norm_cls(dim)
        self.mixer = mixer_cls(dim)
        self.drop_path = DropPath(drop_path)
        if mlp_cls is not nn.Identity:
            self.norm2 = norm_cls(dim)
            self.mlp = mlp_cls(dim)
        else:
            self.mlp = None

    def _add_norm(self, hidden: torch.Tensor, residual: torch.Tensor | None, norm: nn.Module):
        residual = hidden if residual is None else residual + self.drop_path(hidden)
        weight = getattr(norm, "weight", None)
        normed = norm(residual if weight is None else residual.to(weight.dtype))
        if self.residual_in_fp32:
            residual = residual.to(torch.promote_types(residual.dtype, torch.float32))
        return normed, residual

    def _mlp(self, hidden: torch.Tensor, residual: torch.Tensor):
        if self.mlp is None:
            return hidden, residual
        hidden, residual = self._add_norm(hidden, residual, self.norm2)
        return self.mlp(hidden), residual

    def forward(
        self,
        hidden: torch.Tensor,
        residual: torch.Tensor | None = None,
        state=None,
        return_state: bool = False,
    ):
        """Run the block on a sequence.

        Args:
            hidden: ``(B, L, D)``: the previous block's output (or the embeddings for the first).
            residual: ``(B, L, D)`` residual stream, None for the first block.
            state: the mixer's streaming state (for mixers that stream).
            return_state: also return the mixer's state after the last position.

        Returns:
            ``(hidden, residual)``, or ``(hidden, residual, state)`` when ``return_state``.
        """
        normed, residual = self._add_norm(hidden, residual, self.norm)
        if return_state or state is not None:
            hidden, state = self.mixer(normed, state=state, return_state=True)
        else:
            hidden = self.mixer(normed)
        hidden, residual = self._mlp(hidden, residual)
        return (hidden, residual, state) if return_state else (hidden, residual)

    def step(self, hidden: torch.Tensor, residual: torch.Tensor | None, state):
        """One position: ``hidden``/``residual`` ``(B, D)``; returns ``(hidden, residual, state)``."""
        normed, residual = self._add_norm(hidden, residual, self.norm)
        hidden, state = self.mixer.step(normed, state)
        hidden, residual = self._mlp(hidden, residual)
        return hidden, residual, state

    def init_state(self, batch_size: int, device=None, dtype=None):
        """The mixer's zero state."""
        return self.mixer.init_state(batch_size, device=device, dtype=dtype)
