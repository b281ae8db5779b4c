"""Video decoding with PyAV on an mp4 written here with PyAV itself."""

import warnings

import numpy as np
import pytest
import torch

from mambajepa.core.errors import DataError
from mambajepa.data import BadItemWarning, ShapesVideos, VideoClips, read_video, write_video
from mambajepa.data import video as video_module
from mambajepa.data.video import _frames_after_seek, count_frames, index_frames
from mambajepa.train.data import _KeyedDataset, build_eval_loader, build_train_loader

av = pytest.importorskip("av")

FRAMES = 12
RAMP = 48  # frames of the long videos, a keyframe every GOP frames
GOP = 6


def _levels(t):
    return 20 * t + 10  # grey level of frame t


def _ramp(t):
    return 4 * t + 10  # grey level of frame t of a long video


def _write_mp4(path, frames=FRAMES, size=(32, 48), codec="libx264", levels=_levels, gop=None):
    """Each frame a flat grey of a known level (flat images survive lossy coding).

    With ``gop``, a keyframe every ``gop`` frames and (x264) B-frames, so that decoding
    reorders frames and a seek lands inside the video.
    """
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0"} if codec == "libx264" else {"lossless": "1"}
        if gop is not None and codec == "libx264":
            keys = f"keyint={gop}:min-keyint={gop}:scenecut=0"
            stream.options = {"crf": "10", "x264-params": f"bframes=2:b-adapt=0:{keys}"}
        elif gop is not None:
            stream.codec_context.gop_size = gop
        for t in range(frames):
            array = np.full((*size, 3), levels(t), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _write_ramp(path, codec="libx264"):
    return _write_mp4(path, RAMP, (16, 16), codec, levels=_ramp, gop=GOP)


def _frame_levels(clip):
    return [round(float(clip[:, t].mean()) * 255) for t in range(clip.shape[1])]


def _start_of(clip, full):
    """The frame of ``full`` (every frame of the video) that ``clip`` starts with."""
    levels = _frame_levels(full)
    assert len(set(levels)) == len(levels)
    return levels.index(_frame_levels(clip)[0])


CODECS = [("a.mp4", "libx264"), ("a.webm", "libvpx-vp9")]


@pytest.mark.parametrize("name, codec", CODECS)
def test_read_video_samples_frames_with_a_stride(tmp_path, name, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"PyAV build without {codec}")
    path = _write_mp4(tmp_path / name, codec=codec)
    assert count_frames(path) == FRAMES
    clip = read_video(path)
    assert clip.shape == (3, FRAMES, 32, 48) and clip.dtype == torch.float32
    assert np.allclose(_frame_levels(clip), [_levels(t) for t in range(FRAMES)], atol=2)
    sampled = read_video(path, num_frames=4, stride=3, start=1)
    assert np.allclose(_frame_levels(sampled), [_levels(t) for t in (1, 4, 7, 10)], atol=2)
    padded = read_video(path, num_frames=5, stride=4, start=2)  # frames 2, 6, 10, then the last repeats
    assert np.allclose(_frame_levels(padded), [_levels(t) for t in (2, 6, 10, 10, 10)], atol=2)
    with pytest.raises(DataError, match="no frame at or after frame 40"):
        read_video(path, num_frames=2, start=40)


def test_clip_dataset_resizes_crops_and_skips_bad_files(tmp_path):
    _write_mp4(tmp_path / "a.mp4")
    _write_mp4(tmp_path / "c.mp4", frames=6)
    (tmp_path / "b.mp4").write_bytes(b"\x00not a video")
    data = VideoClips(tmp_path, labels=[0, 1, 2], num_frames=3, stride=2, size=16)
    item = data[0]
    assert item["video"].shape == (3, 3, 16, 16) and item["label"] == 0
    # centred clip of span 5 in 12 frames starts at frame 3
    assert np.allclose(_frame_levels(item["video"]), [_levels(t) for t in (3, 5, 7)], atol=2)
    with pytest.warns(BadItemWarning, match="b.mp4: unreadable video"):
        assert data[1]["label"] == 2
    strict = VideoClips(tmp_path, num_frames=3, strict=True)
    with pytest.raises(DataError, match="b.mp4"):
        strict[1]
    random_data = VideoClips([tmp_path / "a.mp4"], num_frames=2, stride=1, random_start=True, seed=0)
    starts = set()
    for epoch in range(6):
        random_data.set_epoch(epoch)
        starts.add(_frame_levels(random_data[0]["video"])[0])
    assert len(starts) > 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no video file"):
        VideoClips(tmp_path / "empty", num_frames=2)


def test_shapes_clip_round_trips_through_our_writer(tmp_path):
    clip = ShapesVideos(num_items=1, size=32, num_frames=6)[0]["video"]
    back = read_video(write_video(tmp_path / "s.mp4", clip))
    assert back.shape == clip.shape
    assert (back - clip).abs().mean() < 0.03  # chroma subsampling blurs colour edges only


@pytest.mark.parametrize("name, codec", CODECS)
def test_seeking_decodes_the_same_frames_as_decoding_from_frame_0(tmp_path, name, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"PyAV build without {codec}")
    path = _write_ramp(tmp_path / name, codec)
    index = index_frames(path)
    assert len(index) == count_frames(path) == RAMP
    assert index.keyframes.tolist() == list(range(0, RAMP, GOP))
    full = read_video(path)  # (C, T, H, W), every frame, decoded from frame 0
    # the seek lands on the keyframe before the start, not on frame 0
    with av.open(str(path)) as container:
        assert next(_frames_after_seek(container, index, 27))[0] == 24
    for start, stride, num_frames in [(27, 1, 5), (25, 3, 4), (24, 2, 3), (41, 2, 6), (0, 4, 3)]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback to decoding from frame 0
            seeked = read_video(path, num_frames, stride, start, index)
        assert torch.equal(seeked, read_video(path, num_frames, stride, start))
        wanted = [min(start + k * stride, RAMP - 1) for k in range(num_frames)]  # the end repeats
        assert torch.equal(seeked, full[:, wanted])


def test_seeking_falls_back_to_frame_0_when_timestamps_disagree(tmp_path):
    path = _write_ramp(tmp_path / "a.mp4")
    index = index_frames(path)
    shifted = video_module.FrameIndex(index.pts + 1, index.keyframes)
    with pytest.warns(RuntimeWarning, match="disagree with its frame index"):
        clip = read_video(path, 4, 2, 30, shifted)
    assert torch.equal(clip, read_video(path, 4, 2, 30))


def test_frame_counts_are_read_once_per_file(tmp_path, monkeypatch):
    paths = [_write_ramp(tmp_path / "a.mp4"), _write_mp4(tmp_path / "b.mp4")]
    calls = {"index": [], "count": []}

    def indexed(path):
        calls["index"].append(path)
        return index_frames(path)

    def unindexed(path):
        calls["index"].append(path)
        return None

    def counted(path):
        calls["count"].append(path)
        return count_frames(path)

    monkeypatch.setattr(video_module, "count_frames", counted)
    for index_fn in (indexed, unindexed):  # timestamps place frames / frames are counted by decoding
        calls["index"], calls["count"] = [], []
        monkeypatch.setattr(video_module, "index_frames", index_fn)
        data = VideoClips(paths, num_frames=3, stride=2, random_start=True)
        clips = [data[0], data[1], data[0], data.get_item_seeded(0, 5), data.get_item_seeded(1, 6)]
        assert [item["path"] for item in clips] == [str(paths[i]) for i in (0, 1, 0, 0, 1)]
        assert calls["index"] == paths
        assert calls["count"] == ([] if index_fn is indexed else paths)


def test_clip_start_follows_the_batch_key(tmp_path):
    path = _write_ramp(tmp_path / "a.mp4")
    full = read_video(path)

    def keyed(random_start=True):
        data = VideoClips([path], num_frames=4, stride=2, random_start=random_start, seed=1)
        return _KeyedDataset(data, seed=7, stream="train")

    first = keyed()
    starts = [_start_of(first[(0, batch, 0)][0]["video"], full) for batch in range(6)]
    assert starts[0] != starts[1] and len(set(starts)) >= 4
    assert all(0 <= s <= RAMP - 7 for s in starts)  # a clip spans 7 frames
    # the same key gives the same clip, also in a fresh dataset (a resumed process)
    assert torch.equal(first[(0, 3, 0)][0]["video"], keyed()[(0, 3, 0)][0]["video"])
    assert _start_of(keyed()[(0, 4, 0)][0]["video"], full) == starts[4]
    # without a seed the clip is the same at every read; without random starts it is centred
    data = VideoClips([path], num_frames=4, stride=2, random_start=True)
    assert torch.equal(data[0]["video"], data[0]["video"])
    centred = keyed(random_start=False)
    assert {_start_of(centred[(0, b, 0)][0]["video"], full) for b in range(3)} == {(RAMP - 7) // 2}


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_training_loader_draws_the_same_clips(tmp_path, workers):
    full = read_video(_write_ramp(tmp_path / "v0.mp4"))
    for i in range(1, 4):
        _write_ramp(tmp_path / f"v{i}.mp4")
    data = VideoClips(tmp_path, num_frames=2, stride=3, random_start=True)

    def batches(start):
        loader, per_epoch = build_train_loader(data, None, 2, 1, 11, start, 6, num_workers=workers)
        assert per_epoch == 2
        return [(batch["path"], batch["video"]) for batch in loader]

    run, resumed = batches(0), batches(3)
    assert len(resumed) == 3
    for (paths, clips), (paths_again, clips_again) in zip(run[3:], resumed):
        assert paths == paths_again and torch.equal(clips, clips_again)
    # three epochs: every video is drawn three times, with a new clip at a new batch
    starts: dict[str, set[int]] = {}
    for paths, clips in run:
        for path, clip in zip(paths, clips):
            starts.setdefault(path, set()).add(_start_of(clip, full))
    assert len(starts) == 4 and sum(len(s) for s in starts.values()) > 8
    # evaluation reads the same clips every time
    first, again = (
        [batch["video"] for batch in build_eval_loader(data, None, 2, 2, seed=11)] for _ in range(2)
    )
    assert all(torch.equal(a, b) for a, b in zip(first, again))
