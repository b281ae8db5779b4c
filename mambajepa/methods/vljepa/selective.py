"""Selective decoding for VL-JEPA (Chen et al., arXiv 2512.10942): decode text only when the stream changes.

VL-JEPA predicts an embedding per frame and turns it into text with the Y-decoder only when a
description is wanted. Running the decoder on every frame is wasteful: consecutive frames of one
scene say the same thing. Two ways to pick the frames to describe live here:

* **Online, streaming**: :class:`SelectiveDecoder` watches the embedding stream and fires when the
  smoothed drift between the current state and the state ``window_size`` frames back crosses a
  threshold (the design input of this project's VL-JEPA).
* **Offline, segment decoding** (the paper's evaluation): :func:`segment_stream` splits the whole
  stream into temporally contiguous segments by agglomerative clustering with Ward linkage where
  only neighbouring segments may merge; one decode per segment, at :func:`segment_midpoints`.

:func:`cut_scores` scores a set of decode frames against the true scene starts, and
:func:`segments_from_decodes` / :func:`uniform_decode_frames` give the segmentation a set of decodes
implies and the uniform-sampling baseline.

Dimension legend: ``T`` frames in the stream, ``D`` embedding width, ``k`` smoothing kernel.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

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


def _check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``minimum``, else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass
class SelectiveDecodeConfig:
    """Settings of the streaming drift trigger.

    Raises:
        ConfigError: ``window_size < 1``, ``drift_threshold < 0`` (or not finite), or ``smoothing``
            outside ``(0, 1]``.
    """

    window_size: int = 8  # drift is measured against the state this many frames back
    drift_threshold: float = 0.5  # decode when the smoothed drift exceeds this (L2 units of the state)
    smoothing: float = 0.3  # EMA weight of the newest drift: 1 = no smoothing, small = slow to react

    def __post_init__(self) -> None:
        self.window_size = _check_int("window_size", self.window_size, 1)
        if (
            isinstance(self.drift_threshold, bool)
            or not isinstance(self.drift_threshold, (int, float))
            or not math.isfinite(self.drift_threshold)
            or self.drift_threshold < 0
        ):
            raise ConfigError(f"drift_threshold must be a finite number >= 0, got {self.drift_threshold!r}")
        if (
            isinstance(self.smoothing, bool)
            or not isinstance(self.smoothing, (int, float))
            or not (0.0 < self.smoothing <= 1.0)
        ):
            raise ConfigError(f"smoothing must lie in (0, 1], got {self.smoothing!r}")
        self.drift_threshold = float(self.drift_threshold)
        self.smoothing = float(self.smoothing)


class SelectiveDecoder:
    """Streaming drift trigger: says, frame by frame, whether the Y-decoder should describe this state.

    For each new state ``s_t`` (any shape, flattened to a vector):

    1. ``drift = ||s_t - s_ref||_2`` where ``s_ref = s_(t - window_size)`` once ``window_size`` earlier
       states are held, and the oldest held state during warm-up (fewer earlier states);
    2. ``m = smoothing * drift + (1 - smoothing) * m`` (``m`` starts at 0);
    3. decode when ``m > drift_threshold``.

    The first state of a stream always decodes (its drift is 0), so a stream starts with a
    description. After every decode ``m`` is reset to 0 and the ring buffer is cleared down to the
    current state: drift is then measured against the state just described, so a single scene cut
    triggers one decode instead of a burst of ``window_size`` decodes while the pre-cut states leave
    the window.

    Args:
        config: the settings; give either this or the keyword arguments, not both.
        window_size: see :class:`SelectiveDecodeConfig` (default 8).
        drift_threshold: see :class:`SelectiveDecodeConfig` (default 0.5).
        smoothing: see :class:`SelectiveDecodeConfig` (default 0.3).

    Raises:
        ConfigError: a config together with keyword arguments, a config of another type, or
            invalid values.
    """

    def __init__(
        self,
        config: SelectiveDecodeConfig | None = None,
        *,
        window_size: int | None = None,
        drift_threshold: float | None = None,
        smoothing: float | None = None,
    ) -> None:
        overrides = {
            key: value
            for key, value in (
                ("window_size", window_size),
                ("drift_threshold", drift_threshold),
                ("smoothing", smoothing),
            )
            if value is not None
        }
        if config is None:
            config = SelectiveDecodeConfig(**overrides)
        elif not isinstance(config, SelectiveDecodeConfig):
            raise ConfigError(f"config must be a SelectiveDecodeConfig, got {type(config).__name__}")
        elif overrides:
            raise ConfigError(
                f"give either a config or keyword arguments, not both; got config and {overrides}"
            )
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget the stream: empty buffer, ``m = 0``, counters at 0, state size unfixed."""
        # the last window_size states, oldest first: before a push, buffer[0] is the drift reference
        self._buffer: deque[Tensor] = deque(maxlen=self.config.window_size)
        self._smoothed = 0.0
        self._numel: int | None = None
        self._frames_seen = 0
        self._decode_count = 0

    @property
    def frames_seen(self) -> int:
        """States pushed since construction or the last :meth:`reset`."""
        return self._frames_seen

    @property
    def decode_count(self) -> int:
        """Decodes triggered since construction or the last :meth:`reset` (the first frame included)."""
        return self._decode_count

    def current_drift(self) -> float:
        """The smoothed drift ``m`` after the latest state (0 right after a decode)."""
        return self._smoothed

    def _as_vector(self, state: Tensor) -> Tensor:
        """Flatten and copy ``state`` into a float vector, checking its size against the stream's."""
        if not isinstance(state, Tensor):
            raise ShapeError(f"state must be a torch.Tensor, got {type(state).__name__}")
        vec = state.detach().reshape(-1)
        if not vec.is_floating_point():
            vec = vec.float()
        if vec.numel() == 0:
            raise ShapeError(f"state must have at least one element, got shape {tuple(state.shape)}")
        if self._numel is not None and vec.numel() != self._numel:
            raise ShapeError(
                f"state has {vec.numel()} elements (shape {tuple(state.shape)}), "
                f"but the stream's first state fixed {self._numel}"
            )
        # a copy, so that a caller reusing its buffer in place cannot rewrite our history
        return vec.clone()

    def should_decode(self, state: Tensor) -> bool:
        """Push one state and say whether to decode it.

        Args:
            state: the newest embedding, any shape (flattened); its element count must match the
                first state of the stream.

        Returns:
            ``True`` for the first state of a stream and whenever the smoothed drift exceeds
            ``drift_threshold``.

        Raises:
            ShapeError: ``state`` is not a tensor, is empty, or has another size than the first state.
        """
        vec = self._as_vector(state)
        self._frames_seen += 1
        if self._numel is None:
            self._numel = vec.numel()
            self._decoded(vec)
            return True
        reference = self._buffer[0]  # s_(t - window), or the oldest held state while warming up
        drift = torch.linalg.vector_norm(vec - reference.to(vec)).item()
        alpha = self.config.smoothing
        self._smoothed = alpha * drift + (1.0 - alpha) * self._smoothed
        if self._smoothed > self.config.drift_threshold:
            self._decoded(vec)
            return True
        self._buffer.append(vec)  # maxlen drops the oldest once window_size states are held
        return False

    def _decoded(self, vec: Tensor) -> None:
        """Record a decode at ``vec``: reset ``m`` and keep only the current state in the buffer."""
        self._decode_count += 1
        self._smoothed = 0.0
        self._buffer.clear()
        self._buffer.append(vec)

    def run(self, states: Tensor) -> list[int]:
        """Reset, then push a whole stream and list where it decodes.

        Args:
            states: ``(T, ...)`` the stream, one state per leading index.

        Returns:
            The frame indices (into ``states``, increasing) that decode; ``[0, ...]`` when ``T > 0``.

        Raises:
            ShapeError: ``states`` is not a tensor with at least one dimension.
        """
        if not isinstance(states, Tensor) or states.ndim < 1:
            shape = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
            raise ShapeError(f"states must be a (T, ...) tensor, got {shape}")
        self.reset()
        return [t for t in range(states.shape[0]) if self.should_decode(states[t])]


