"""Video decoding with PyAV on an mp4 written here with PyAV itself."""

import numpy as np
import pytest
import torch

from mambajepa.core.errors import DataError
from mambajepa.data import BadItemWarning, ShapesVideos, VideoClips, read_video, write_video
from mambajepa.data.video import count_frames

av = pytest.importorskip("av")

FRAMES = 12


def _levels(t):
    return 20 * t + 10  # grey level of frame t


def _write_mp4(path, frames=FRAMES, size=(32, 48), codec="libx264"):
    """Each frame a flat grey of a known level (flat images survive lossy coding)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0"} if codec == "libx264" else {"lossless": "1"}
        for t in range(frames):
            array = np.full((*size, 3), _levels(t), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _frame_levels(clip):
    return [round(float(clip[:, t].mean()) * 255) for t in range(clip.shape[1])]


@pytest.mark.parametrize("name, codec", [("a.mp4", "libx264"), ("a.webm", "libvpx-vp9")])
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
