"""k-nearest-neighbour classification of frozen features (cosine similarity, weighted vote).

Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination" (2018) and
DINO (Caron et al., 2021): each held-out item takes the ``k`` most cosine-similar training items
and votes with weights ``exp(sim / T)``.

Dimension legend: ``M`` training items, ``Q`` queries, ``D`` feature width, ``K`` classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mambajepa.core.errors import ShapeError

__all__ = ["knn_predict", "knn_accuracy"]


def knn_predict(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    query_x: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
) -> torch.Tensor:
    """Classes of the queries by a weighted vote of their nearest training items.

    Features are centred on the training mean and L2-normalised before the cosine similarity.

    Args:
        train_x: ``(M, D)``.
        train_y: ``(M,)`` int64 labels.
        query_x: ``(Q, D)``.
        num_classes: K.
        k: neighbours (capped at M).
        temperature: vote weight ``exp(sim / temperature)``.

    Returns:
        ``(Q,)`` predicted classes.

    Raises:
        ShapeError: mismatched shapes.
    """
    if (
        train_x.dim() != 2
        or query_x.dim() != 2
        or train_x.shape[1] != query_x.shape[1]
        or train_y.shape != train_x.shape[:1]
    ):
        raise ShapeError(
            f"expected train (M, D), labels (M,), queries (Q, D); got {tuple(train_x.shape)}, "
            f"{tuple(train_y.shape)}, {tuple(query_x.shape)}"
        )
    mean = train_x.mean(dim=0)
    keys = F.normalize(train_x.float() - mean, dim=1)  # (M, D)
    queries = F.normalize(query_x.float() - mean, dim=1)  # (Q, D)
    sim = queries @ keys.T  # (Q, M)
    top_sim, top_idx = sim.topk(min(k, keys.shape[0]), dim=1)  # (Q, k)
    votes = torch.zeros(queries.shape[0], num_classes)  # (Q, K)
    votes.scatter_add_(1, train_y[top_idx], (top_sim / temperature).exp())
    return votes.argmax(dim=1)


def knn_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    k: int = 20,
) -> float:
    """Held-out accuracy of :func:`knn_predict`.

    Returns:
        Accuracy in ``[0, 1]``.
    """
    pred = knn_predict(train_x, train_y, test_x, num_classes, k)
    return float((pred == test_y).float().mean())
