"""Attentive probe: learned queries cross-attend over frozen token features, then linear heads.

V-JEPA (Bardes et al., 2024) evaluates frozen encoders with an attentive probe, which can read
information that mean pooling washes out (where an object is, which patch holds it). To fit
every task in one pass, the probe holds one query and one linear head per task over a shared
attention layer; the tasks' cross-entropies are summed.

Dimension legend: ``M`` items, ``N`` tokens, ``D`` feature width, ``T`` tasks, ``K_t`` classes of task t.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.core.errors import ShapeError

__all__ = ["AttentiveProbe", "fit_attentive_probe", "attentive_probe_accuracy"]


class AttentiveProbe(nn.Module):
    """Cross-attention pooling with one learned query per task, LayerNorm and per-task linear heads.

    Args:
        dim: token width D.
        num_classes: classes of each task, in task order.
        num_heads: attention heads (must divide D; falls back to 1 otherwise).
    """

    def __init__(self, dim: int, num_classes: list[int], num_heads: int = 4) -> None:
        super().__init__()
        heads = num_heads if dim % num_heads == 0 else 1
        self.queries = nn.Parameter(torch.randn(1, len(num_classes), dim) * 0.02)
        self.in_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.heads = nn.ModuleList(nn.Linear(dim, k) for k in num_classes)

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """``(B, N, D) ->`` one ``(B, K_t)`` score tensor per task."""
        kv = self.in_norm(tokens)
        q = self.queries.expand(tokens.shape[0], -1, -1)  # (B, T, D)
        pooled, _ = self.attn(q, kv, kv, need_weights=False)  # (B, T, D)
        pooled = self.norm(pooled)
        return [head(pooled[:, t]) for t, head in enumerate(self.heads)]


def _check(tokens: torch.Tensor, labels: list[torch.Tensor]) -> None:
    if tokens.dim() != 3 or any(y.shape != tokens.shape[:1] for y in labels):
        raise ShapeError(
            f"expected tokens (M, N, D) and labels (M,), got {tuple(tokens.shape)} and "
            f"{[tuple(y.shape) for y in labels]}"
        )


def fit_attentive_probe(
    tokens: torch.Tensor,
    labels: list[torch.Tensor],
    num_classes: list[int],
    steps: int = 150,
    lr: float = 3e-3,
    batch_size: int = 256,
    weight_decay: float = 1e-2,
    seed: int = 0,
) -> AttentiveProbe:
    """Fit a multi-task attentive probe with AdamW on random mini-batches.

    Args:
        tokens: ``(M, N, D)`` frozen token features.
        labels: one ``(M,)`` int64 label tensor per task.
        num_classes: classes per task.
        steps: optimizer steps.
        lr: AdamW learning rate (cosine-decayed to 0).
        batch_size: items per step.
        weight_decay: AdamW weight decay.
        seed: seeds the initialisation and the mini-batches.

    Returns:
        The fitted probe (in eval mode).

    Raises:
        ShapeError: mismatched shapes.
    """
    _check(tokens, labels)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        probe = AttentiveProbe(tokens.shape[-1], list(num_classes))
    optimizer = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    probe.train()
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randint(tokens.shape[0], (min(batch_size, tokens.shape[0]),), generator=generator)
            scores = probe(tokens[idx])
            loss = sum(F.cross_entropy(s, y[idx]) for s, y in zip(scores, labels))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return probe.eval()


@torch.no_grad()
def attentive_probe_accuracy(
    train_tokens: torch.Tensor,
    train_labels: list[torch.Tensor],
    test_tokens: torch.Tensor,
    test_labels: list[torch.Tensor],
    num_classes: list[int],
    steps: int = 150,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[float]:
    """Held-out accuracy per task of an attentive probe fitted on the training tokens.

    Args:
        train_tokens: ``(M, N, D)``.
        train_labels: one ``(M,)`` tensor per task.
        test_tokens: ``(M', N, D)``.
        test_labels: one ``(M',)`` tensor per task.
        num_classes: classes per task.
        steps: optimizer steps.
        lr: learning rate.
        seed: seed of the fit.

    Returns:
        One accuracy in ``[0, 1]`` per task.

    Raises:
        ShapeError: mismatched shapes.
    """
    _check(test_tokens, test_labels)
    probe = fit_attentive_probe(train_tokens, train_labels, num_classes, steps, lr, seed=seed)
    chunks = [probe(chunk) for chunk in test_tokens.split(512)]
    preds = [torch.cat([c[t] for c in chunks]).argmax(-1) for t in range(len(num_classes))]
    return [float((p == y).float().mean()) for p, y in zip(preds, test_labels)]
