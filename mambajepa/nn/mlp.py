"""Two-layer feed-forward network of transformer blocks (``fc1 → act → fc2``, timm names)."""

from __future__ import annotations

import torch
from torch import nn

_ACTIVATIONS = {"gelu": lambda: nn.GELU(), "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "silu": nn.SiLU}


class Mlp(nn.Module):
    """``fc2(drop(act(fc1(x))))`` applied over the last dimension.

    Args:
        in_features: input width D.
        hidden_features: inner width (e.g. ``4 * D``).
        out_features: output width; defaults to ``in_features``.
        act: ``"gelu"`` (exact erf, as V-JEPA 2), ``"gelu_tanh"`` or ``"silu"``.
        drop: dropout after the activation and after ``fc2``.
        bias: whether both linear layers carry a bias.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int | None = None,
        act: str = "gelu",
        drop: float = 0.0,
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if act not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; expected one of {sorted(_ACTIVATIONS)}")
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias, device=device, dtype=dtype)
        self.act = _ACTIVATIONS[act]()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias, device=device, dtype=dtype)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
