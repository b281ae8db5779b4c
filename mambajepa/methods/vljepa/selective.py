"""Selective decoding of a stream: decode text only when the meaning changes.

Two ways:

* :class:`SelectiveDecoder` (online, the design input's drift trigger): a ring of the last
  ``window_size`` monitored vectors; ``drift = ||s_t - s_(t-window)||``, smoothed
  ``m = smoothing * drift + (1 - smoothing) * m``; decode when ``m > drift_threshold``. The first
  frame always decodes; after a decode ``m`` restarts at 0 and the ring keeps only the current
  vector, so one cut triggers one decode rather than a burst.
* :func:`segment_stream` (offline, the VL-JEPA paper): temporally constrained agglomerative
  clustering of the predicted embeddings with Ward linkage; one decode per segment.

Dimension legend: ``T`` frames, ``D`` width of the monitored vectors.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch

from mambajepa.core.errors import ConfigError, ShapeError

__all__ = [
    "SelectiveDecodeConfig",
    "SelectiveDecoder",
    "cut_scores",
    "segment_midpoints",
    "segment_stream",
    "segments_from_decodes",
    "smooth_embeddings",
    "uniform_decode_frames",
]


@dataclass
class SelectiveDecodeConfig:
    """Parameters of the drift trigger."""

    window_size: int = 8  # compare against the vector this many frames ago
    drift_threshold: float = 0.5  # decode when the smoothed drift exceeds this
    smoothing: float = 0.3  # weight of the newest drift in the exponential smoothing

    def __post_init__(self) -> None:
        if self.window_size < 1:
            raise ConfigError(f"window_size={self.window_size} must be >= 1")
        if self.drift_threshold < 0:
            raise ConfigError(f"drift_threshold={self.drift_threshold} must be >= 0")
        if not 0.0 < self.smoothing <= 1.0:
            raise ConfigError(f"smoothing={self.smoothing} must lie in (0, 1]")


class SelectiveDecoder:
    """Streaming drift trigger over monitored vectors (predictor states or predicted embeddings)."""

    def __init__(
        self,
        config: SelectiveDecodeConfig | None = None,
        *,
        window_size: int = 8,
        drift_threshold: float = 0.5,
        smoothing: float = 0.3,
    ) -> None:
        self.config = config or SelectiveDecodeConfig(window_size, drift_threshold, smoothing)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: empty ring, drift 0, counters 0."""
        self._ring: deque[torch.Tensor] = deque(maxlen=self.config.window_size)
        self._m = 0.0
        self._size: int | None = None
        self._decodes = 0
        self._frames = 0

    @property
    def decode_count(self) -> int:
        return self._decodes

    @property
    def frames_seen(self) -> int:
        return self._frames

    def current_drift(self) -> float:
        """The smoothed drift ``m``."""
        return self._m

    def should_decode(self, state: torch.Tensor) -> bool:
        """Push the vector of the next frame; True when the decoder should run now.

        Raises:
            ShapeError: a vector of another size than the first one of the stream.
        """
        s = state.detach().reshape(-1).float()
        if self._size is None:
            self._size = s.numel()
        elif s.numel() != self._size:
            raise ShapeError(f"state of {s.numel()} values; this stream's states have {self._size}")
        first = self._frames == 0
        self._frames += 1
        if first:
            self._ring.append(s)
            self._decodes += 1
            return True
        drift = float(torch.linalg.vector_norm(s - self._ring[0]))  # the oldest held vector
        c = self.config
        self._m = c.smoothing * drift + (1.0 - c.smoothing) * self._m
        self._ring.append(s)
        if self._m > c.drift_threshold:
            self._m = 0.0
            self._ring.clear()
            self._ring.append(s)
            self._decodes += 1
            return True
        return False

    def run(self, states: torch.Tensor) -> list[int]:
        """Frames of a whole stream ``(T, ...)`` at which the trigger decodes (starts from a reset)."""
        self.reset()
        return [t for t in range(states.shape[0]) if self.should_decode(states[t])]