def _check_embeddings(emb: Tensor) -> Tensor:
    """Return ``emb`` as a floating ``(T, D)`` tensor, or raise ShapeError."""
    if not isinstance(emb, Tensor) or emb.ndim != 2:
        shape = tuple(emb.shape) if isinstance(emb, Tensor) else type(emb).__name__
        raise ShapeError(f"emb must be a (T, D) tensor, got {shape}")
    return emb if emb.is_floating_point() else emb.float()


def smooth_embeddings(emb: Tensor, kernel: int) -> Tensor:
    """Average-pool a stream along time, replicating the edge frames so the length is kept.

    Args:
        emb: ``(T, D)`` per-frame embeddings.
        kernel: odd window length ``k >= 1``; 1 returns a copy.

    Returns:
        ``(T, D)``: frame ``t`` is the mean of frames ``t - k//2 .. t + k//2`` (clamped to the stream).

    Raises:
        ShapeError: ``emb`` is not 2-D.
        ConfigError: ``kernel`` is not an odd integer >= 1.
    """
    emb = _check_embeddings(emb)
    kernel = _check_int("kernel", kernel, 1)
    if kernel % 2 == 0:
        raise ConfigError(f"kernel must be odd, got {kernel}")
    if kernel == 1 or emb.shape[0] == 0:
        return emb.clone()
    half = kernel // 2
    padded = torch.cat([emb[:1].expand(half, -1), emb, emb[-1:].expand(half, -1)])  # (T + k - 1, D)
    return padded.unfold(0, kernel, 1).mean(dim=-1)  # (T, D, k) -> (T, D)


