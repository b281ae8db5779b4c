"""Video files (mp4, webm, ...) decoded with PyAV: frame sampling, resizing and cropping.

PyAV is the optional ``video`` extra; it is imported only when a video is read or written.
A clip is ``num_frames`` frames taken every ``stride`` frames from a start frame; a video too
short for the whole clip repeats its last frame. Decoded clips are ``(C, T, H, W)`` float in
[0, 1].

Frame ``i`` is the ``i``-th frame the decoder outputs from the start of the file. A
:class:`FrameIndex` (read once per file by demuxing, without decoding) maps frame numbers to
presentation timestamps, so that :func:`read_video` can seek to the keyframe before a clip
instead of decoding from frame 0; it checks every decoded timestamp against the index and
decodes from frame 0 when they disagree, so both paths return the same frames.

Dimension legend: ``C`` channels, ``T`` frames, ``H``/``W`` rows/columns.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class FrameIndex:
    """Presentation timestamps of a video's frames, from :func:`index_frames`.

    Attributes:
        pts: ``(N,)`` int64, ascending; frame ``i`` is shown at ``pts[i]`` (stream time_base units).
        keyframes: ``(K,)`` int64, ascending frame numbers of the keyframes (where decoding can start).
    """

    pts: np.ndarray
    keyframes: np.ndarray

    def __len__(self) -> int:
        return len(self.pts)

    def position(self, pts: int | None) -> int | None:
        """The frame number shown at ``pts``, or ``None`` when no indexed frame is."""
        if pts is None:
            return None
        found = int(np.searchsorted(self.pts, pts))
        return found if found < len(self.pts) and self.pts[found] == pts else None


def index_frames(path: str | Path) -> FrameIndex | None:
    """Read the timestamps of every frame of a video by demuxing its packets (nothing is decoded).

    Returns:
        The index, or ``None`` when timestamps cannot place frames (a packet without a
        timestamp, two frames at one timestamp, no keyframe); such a video is decoded from
        frame 0 and counted with :func:`count_frames`.

    Raises:
        DataError: when the file cannot be opened as a video.
    """
    av = _av()
    pts: list[int] = []
    keys: list[int] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:  # the demuxer's final flush, dropped priming
                    continue
                if packet.pts is None:
                    return None
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
    except (av.FFmpegError, OSError, IndexError, ValueError) as err:
        raise DataError(f"cannot decode video {path}: {err}") from err
    order = np.sort(np.asarray(pts, dtype=np.int64))  # packets come in decode order
    if not keys or np.any(np.diff(order) <= 0):
        return None
    keyframes = np.searchsorted(order, np.sort(np.asarray(keys, dtype=np.int64)))
    return FrameIndex(order, keyframes.astype(np.int64))


class _LostPlace(Exception):
    """The decoded timestamps disagree with the frame index."""


def _frames_after_seek(container: Any, index: FrameIndex, start: int) -> Iterator[tuple[int, Any]]:
    """``(frame number, frame)`` from the keyframe at or before ``start`` to the end of the video.

    Raises:
        _LostPlace: when a decoded frame is not the next indexed one, or the first one is past
            ``start``.
    """
    before = int(np.searchsorted(index.keyframes, start, side="right")) - 1
    if before < 0:
        raise _LostPlace
    stream = container.streams.video[0]
    # offset in stream time_base units; lands on the keyframe at or before it
    container.seek(int(index.pts[index.keyframes[before]]), stream=stream, backward=True, any_frame=False)
    position = None
    for frame in container.decode(stream):
        found = index.position(frame.pts)
        if found is None or (found > start if position is None else found != position + 1):
            raise _LostPlace
        position = found
        yield position, frame
    if position != len(index) - 1:
        raise _LostPlace


def _keep(numbered: Iterable[tuple[int, Any]], start: int, stride: int, last: int | None) -> list[np.ndarray]:
    """The frames numbered ``start, start + stride, ...`` up to ``last`` as ``(H, W, C)`` uint8."""
    frames: list[np.ndarray] = []
    for position, frame in numbered:
        if last is not None and position > last:
            break
        if position >= start and (position - start) % stride == 0:
            frames.append(frame.to_ndarray(format="rgb24"))  # (H, W, C) uint8
    return frames


def read_video(
    path: str | Path,
    num_frames: int | None = None,
    stride: int = 1,
    start: int = 0,
    index: FrameIndex | None = None,
) -> torch.Tensor:
    """Decode frames ``start, start + stride, ...`` of a video.

    Args:
        path: the video file.
        num_frames: frames to return; ``None`` returns every sampled frame to the end.
        stride: keep one frame in ``stride``.
        start: first frame kept.
        index: the video's :func:`index_frames`; given, decoding starts at the keyframe at or
            before ``start`` instead of frame 0 (same frames; a warning names a file whose
            decoded timestamps disagree with the index, which is then decoded from frame 0).

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
    frames: list[np.ndarray] | None = None
    try:
        if index is not None and start < len(index):
            with av.open(str(path)) as container:
                try:
                    frames = _keep(_frames_after_seek(container, index, start), start, stride, last)
                except _LostPlace:
                    warnings.warn(
                        f"video {path}: decoded timestamps disagree with its frame index; "
                        "decoding from frame 0",
                        RuntimeWarning,
                        stacklevel=2,
                    )
        if frames is None:
            with av.open(str(path)) as container:
                frames = _keep(enumerate(container.decode(video=0)), start, stride, last)
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
        random_start: draw a random start frame; otherwise the clip is centred in the video.
            :meth:`get_item_seeded` draws it from ``(seed, index, draw seed)`` (the training
            loader passes a draw seed per batch, so the same video gives a new clip at every
            draw and a resumed run the same clips); ``dataset[index]`` draws it from
            ``(seed, index, epoch)`` with the epoch of :meth:`set_epoch`.
        seed: seed of the start frames.
        transform: applied to the ``(3, T, H, W)`` clip after resizing.
        strict: raise on an undecodable video instead of skipping to the next one with a warning.

    Each file's :class:`FrameIndex` (hence its frame count) is read once, at its first clip, and
    kept (per process: each DataLoader worker reads the files it is given once).

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
        self._frame_info: dict[int, tuple[int, FrameIndex | None]] = {}  # position -> (count, index)

    def set_epoch(self, epoch: int) -> None:
        """New random start frames of ``dataset[index]`` for a new pass."""
        self.epoch = int(epoch)

    def _frames(self, position: int) -> tuple[int, FrameIndex | None]:
        """``(frame count, frame index or None)`` of video ``position``, read on the first call only.

        Raises:
            DataError: when the file cannot be opened as a video.
        """
        known = self._frame_info.get(position)
        if known is None:
            path = self.paths[position]
            index = index_frames(path)
            known = (len(index), index) if index is not None else (count_frames(path), None)
            self._frame_info[position] = known
        return known

    def __len__(self) -> int:
        return len(self.paths)

    def _start(self, position: int, total: int, draw: int | None) -> int:
        span = (self.num_frames - 1) * self.stride + 1
        room = max(0, total - span)
        if not self.random_start:
            return room // 2
        rng = np.random.default_rng((self.seed, position, self.epoch if draw is None else draw))
        return int(rng.integers(room + 1))

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._clip(index, None)

    def get_item_seeded(self, index: int, seed: int) -> dict[str, Any]:
        """Item ``index`` with its random start frame drawn from ``seed`` (one seed per draw).

        Args:
            index: the video.
            seed: non-negative draw seed (the training loader derives it from the run seed,
                the batch and ``index``).
        """
        return self._clip(index, int(seed))

    def _clip(self, index: int, draw: int | None) -> dict[str, Any]:
        for attempt in range(len(self.paths)):
            position = (index + attempt) % len(self.paths)
            path = self.paths[position]
            try:
                total, frame_index = self._frames(position)
                start = self._start(position, total, draw)
                clip = read_video(path, self.num_frames, self.stride, start, frame_index)  # (C, T, H, W)
            except DataError as err:
                self.bad_items.report(path, f"unreadable video: {err}")
                continue
            if self.size is not None:
                clip = center_crop(resize(clip, self.size), self.size)
            if self.transform is not None:
                clip = self.transform(clip)
            return {"video": clip, "path": str(path), "label": self.labels[position]}
        raise DataError(f"VideoClips: no readable video among {len(self.paths)} files")
