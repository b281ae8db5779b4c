"""Common interface of masking strategies and the random draws they share.

Every random choice is drawn from an explicit ``torch.Generator`` so that masks are
reproducible from a seed (the trainer seeds one per batch).

Dimension legend: ``T`` frames (in tubelets), ``H``/``W`` grid rows/columns (in patches),
``N`` flattened token count (``T * H * W`` or ``H * W``, row-major).
"""

from __future__ import annotations

import abc
import math

import torch

from mambajepa.core.errors import ConfigError
from mambajepa.masks.spec import MaskSpec


class MaskStrategy(abc.ABC):
    """Draws :class:`MaskSpec` s for inputs of a fixed token layout."""

    #: number of tokens of the input the masks index into
    num_tokens: int

    @abc.abstractmethod
    def sample(self, generator: torch.Generator) -> MaskSpec:
        """Draw the mask of one sample.

        Args:
            generator: source of every random choice.

        Returns:
            A valid mask over ``num_tokens`` tokens.
        """

    def sample_batch(self, batch_size: int, generator: torch.Generator) -> list[MaskSpec]:
        """Draw the masks of a batch (strategies that share block sizes across a batch override this).

        Args:
            batch_size: number of masks.
            generator: source of every random choice.

        Returns:
            ``batch_size`` masks.
        """
        return [self.sample(generator) for _ in range(batch_size)]


def uniform(generator: torch.Generator, low: float, high: float) -> float:
    """One draw from ``U(low, high)``.

    Args:
        generator: source of randomness.
        low: lower bound.
        high: upper bound.

    Returns:
        A float in ``[low, high]``.
    """
    return low + (high - low) * torch.rand((), generator=generator).item()


def randint(generator: torch.Generator, high: int) -> int:
    """One draw from ``{0, ..., high - 1}``.

    Args:
        generator: source of randomness.
        high: number of values (>= 1).

    Returns:
        An int in ``[0, high)``.
    """
    return int(torch.randint(high, (), generator=generator).item())


def check_range(name: str, value: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    """Check that ``value`` is an ordered pair inside ``[low, high]``.

    Args:
        name: argument name used in the error.
        value: ``(min, max)`` pair.
        low: smallest allowed value.
        high: largest allowed value.

    Returns:
        The pair as floats.

    Raises:
        ConfigError: naming ``name`` and the bad pair.
    """
    lo, hi = float(value[0]), float(value[1])
    if not (low <= lo <= hi <= high):
        raise ConfigError(f"{name}={value!r} must be a pair (min, max) with {low} <= min <= max <= {high}")
    return lo, hi


def check_grid(name: str, grid: tuple[int, ...], dims: int) -> tuple[int, ...]:
    """Check that ``grid`` holds ``dims`` positive sizes.

    Args:
        name: argument name used in the error.
        grid: sizes per axis.
        dims: expected number of axes.

    Returns:
        The sizes as ints.

    Raises:
        ConfigError: naming ``name`` and the bad grid.
    """
    grid = tuple(int(g) for g in grid)
    if len(grid) != dims or any(g < 1 for g in grid):
        raise ConfigError(f"{name}={grid!r} must hold {dims} positive sizes")
    return grid


def block_hw(
    generator: torch.Generator,
    scale: tuple[float, float],
    aspect: tuple[float, float],
    height: int,
    width: int,
) -> tuple[int, int]:
    """Draw the height and width of a rectangular block of a ``height x width`` grid.

    The area fraction is drawn from ``U(scale)`` and the aspect ratio ``h / w`` from
    ``U(aspect)`` (as in I-JEPA), then rounded to whole patches inside the grid.

    Args:
        generator: source of randomness.
        scale: ``(min, max)`` area fraction.
        aspect: ``(min, max)`` of ``h / w``.
        height: grid rows.
        width: grid columns.

    Returns:
        ``(h, w)`` with ``1 <= h <= height`` and ``1 <= w <= width``.
    """
    area = uniform(generator, *scale) * height * width
    ratio = uniform(generator, *aspect)
    h = round(math.sqrt(area * ratio))
    w = round(math.sqrt(area / ratio))
    return min(max(h, 1), height), min(max(w, 1), width)


def rectangle(top: int, left: int, h: int, w: int, width: int) -> torch.Tensor:
    """Row-major flat indices of the ``h x w`` rectangle at ``(top, left)`` of a grid ``width`` wide.

    Args:
        top: first row.
        left: first column.
        h: rows of the rectangle.
        w: columns of the rectangle.
        width: columns of the grid.

    Returns:
        ``(h * w,)`` int64 indices in row-major order.
    """
    rows = torch.arange(top, top + h).unsqueeze(1)  # (h, 1)
    cols = torch.arange(left, left + w).unsqueeze(0)  # (1, w)
    return (rows * width + cols).reshape(-1)  # (h*w,)


def complement(indices: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Sorted indices of ``[0, num_tokens)`` that are not in ``indices``.

    Args:
        indices: int64 indices inside ``[0, num_tokens)``.
        num_tokens: size of the index range.

    Returns:
        ``(num_tokens - len(unique(indices)),)`` int64 indices.
    """
    keep = torch.ones(num_tokens, dtype=torch.bool)
    keep[indices] = False
    return keep.nonzero().squeeze(1)