def _ward_cost(n_a: int, sum_a: np.ndarray, n_b: int, sum_b: np.ndarray) -> float:
    """Ward cost of merging two clusters: the increase of the within-cluster sum of squares."""
    diff = sum_a / n_a - sum_b / n_b
    return n_a * n_b / (n_a + n_b) * float(diff @ diff)


def segment_stream(
    emb: Tensor,
    num_segments: int | None = None,
    distance_threshold: float | None = None,
    smooth: int = 1,
) -> list[tuple[int, int]]:
    """Split a stream into contiguous segments by temporally constrained Ward clustering.

    Starts with one cluster per frame; only neighbouring clusters may merge; each step merges the
    neighbouring pair of smallest Ward cost ``n_a n_b / (n_a + n_b) * ||mean_a - mean_b||^2`` (ties go
    to the earliest pair). The threshold is compared with that cost itself (the increase in the sum
    of squares), not with scikit-learn's ``sqrt(2 * cost)`` linkage distance.

    Args:
        emb: ``(T, D)`` per-frame embeddings.
        num_segments: stop once this many segments remain (``1 <= num_segments <= T``).
        distance_threshold: stop once the smallest merge cost exceeds this (``>= 0``). Exactly one of
            ``num_segments`` and ``distance_threshold`` must be given.
        smooth: odd kernel of :func:`smooth_embeddings` applied first (1 = none).

    Returns:
        Half-open ``(start, end)`` frame ranges, in order, covering ``0 .. T`` (empty when ``T == 0``).

    Raises:
        ShapeError: ``emb`` is not 2-D.
        ConfigError: both or neither stopping rule given, or out-of-range values.
    """
    emb = smooth_embeddings(emb, smooth)
    if (num_segments is None) == (distance_threshold is None):
        raise ConfigError(
            "give exactly one of num_segments and distance_threshold, "
            f"got num_segments={num_segments!r}, distance_threshold={distance_threshold!r}"
        )
    num_frames = emb.shape[0]
    if num_segments is not None:
        num_segments = _check_int("num_segments", num_segments, 1)
        if num_segments > num_frames:
            raise ConfigError(f"num_segments={num_segments} exceeds the {num_frames} frames of the stream")
        target = num_segments
    else:
        if (
            isinstance(distance_threshold, bool)
            or not isinstance(distance_threshold, (int, float))
            or math.isnan(distance_threshold)
            or distance_threshold < 0
        ):
            raise ConfigError(f"distance_threshold must be a number >= 0, got {distance_threshold!r}")
        target = 1
    if num_frames == 0:
        return []

    data = emb.detach().to(device="cpu", dtype=torch.float64).numpy()  # (T, D)
    # cluster i covers frames starts[i] .. starts[i] + sizes[i] - 1; sums[i] is its (D,) sum
    starts = list(range(num_frames))
    sizes = [1] * num_frames
    sums = [data[t].copy() for t in range(num_frames)]
    # costs[i]: Ward cost of merging cluster i with cluster i + 1
    costs = [_ward_cost(1, sums[i], 1, sums[i + 1]) for i in range(num_frames - 1)]
    while len(starts) > target:
        best = int(np.argmin(costs))  # first minimum: ties go to the earliest pair
        if distance_threshold is not None and costs[best] > distance_threshold:
            break
        sizes[best] += sizes.pop(best + 1)
        sums[best] = sums[best] + sums.pop(best + 1)
        starts.pop(best + 1)
        costs.pop(best)
        if best > 0:
            costs[best - 1] = _ward_cost(sizes[best - 1], sums[best - 1], sizes[best], sums[best])
        if best < len(starts) - 1:
            costs[best] = _ward_cost(sizes[best], sums[best], sizes[best + 1], sums[best + 1])
    return [(start, start + size) for start, size in zip(starts, sizes)]


