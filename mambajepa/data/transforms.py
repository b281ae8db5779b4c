"""Image and video transforms on tensors, with PIL only for decoding (no torchvision).

Every transform takes an image ``(C, H, W)`` or a clip ``(C, T, H, W)`` float tensor and returns
the same kind; random transforms draw their parameters once per call from an optional
``torch.Generator``, so every frame of a clip gets the same crop and flip.

Dimension legend: ``C`` channels, ``T`` frames, ``H``/``W`` rows/columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mambajepa.core.errors import ConfigError, ShapeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    """Convert a PIL image or a ``(H, W[, C])`` uint8 array to a ``(C, H, W)`` float tensor in [0, 1].

    Args:
        image: the picture; PIL images are converted to RGB.

    Returns:
        ``(3, H, W)`` for colour input, ``(1, H, W)`` for a 2-D array.
    """
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.dtype != np.uint8:
        raise ShapeError(f"to_tensor expects (H, W[, C]) uint8, got {array.shape} {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float().div_(255.0)  # (C, H, W)


def load_image(path: str | Path) -> torch.Tensor:
    """Decode an image file to a ``(3, H, W)`` float tensor in [0, 1] (raises what PIL raises)."""
    with Image.open(path) as image:
        return to_tensor(image)


def _spatial(x: torch.Tensor) -> tuple[int, int]:
    if x.dim() not in (3, 4):
        raise ShapeError(f"expected an image (C, H, W) or a clip (C, T, H, W), got shape {tuple(x.shape)}")
    return x.shape[-2], x.shape[-1]


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if len(size) != 2:
        raise ConfigError(f"size must be an int or (height, width), got {size!r}")
    return int(size[0]), int(size[1])


def resize(x: torch.Tensor, size: int | Sequence[int], antialias: bool = True) -> torch.Tensor:
    """Bilinear resize; an int sets the shorter side and keeps the aspect ratio.

    Args:
        x: ``(C, H, W)`` or ``(C, T, H, W)``.
        size: shorter side, or ``(height, width)``.
        antialias: low-pass filter when shrinking (as PIL does).

    Returns:
        The resized tensor, same layout.
    """
    height, width = _spatial(x)
    if isinstance(size, int):
        scale = size / min(height, width)
        target = (max(1, round(height * scale)), max(1, round(width * scale)))
    else:
        target = _pair(size)
    if target == (height, width):
        return x
    frames = x.unsqueeze(0) if x.dim() == 3 else x.transpose(0, 1)  # (N, C, H, W), N = 1 or T
    out = F.interpolate(frames, size=target, mode="bilinear", align_corners=False, antialias=antialias)
    return out[0] if x.dim() == 3 else out.transpose(0, 1)  # (C, H', W') or (C, T, H', W')


def crop(x: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """The window ``[top, top + height) x [left, left + width)`` of an image or clip."""
    full_h, full_w = _spatial(x)
    if top < 0 or left < 0 or top + height > full_h or left + width > full_w:
        raise ShapeError(f"crop ({top}, {left}, {height}, {width}) falls outside a {full_h}x{full_w} image")
    return x[..., top : top + height, left : left + width]


def center_crop(x: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """The central ``size`` window (an int means a square)."""
    height, width = _spatial(x)
    out_h, out_w = _pair(size)
    return crop(x, (height - out_h) // 2, (width - out_w) // 2, out_h, out_w)


class Resize:
    """See :func:`resize`."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = size

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return resize(x, self.size)


class CenterCrop:
    """See :func:`center_crop`."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = size

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return center_crop(x, self.size)


class RandomResizedCrop:
    """Crop a random window of random area and aspect ratio, then resize it to ``size``.

    Args:
        size: output side or ``(height, width)``.
        scale: range of the window's area as a fraction of the image.
        ratio: range of the window's width / height.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
    ) -> None:
        if not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
            raise ConfigError(f"RandomResizedCrop needs 0 < scale <= 1 and ratio > 0, got {scale}, {ratio}")
        self.size = _pair(size)
        self.scale = scale
        self.ratio = ratio

    def window(self, height: int, width: int, generator: torch.Generator | None = None) -> tuple[int, ...]:
        """``(top, left, h, w)`` of a window drawn for an image of ``height`` x ``width``."""
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            u = torch.rand(4, generator=generator).tolist()
            target_area = area * (self.scale[0] + u[0] * (self.scale[1] - self.scale[0]))
            aspect = math.exp(log_lo + u[1] * (log_hi - log_lo))
            w = round(math.sqrt(target_area * aspect))
            h = round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                return int(u[2] * (height - h + 1)), int(u[3] * (width - w + 1)), h, w
        side = min(height, width)  # fallback: the largest central square
        return (height - side) // 2, (width - side) // 2, side, side

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        top, left, h, w = self.window(*_spatial(x), generator=generator)
        return resize(crop(x, top, left, h, w), self.size)


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p`` (the whole clip at once)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _spatial(x)
        return x.flip(-1) if float(torch.rand((), generator=generator)) < self.p else x


class Normalize:
    """Subtract a per-channel mean and divide by a per-channel std (ImageNet's by default)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        if len(mean) != len(std) or min(std) <= 0:
            raise ConfigError(f"Normalize needs mean and positive std of one length, got {mean}, {std}")
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _spatial(x)
        if x.shape[0] != len(self.mean):
            raise ShapeError(f"Normalize has {len(self.mean)} channels, input has {x.shape[0]}")
        view = (-1,) + (1,) * (x.dim() - 1)  # (C, 1, 1) or (C, 1, 1, 1)
        return (x - self.mean.view(view).to(x)) / self.std.view(view).to(x)


class Compose:
    """Apply transforms in order, passing the same generator to each."""

    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x, generator=generator)
        return x


def build_transform(size: int, train: bool, normalize: bool = True, crop_fraction: float = 0.875) -> Compose:
    """The usual pipeline: random resized crop + flip for training, resize + center crop otherwise.

    Args:
        size: output side.
        train: random augmentation when true.
        normalize: finish with ImageNet mean/std normalisation.
        crop_fraction: evaluation resizes the shorter side to ``size / crop_fraction`` first.

    Returns:
        A :class:`Compose` for images or clips.
    """
    steps: list = (
        [RandomResizedCrop(size), RandomHorizontalFlip()]
        if train
        else [Resize(round(size / crop_fraction)), CenterCrop(size)]
    )
    if normalize:
        steps.append(Normalize())
    return Compose(steps)
