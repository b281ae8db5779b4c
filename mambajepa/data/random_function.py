"""Samples of a fixed random MLP: the in-memory data set of the ``mlp_regression`` method.

A frozen random "teacher" MLP (seeded by ``seed``) maps Gaussian inputs to targets; splits draw
different inputs of the same function. Everything is generated once in memory.

Dimensions: ``N`` samples, ``I`` input features, ``Ht`` teacher hidden width, ``O`` outputs.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

__all__ = ["RandomFunctionDataset"]


class RandomFunctionDataset(Dataset):
    """Pairs ``{"x": (I,), "y": (O,)}`` of a fixed random teacher MLP, generated once in memory.

    Args:
        num: number of samples.
        in_dim: input features.
        out_dim: outputs.
        teacher_hidden: hidden width of the teacher.
        seed: teacher weights come from ``seed``; inputs from ``seed`` and ``split``.
        split: ``"train"`` or ``"val"`` (different inputs, same function).
        noise: std of additive target noise.
    """

    def __init__(
        self,
        num: int,
        in_dim: int,
        out_dim: int,
        teacher_hidden: int,
        seed: int,
        split: str,
        noise: float = 0.0,
    ) -> None:
        teacher_gen = torch.Generator().manual_seed(seed)
        w1 = torch.randn(in_dim, teacher_hidden, generator=teacher_gen) / in_dim**0.5  # (I, Ht)
        w2 = torch.randn(teacher_hidden, out_dim, generator=teacher_gen) / teacher_hidden**0.5  # (Ht, O)
        sample_gen = torch.Generator().manual_seed(seed + (1 if split == "train" else 2))
        self.x = torch.randn(num, in_dim, generator=sample_gen)  # (N, I)
        self.y = torch.tanh(self.x @ w1) @ w2  # (N, O)
        if noise > 0:
            self.y = self.y + noise * torch.randn(self.y.shape, generator=sample_gen)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "y": self.y[index]}
