"""Selective decoding: the drift trigger by hand, Ward segments against a brute force, cut metrics."""

from __future__ import annotations

import pytest
import torch

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.methods.vljepa.selective import (
    SelectiveDecodeConfig,
    SelectiveDecoder,
    cut_scores,
    segment_midpoints,
    segment_stream,
    segments_from_decodes,
    smooth_embeddings,
    uniform_decode_frames,
)


def scalar(x: float) -> torch.Tensor:
    return torch.tensor([x], dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# drift trigger


def test_drift_by_hand_through_warm_up():
    # window 3, smoothing 0.5, a threshold never reached after the first frame
    dec = SelectiveDecoder(window_size=3, drift_threshold=100.0, smoothing=0.5)
    values = [0.0, 1.0, 3.0, 4.0, 4.0, 10.0]
    # t=0: first frame, decodes, m = 0
    # t=1: one earlier state (warm-up): ref s0=0, drift 1, m = 0.5*1 = 0.5
    # t=2: two earlier (warm-up): ref s0=0, drift 3, m = 1.5 + 0.25 = 1.75
    # t=3: three earlier, window full: ref s0=0, drift 4, m = 2 + 0.875 = 2.875
    # t=4: ref s1=1, drift 3, m = 1.5 + 1.4375 = 2.9375
    # t=5: ref s2=3, drift 7, m = 3.5 + 1.46875 = 4.96875
    expected = [0.0, 0.5, 1.75, 2.875, 2.9375, 4.96875]
    decisions = []
    for v, m in zip(values, expected):
        decisions.append(dec.should_decode(scalar(v)))
        assert dec.current_drift() == pytest.approx(m, abs=1e-12)
    assert decisions == [True, False, False, False, False, False]
    assert dec.frames_seen == 6 and dec.decode_count == 1


def test_decode_resets_m_and_buffer():
    # window 2, smoothing 0.5, threshold 1
    dec = SelectiveDecoder(window_size=2, drift_threshold=1.0, smoothing=0.5)
    # t=0: decode. t=1: ref s0, drift 0. t=2: ref s0, drift 0.
    # t=3 (jump to 3): ref s1=0, drift 3, m = 1.5 > 1 -> decode, m = 0, buffer = [s3]
    # t=4: ref s3=3 (not s2=0, which was dropped by the reset), drift 0, m = 0
    # t=5 (5): ref s3=3, drift 2, m = 1 (not > 1) -> no decode
    # t=6 (5): buffer [s4, s5] full -> ref s4=3, drift 2, m = 1 + 0.5 = 1.5 -> decode
    values = [0.0, 0.0, 0.0, 3.0, 3.0, 5.0, 5.0]
    expected_m = [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    expected_decode = [True, False, False, True, False, False, True]
    for v, m, d in zip(values, expected_m, expected_decode):
        assert dec.should_decode(scalar(v)) is d
        assert dec.current_drift() == pytest.approx(m, abs=1e-12)
    assert dec.decode_count == 3 and dec.frames_seen == 7


def test_vector_states_are_flattened_and_measured_in_l2():
    dec = SelectiveDecoder(window_size=1, drift_threshold=10.0, smoothing=1.0)
    assert dec.should_decode(torch.zeros(2, 2))
    assert not dec.should_decode(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
    assert dec.current_drift() == pytest.approx(5.0)
    # window 1 compares with the previous frame: ||(3,0,0,4) - (3,0,0,4)|| = 0
    assert not dec.should_decode(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
    assert dec.current_drift() == pytest.approx(0.0)


def test_one_cut_one_decode_and_run_indices():
    # piecewise-constant stream with cuts at 20 and 40: one decode per cut, no burst
    means = torch.randn(3, 8, generator=torch.Generator().manual_seed(0)) * 5
    states = torch.cat([means[0].expand(20, 8), means[1].expand(20, 8), means[2].expand(24, 8)])
    dec = SelectiveDecoder(window_size=4, drift_threshold=0.5, smoothing=0.3)
    assert dec.run(states) == [0, 20, 40]
    assert dec.decode_count == 3 and dec.frames_seen == 64
    # run starts from a reset: the same answer a second time
    assert dec.run(states) == [0, 20, 40]


def test_first_frame_decodes_and_reset():
    dec = SelectiveDecoder(SelectiveDecodeConfig(window_size=2, drift_threshold=0.1, smoothing=1.0))
    assert dec.should_decode(torch.ones(3))
    assert not dec.should_decode(torch.ones(3))
    dec.reset()
    assert dec.frames_seen == 0 and dec.decode_count == 0 and dec.current_drift() == 0.0
    # a reset also unfixes the state size: a new stream may have another width
    assert dec.should_decode(torch.ones(5))
    assert dec.decode_count == 1


def test_size_mismatch_raises_shape_error():
    dec = SelectiveDecoder()
    dec.should_decode(torch.zeros(4))
    with pytest.raises(ShapeError, match="6"):
        dec.should_decode(torch.zeros(2, 3))
    with pytest.raises(ShapeError):
        dec.should_decode(torch.zeros(0))


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"window_size": 0}, "window_size"),
        ({"drift_threshold": -0.5}, "-0.5"),
        ({"smoothing": 0.0}, "smoothing"),
        ({"smoothing": 1.5}, "1.5"),
    ],
)
def test_bad_config_raises_config_error_naming_value(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        SelectiveDecodeConfig(**kwargs)
    with pytest.raises(ConfigError, match=named):
        SelectiveDecoder(**kwargs)


def test_config_and_keywords_together_rejected():
    with pytest.raises(ConfigError, match="not both"):
        SelectiveDecoder(SelectiveDecodeConfig(), window_size=4)
    assert SelectiveDecoder(window_size=4).config.window_size == 4


# ----------------------------------------------------------------------------------------------
# segment decoding


def test_smooth_embeddings_by_hand():
    emb = torch.tensor([[0.0], [3.0], [6.0], [9.0]])
    # padded 0 0 3 6 9 9, windows of 3
    torch.testing.assert_close(smooth_embeddings(emb, 3), torch.tensor([[1.0], [3.0], [6.0], [8.0]]))
    torch.testing.assert_close(smooth_embeddings(emb, 1), emb)
    with pytest.raises(ConfigError, match="4"):
        smooth_embeddings(emb, 4)
    with pytest.raises(ShapeError):
        smooth_embeddings(torch.zeros(4), 3)


def planted_stream(seed: int, num_frames: int = 64, dim: int = 16, scenes: int = 4, min_len: int = 6):
    """Scenes of random lengths >= min_len with distinct means plus small noise; returns (emb, starts)."""
    g = torch.Generator().manual_seed(seed)
    spare = num_frames - scenes * min_len
    cuts = torch.sort(torch.randint(0, spare + 1, (scenes - 1,), generator=g)).values.tolist()
    lengths = [min_len + b - a for a, b in zip([0, *cuts], [*cuts, spare])]
    means = torch.randn(scenes, dim, generator=g) * 3
    emb = torch.cat([means[k].expand(n, dim) for k, n in enumerate(lengths)])
    emb = emb + 0.05 * torch.randn(num_frames, dim, generator=g)
    starts = [sum(lengths[:k]) for k in range(scenes)]
    return emb, starts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segment_stream_recovers_planted_cuts(seed):
    emb, starts = planted_stream(seed)
    expected = list(zip(starts, [*starts[1:], 64]))
    assert segment_stream(emb, num_segments=4) == expected
    # within-scene merges cost ~ noise^2 * D = 0.04, cross-scene ones >= 3 * ||dmu||^2 (hundreds)
    assert segment_stream(emb, distance_threshold=1.0) == expected
    # smoothing mixes the two frames either side of a cut symmetrically: a cut may move by one
    smoothed = segment_stream(emb, num_segments=4, smooth=3)
    assert len(smoothed) == 4 and smoothed[0][0] == 0 and smoothed[-1][1] == 64
    assert all(abs(a - b) <= 1 for (a, _), b in zip(smoothed, starts))


def brute_force_ward(
    x: torch.Tensor, num_segments: int | None, threshold: float | None
) -> list[tuple[int, int]]:
    """Greedy adjacent Ward merging, every cost recomputed from the raw frames of each segment."""

    def sse(seg: torch.Tensor) -> float:
        return float(((seg - seg.mean(0)) ** 2).sum())

    bounds = list(range(x.shape[0] + 1))  # segment i is frames bounds[i]..bounds[i+1]-1
    while len(bounds) - 1 > (num_segments or 1):
        best_cost, best_i = None, None
        for i in range(len(bounds) - 2):
            a = x[bounds[i] : bounds[i + 1]]
            b = x[bounds[i + 1] : bounds[i + 2]]
            both = x[bounds[i] : bounds[i + 2]]
            # Ward cost as the increase in the sum of squared deviations from the mean
            cost = sse(both) - sse(a) - sse(b)
            if best_cost is None or cost < best_cost - 1e-12:
                best_cost, best_i = cost, i
        if threshold is not None and best_cost > threshold:
            break
        del bounds[best_i + 1]
    return list(zip(bounds[:-1], bounds[1:]))


def test_segment_stream_matches_brute_force():
    x = torch.randn(10, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for k in range(1, 11):
        assert segment_stream(x, num_segments=k) == brute_force_ward(x, k, None), k
    for threshold in (0.0, 0.2, 0.5, 1.0, 2.0, 5.0, 100.0):
        assert segment_stream(x, distance_threshold=threshold) == brute_force_ward(x, None, threshold)


def test_segment_stream_arguments():
    x = torch.randn(5, 2)
    with pytest.raises(ConfigError, match="exactly one"):
        segment_stream(x)
    with pytest.raises(ConfigError, match="exactly one"):
        segment_stream(x, num_segments=2, distance_threshold=1.0)
    with pytest.raises(ConfigError, match="6"):
        segment_stream(x, num_segments=6)
    with pytest.raises(ConfigError, match="-1"):
        segment_stream(x, distance_threshold=-1.0)
    with pytest.raises(ShapeError):
        segment_stream(torch.zeros(5), num_segments=1)
    assert segment_stream(x, num_segments=1) == [(0, 5)]
    assert segment_stream(x, num_segments=5) == [(i, i + 1) for i in range(5)]


def test_segment_midpoints():
    assert segment_midpoints([(0, 5), (5, 9), (9, 10)]) == [2, 6, 9]
    with pytest.raises(ConfigError, match=r"\(3, 3\)"):
        segment_midpoints([(3, 3)])


# ----------------------------------------------------------------------------------------------
# metrics


def test_cut_scores_by_hand():
    # cuts at 10 and 20; 11 catches 10, 12 is a second decode for 10 (unmatched), 25 misses 20
    out = cut_scores([0, 11, 12, 25], [0, 10, 20], num_frames=30, tolerance=2)
    assert out == {"recall": 0.5, "precision": pytest.approx(1 / 3), "decodes": 4}
    # a decode exactly at cut + tolerance counts, one frame early does not
    assert cut_scores([0, 12], [0, 10], 30, tolerance=2)["recall"] == 1.0
    assert cut_scores([0, 9], [0, 10], 30, tolerance=2) == {"recall": 0.0, "precision": 0.0, "decodes": 2}
    # tensors as true starts
    assert cut_scores([0, 10, 20], torch.tensor([0, 10, 20]), 30)["precision"] == 1.0


def test_cut_scores_empty_denominators():
    # no cuts and no decodes after frame 0: nothing missed, no false alarm
    assert cut_scores([0], [0], 10) == {"recall": 1.0, "precision": 1.0, "decodes": 1}
    assert cut_scores([], [0, 5], 10) == {"recall": 0.0, "precision": 1.0, "decodes": 0}
    assert cut_scores([0, 3], [0], 10) == {"recall": 1.0, "precision": 0.0, "decodes": 2}


def test_cut_scores_validates():
    with pytest.raises(ConfigError, match="30"):
        cut_scores([30], [0], 30)
    with pytest.raises(ConfigError, match="increasing"):
        cut_scores([0], [0, 5, 5], 30)
    with pytest.raises(ConfigError, match="tolerance"):
        cut_scores([0], [0], 30, tolerance=-1)


def test_segments_from_decodes_and_uniform():
    assert segments_from_decodes([2, 5, 9], 12) == [(0, 5), (5, 9), (9, 12)]
    assert segments_from_decodes([0], 4) == [(0, 4)]
    assert segments_from_decodes([], 0) == []
    with pytest.raises(ConfigError, match="increasing"):
        segments_from_decodes([5, 2], 12)
    with pytest.raises(ConfigError, match="at least one decode"):
        segments_from_decodes([], 12)
    assert uniform_decode_frames(10, 4) == [0, 4, 8]
    assert uniform_decode_frames(0, 4) == []
    with pytest.raises(ConfigError, match="every"):
        uniform_decode_frames(10, 0)
    # a drift trigger's decodes always imply a full covering of the stream
    frames = SelectiveDecoder(window_size=2, drift_threshold=0.5).run(planted_stream(3)[0])
    segs = segments_from_decodes(frames, 64)
    assert segs[0][0] == 0 and segs[-1][1] == 64 and all(a[1] == b[0] for a, b in zip(segs, segs[1:]))
