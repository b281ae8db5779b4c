"""Video files (mp4, webm, ...) decoded with PyAV: frame sampling, resizing and cropping.

PyAV is the optional ``video`` extra; it is imported only when a video is read or written.
A clip is ``num_frames`` frames taken every ``stride`` frames from a start frame; a video too
short for the whole clip repeats its last frame. Decoded clips are ``(C, T, H, W)`` float in
[0, 1].

Dimension legend: ``C`` channels, ``T`` frames, ``H``/``W`` rows/columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mambajepa.core.errors import ConfigError, DataError
from mambajepa.data.skipping import BadItems
from mambajepa.data.transforms import center_crop, resize

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov")


def _av():
    try:
        import av
    except ImportError as err:
        raise ImportError("reading video needs PyAV: pip install 'mambajepa[video]'") from err
    return av


def count_frames(path: str | Path) -> int:
    """Number of frames of a video (from the container header, else by decoding).

    Raises:
        DataError: when the file cannot be opened as a video.
    """
    av = _av()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.frames > 0:
                return int(stream.frames)
            return sum(1 for _ in container.decode(stream))
    except (av.FFmpegError, OSError, IndexError, ValueError) as err:
        raise DataError(f"cannot decode video {path}: {err}") from err


def read_video(
    path: str | Path, num_frames: int | None = None, stride: int = 1, start: int = 0
) -> torch.Tensor:
    """Decode frames ``start, start + stride, ...`` of a video.

    Args:
        path: the video file.
        num_frames: frames to return; ``None`` returns every sampled frame to the end.
        stride: keep one frame in ``stride``.
        start: first frame kept.

    Returns:
        ``(3, T, H, W)`` float in [0, 1]; frames past the end repeat the last decoded frame.

    Raises:
        DataError: when the file cannot be decoded or has no frame at or after ``start``.
    """
    if stride < 1 or start < 0 or (num_frames is not None and num_frames < 1):
        raise ConfigError(
            f"need stride >= 1, start >= 0, num_frames >= 1; got {stride}, {start}, {num_frames}"
        )
    av = _av()
    last = None if num_frames is None else start + (num_frames - 1) * stride
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if last is not None and index > last:
                    break
                if index >= start and (index - start) % stride == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))  # (H, W, C) uint8
    except (av.FFmpegError, OSError, IndexError, ValueError) as err:
        raise DataError(f"cannot decode video {path}: {err}") from err
    if not frames:
        raise DataError(f"video {path} has no frame at or after frame {start}")
    if num_frames is not None:
        frames += [frames[-1]] * (num_frames - len(frames))
    clip = np.stack(frames)  # (T, H, W, C)
    return torch.from_numpy(clip).permute(3, 0, 1, 2).float().div_(255.0)  # (C, T, H, W)


def write_video(
    path: str | Path, video: torch.Tensor, fps: int = 8, codec: str = "libx264", crf: int = 0
) -> Path:
    """Encode a ``(3, T, H, W)`` clip in [0, 1] (H and W even for yuv420p codecs).

    Args:
        path: output file; the container follows the suffix (``.mp4``, ``.webm``).
        video: the clip.
        fps: frame rate.
        codec: encoder name (``libx264``, ``mpeg4``, ``libvpx-vp9``).
        crf: quality for x264/vpx (0 = lossless luma for x264).

    Returns:
        ``path``.
    """
    if video.dim() != 4 or video.shape[0] != 3:
        raise ConfigError(f"write_video expects (3, T, H, W), got {tuple(video.shape)}")
    av = _av()
    frames = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()  # (T, H, W, C)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec in ("libx264", "libvpx-vp9"):
            stream.options = {"crf": str(crf)}
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class VideoClips(Dataset):
    """Clips from video files: ``{"video": (3, T, H, W), "path": str, "label": int}``.

    Args:
        videos: a folder (every file with a video suffix, sorted) or a list of paths.
        labels: one int per video (default -1).
        num_frames: frames ``T`` per clip.
        stride: frame step inside a clip.
        size: resize the shorter side to ``size`` then center crop a square; ``None`` keeps frames.
        random_start: draw the start frame from ``(seed, index, epoch)``; otherwise the clip is
            centred in the video.
        seed: seed of the start frames.
        transform: applied to the ``(3, T, H, W)`` clip after resizing.
        strict: raise on an undecodable video instead of skipping to the next one with a warning.

    Raises:
        DataError: when no video is found.
    """

    def __init__(
        self,
        videos: str | Path | Sequence[str | Path],
        labels: Sequence[int] | None = None,
        num_frames: int = 16,
        stride: int = 2,
        size: int | None = None,
        random_start: bool = False,
        seed: int = 0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        strict: bool = False,
    ) -> None:
        if isinstance(videos, (str, Path)):
            folder = Path(videos)
            if not folder.is_dir():
                raise DataError(f"video folder {folder} not found")
            paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
        else:
            paths = [Path(p) for p in videos]
        if not paths:
            raise DataError(f"no video file ({', '.join(VIDEO_EXTENSIONS)}) in {videos}")
        if labels is not None and len(labels) != len(paths):
            raise ConfigError(f"got {len(labels)} labels for {len(paths)} videos")
        self.paths = paths
        self.labels = list(labels) if labels is not None else [-1] * len(paths)
        self.num_frames, self.stride, self.size = int(num_frames), int(stride), size
        self.random_start, self.seed, self.epoch = random_start, int(seed), 0
        self.transform = transform
        self.bad_items = BadItems(strict, "VideoClips")

    def set_epoch(self, epoch: int) -> None:
        """New random start frames for a new pass."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def _start(self, index: int, total: int) -> int:
        span = (self.num_frames - 1) * self.stride + 1
        room = max(0, total - span)
        if not self.random_start:
            return room // 2
        rng = np.random.default_rng((self.seed, index, self.epoch))
        return int(rng.integers(room + 1))

    def __getitem__(self, index: int) -> dict[str, Any]:
        for attempt in range(len(self.paths)):
            position = (index + attempt) % len(self.paths)
            path = self.paths[position]
            try:
                start = self._start(position, count_frames(path))
                clip = read_video(path, self.num_frames, self.stride, start)  # (C, T, H, W)
            except DataError as err:
                self.bad_items.report(path, f"unreadable video: {err}")
                continue
            if self.size is not None:
                clip = center_crop(resize(clip, self.size), self.size)
            if self.transform is not None:
                clip = self.transform(clip)
            return {"video": clip, "path": str(path), "label": self.labels[position]}
        raise DataError(f"VideoClips: no readable video among {len(self.paths)} files")
