"""Which tokens a JEPA context encoder sees and which ones the predictor must reconstruct.

A :class:`MaskSpec` describes one sample: indices into the flattened token grid (row-major
``(T, H, W)`` or ``(H, W)``, or sequence order) of the *context* (visible to the context
encoder) and of the *target* (predicted in latent space). :meth:`MaskSpec.validate` raises a
typed :class:`MaskError` subclass naming the offending indices, so a bad mask fails at its
source instead of deep inside an encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from mambajepa.core.errors import MambaJepaError

IndexLike = torch.Tensor | Sequence[int]


class MaskError(MambaJepaError, ValueError):
    """A context/target mask that cannot be used for a JEPA step."""


class EmptyContext(MaskError):
    """The context encoder would see no token."""


class EmptyTarget(MaskError):
    """There is no token to predict."""


class IndexOutOfBounds(MaskError):
    """An index is negative or not smaller than the number of tokens."""


class DuplicateIndex(MaskError):
    """The same token index appears twice in the context or in the target."""


class OverlappingMasks(MaskError):
    """A token is both visible to the context encoder and a prediction target."""


def _as_index_tensor(indices: IndexLike, what: str) -> torch.Tensor:
    t = indices if isinstance(indices, torch.Tensor) else torch.as_tensor(list(indices), dtype=torch.long)
    if t.dim() != 1:
        raise MaskError(f"{what} must be a 1-D index tensor, got shape {tuple(t.shape)}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise MaskError(f"{what} must hold integer indices, got dtype {t.dtype}")
    return t.long()


def _preview(values: torch.Tensor, limit: int = 8) -> str:
    items = values.tolist()
    shown = ", ".join(str(v) for v in items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"


@dataclass(frozen=True, eq=False)
class MaskSpec:
    """Context and target token indices of one sample.

    Attributes:
        context_indices: ``(Kc,)`` int64, tokens the context encoder sees.
        target_indices: ``(Kt,)`` int64, tokens the predictor reconstructs (the union of
            ``target_blocks`` when those are given).
        total_tokens: number of tokens of the full input.
        target_blocks: optional ``(Kb,)`` index tensors, one per target block, for predictors
            that predict each block separately (I-JEPA); empty when the target is one set.
    """

    context_indices: torch.Tensor
    target_indices: torch.Tensor
    total_tokens: int
    target_blocks: tuple[torch.Tensor, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "context_indices", _as_index_tensor(self.context_indices, "context_indices"))
        object.__setattr__(self, "target_indices", _as_index_tensor(self.target_indices, "target_indices"))
        blocks = tuple(_as_index_tensor(b, f"target_blocks[{i}]") for i, b in enumerate(self.target_blocks))
        object.__setattr__(self, "target_blocks", blocks)

    @property
    def mask_ratio(self) -> float:
        """Fraction of all tokens that are prediction targets."""
        return self.target_indices.numel() / self.total_tokens if self.total_tokens > 0 else 0.0

    @property
    def context_ratio(self) -> float:
        """Fraction of all tokens visible to the context encoder."""
        return self.context_indices.numel() / self.total_tokens if self.total_tokens > 0 else 0.0

    def validate(self) -> MaskSpec:
        """Check that the mask can drive a strict JEPA step.

        Returns:
            ``self``, so that ``spec = MaskSpec(...).validate()`` reads naturally.

        Raises:
            EmptyContext: no context index.
            EmptyTarget: no target index.
            IndexOutOfBounds: an index outside ``[0, total_tokens)``.
            DuplicateIndex: an index repeated within the context, the target or a target block.
            OverlappingMasks: an index both in the context and in the target.
        """
        n = self.total_tokens
        if self.context_indices.numel() == 0:
            raise EmptyContext(f"context_indices is empty (total_tokens={n}); the encoder would see nothing")
        if self.target_indices.numel() == 0:
            raise EmptyTarget(f"target_indices is empty (total_tokens={n}); there is nothing to predict")
        named = [("context_indices", self.context_indices), ("target_indices", self.target_indices)]
        named += [(f"target_blocks[{i}]", b) for i, b in enumerate(self.target_blocks)]
        for name, idx in named:
            bad = idx[(idx < 0) | (idx >= n)]
            if bad.numel():
                raise IndexOutOfBounds(f"{name} holds {_preview(bad)}, outside [0, {n}) for total_tokens={n}")
        for name, idx in named:
            uniq, counts = torch.unique(idx, return_counts=True)
            if (counts > 1).any():
                raise DuplicateIndex(
                    f"{name} repeats {_preview(uniq[counts > 1])}; each token may appear once"
                )
        both = self.context_indices[torch.isin(self.context_indices, self.target_indices)]
        if both.numel():
            raise OverlappingMasks(
                f"indices {_preview(both)} are in both context_indices and target_indices; they must be disjoint"
            )
        for i, block in enumerate(self.target_blocks):
            stray = block[~torch.isin(block, self.target_indices)]
            if stray.numel():
                raise MaskError(
                    f"target_blocks[{i}] holds {_preview(stray)}, which are not in target_indices"
                )
        return self


def mask_ratio(spec: MaskSpec) -> float:
    """Fraction of the tokens of ``spec`` that are prediction targets.

    Args:
        spec: a mask.

    Returns:
        ``len(target_indices) / total_tokens``.
    """
    return spec.mask_ratio