def smooth_embeddings(emb: torch.Tensor, kernel: int) -> torch.Tensor:
    """Average pooling of ``(T, D)`` along time with edge replication (odd ``kernel >= 1``)."""
    if kernel < 1 or kernel % 2 == 0:
        raise ConfigError(f"kernel={kernel} must be an odd number >= 1")
    if kernel == 1:
        return emb
    half = kernel // 2
    padded = torch.cat([emb[:1].expand(half, -1), emb, emb[-1:].expand(half, -1)])
    return padded.unfold(0, kernel, 1).mean(-1)


def segment_stream(
    emb: torch.Tensor,
    num_segments: int | None = None,
    distance_threshold: float | None = None,
    smooth: int = 1,
) -> list[tuple[int, int]]:
    """Split a stream into contiguous segments by Ward-linkage clustering of adjacent frames.

    Args:
        emb: ``(T, D)`` per-frame embeddings.
        num_segments: stop at this many segments, or
        distance_threshold: stop when the cheapest merge costs more than this.
        smooth: average-pooling kernel applied first.

    Returns:
        Half-open ``(start, end)`` frame ranges covering ``0..T`` in order.

    Raises:
        ConfigError: not exactly one stopping rule, or ``num_segments < 1``.
    """
    if (num_segments is None) == (distance_threshold is None):
        raise ConfigError("give exactly one of num_segments and distance_threshold")
    if num_segments is not None and num_segments < 1:
        raise ConfigError(f"num_segments={num_segments} must be >= 1")
    if emb.dim() != 2:
        raise ShapeError(f"emb must be (T, D), got {tuple(emb.shape)}")
    x = smooth_embeddings(emb.double(), smooth)
    starts = list(range(x.shape[0]))
    sizes = [1] * x.shape[0]
    means = [x[t] for t in range(x.shape[0])]
    while len(starts) > 1:
        costs = [
            sizes[i]
            * sizes[i + 1]
            / (sizes[i] + sizes[i + 1])
            * float((means[i] - means[i + 1]).square().sum())
            for i in range(len(starts) - 1)
        ]
        i = min(range(len(costs)), key=costs.__getitem__)
        if num_segments is not None and len(starts) <= num_segments:
            break
        if distance_threshold is not None and costs[i] > distance_threshold:
            break
        n = sizes[i] + sizes[i + 1]
        means[i] = (sizes[i] * means[i] + sizes[i + 1] * means[i + 1]) / n
        sizes[i] = n
        del starts[i + 1], sizes[i + 1], means[i + 1]
    ends = starts[1:] + [x.shape[0]]
    return list(zip(starts, ends))


def segment_midpoints(segments: list[tuple[int, int]]) -> list[int]:
    """The middle frame of each ``(start, end)`` segment."""
    return [(start + end - 1) // 2 for start, end in segments]


def segments_from_decodes(decode_frames: list[int], num_frames: int) -> list[tuple[int, int]]:
    """Frames each decode describes: from it to the next decode (frames before the first belong to it)."""
    frames = sorted(set(decode_frames))
    if not frames:
        return [(0, num_frames)]
    bounds = [0, *frames[1:], num_frames]
    return list(zip(bounds[:-1], bounds[1:]))


def uniform_decode_frames(num_frames: int, every: int) -> list[int]:
    """Decode every ``every`` frames from frame 0."""
    if every < 1:
        raise ConfigError(f"every={every} must be >= 1")
    return list(range(0, num_frames, every))


def cut_scores(
    decode_frames: list[int], true_starts, num_frames: int, tolerance: int = 2
) -> dict[str, float]:
    """Recall and precision of scene cuts by decodes.

    A cut (a scene start after the first) is caught by a decode in ``[cut, cut + tolerance]``;
    each cut is matched by at most one decode, greedily in time order. Precision counts decodes
    after frame 0. An empty denominator gives 1.0.

    Returns:
        ``{"recall", "precision", "decodes"}``.
    """
    cuts = [int(c) for c in list(true_starts)[1:]]
    decodes = sorted(int(d) for d in decode_frames)
    later = [d for d in decodes if d > 0]
    matched: set[int] = set()
    hits = 0
    for d in later:
        for c in cuts:
            if c not in matched and c <= d <= c + tolerance:
                matched.add(c)
                hits += 1
                break
    recall = len(matched) / len(cuts) if cuts else 1.0
    precision = hits / len(later) if later else 1.0
    return {"recall": recall, "precision": precision, "decodes": float(len(decodes))}