def segment_midpoints(segments: Sequence[tuple[int, int]]) -> list[int]:
    """The frame to decode for each segment: its middle frame ``(start + end - 1) // 2``.

    For an even length this is the earlier of the two middle frames.

    Args:
        segments: half-open ``(start, end)`` ranges with ``end > start``.

    Returns:
        One frame index per segment.

    Raises:
        ConfigError: a segment with ``end <= start``.
    """
    mids = []
    for start, end in segments:
        if end <= start:
            raise ConfigError(f"segment ({start}, {end}) is empty: end must exceed start")
        mids.append((start + end - 1) // 2)
    return mids


def _frame_list(name: str, frames: Sequence[int] | Tensor, num_frames: int) -> list[int]:
    """``frames`` as a list of ints, each checked to lie in ``[0, num_frames)``."""
    if isinstance(frames, Tensor):
        if frames.ndim != 1:
            raise ShapeError(f"{name} must be 1-D, got shape {tuple(frames.shape)}")
        frames = frames.tolist()
    out = [int(f) for f in frames]
    bad = [f for f in out if not 0 <= f < num_frames]
    if bad:
        raise ConfigError(f"{name} must lie in [0, {num_frames}), got {bad}")
    return out


def cut_scores(
    decode_frames: Sequence[int],
    true_starts: Sequence[int] | Tensor,
    num_frames: int,
    tolerance: int = 2,
) -> dict[str, float | int]:
    """Score decode frames against the true scene starts.

    The true cuts are the scene starts after the first (``true_starts[1:]``); a decode at ``d``
    matches a cut at ``c`` when ``c <= d <= c + tolerance``.

    Args:
        decode_frames: frames where the decoder ran.
        true_starts: ``(S,)`` strictly increasing start frame of every scene.
        num_frames: length of the stream ``T``.
        tolerance: how many frames late a decode may come and still catch a cut (``>= 0``).

    Returns:
        ``recall``: fraction of true cuts with at least one decode in ``[c, c + tolerance]``;
        ``precision``: fraction of the decodes after frame 0 that match a cut, each cut matched by at
        most one decode (decodes taken in time order, each to the earliest free cut it matches);
        ``decodes``: ``len(decode_frames)``. A ratio whose denominator is 0 is 1.0: with no cuts there
        is nothing to miss, and with no decodes after frame 0 there is no false alarm (the decode at
        frame 0 is the description every stream starts with, never a cut detection).

    Raises:
        ConfigError: frames outside ``[0, num_frames)``, unsorted ``true_starts``, negative
            ``tolerance`` or ``num_frames``.
        ShapeError: ``true_starts`` is a tensor that is not 1-D.
    """
    num_frames = _check_int("num_frames", num_frames, 0)
    tolerance = _check_int("tolerance", tolerance, 0)
    decodes = sorted(_frame_list("decode_frames", decode_frames, num_frames))
    starts = _frame_list("true_starts", true_starts, num_frames)
    if any(b <= a for a, b in zip(starts, starts[1:])):
        raise ConfigError(f"true_starts must be strictly increasing, got {starts}")
    cuts = starts[1:]

    caught = sum(any(c <= d <= c + tolerance for d in decodes) for c in cuts)
    recall = caught / len(cuts) if cuts else 1.0

    later = [d for d in decodes if d > 0]
    matched = [False] * len(cuts)
    hits = 0
    for d in later:
        for i, c in enumerate(cuts):
            if not matched[i] and c <= d <= c + tolerance:
                matched[i] = True
                hits += 1
                break
    precision = hits / len(later) if later else 1.0
    return {"recall": recall, "precision": precision, "decodes": len(decode_frames)}


def segments_from_decodes(decode_frames: Sequence[int], num_frames: int) -> list[tuple[int, int]]:
    """The segmentation a set of decodes implies.

    A decode at frame ``t`` describes frames ``t`` up to the next decode (exclusive); the frames before
    the first decode belong to the first decode's segment.

    Args:
        decode_frames: strictly increasing frames in ``[0, num_frames)``; at least one when
            ``num_frames > 0``.
        num_frames: length of the stream ``T``.

    Returns:
        Half-open ``(start, end)`` ranges covering ``0 .. T`` in order (empty when ``T == 0``).

    Raises:
        ConfigError: frames outside the stream, not strictly increasing, or no decode for a
            non-empty stream.
    """
    num_frames = _check_int("num_frames", num_frames, 0)
    decodes = _frame_list("decode_frames", decode_frames, num_frames)
    if any(b <= a for a, b in zip(decodes, decodes[1:])):
        raise ConfigError(f"decode_frames must be strictly increasing, got {decodes}")
    if num_frames == 0:
        return []
    if not decodes:
        raise ConfigError(f"a stream of {num_frames} frames needs at least one decode, got none")
    bounds = [0, *decodes[1:], num_frames]
    return list(zip(bounds[:-1], bounds[1:]))


def uniform_decode_frames(num_frames: int, every: int) -> list[int]:
    """The uniform-sampling baseline: decode frames ``0, every, 2 * every, ...`` below ``num_frames``.

    Args:
        num_frames: length of the stream ``T`` (``>= 0``).
        every: decoding period in frames (``>= 1``).

    Returns:
        The decode frames, increasing.

    Raises:
        ConfigError: ``num_frames < 0`` or ``every < 1``.
    """
    num_frames = _check_int("num_frames", num_frames, 0)
    every = _check_int("every", every, 1)
    return list(range(0, num_frames, every))
