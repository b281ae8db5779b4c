"""Tensor transforms: clips get the same treatment as each of their frames; peers: PIL and numpy."""

import numpy as np
import pytest
import torch
from PIL import Image

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.data import (
    CenterCrop,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    build_transform,
    to_tensor,
)
from mambajepa.data.transforms import center_crop, resize


def _clip():
    return torch.rand(3, 4, 20, 28, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("train", [True, False])
def test_clip_transform_equals_the_same_transform_on_every_frame(train):
    clip = _clip()
    transform = build_transform(12, train=train)
    out = transform(clip, torch.Generator().manual_seed(5))
    assert out.shape == (3, 4, 12, 12)
    for t in range(4):
        frame = transform(clip[:, t], torch.Generator().manual_seed(5))
        assert torch.allclose(out[:, t], frame, atol=1e-6)


def test_resize_and_center_crop_match_pil():
    array = np.random.default_rng(0).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    image = to_tensor(array)
    assert torch.equal(image, torch.from_numpy(array).permute(2, 0, 1).float() / 255)
    small = resize(image, 20)  # shorter side 20 -> (20, 30)
    peer = to_tensor(np.asarray(Image.fromarray(array).resize((30, 20), Image.BILINEAR)))
    assert small.shape == (3, 20, 30)
    assert (small - peer).abs().mean() < 2 / 255
    crop = center_crop(image, (10, 16))
    assert torch.equal(crop, image[:, 15:25, 22:38])
    assert torch.equal(CenterCrop(8)(image), image[:, 16:24, 26:34])
    assert Resize((7, 9))(image).shape == (3, 7, 9)


def test_normalize_flip_and_random_crop():
    image = torch.rand(3, 16, 16)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(Normalize()(image), (image - mean[:, None, None]) / std[:, None, None])
    flips = {
        bool(torch.equal(RandomHorizontalFlip()(image, torch.Generator().manual_seed(s)), image))
        for s in range(8)
    }
    assert flips == {True, False}
    assert torch.equal(RandomHorizontalFlip(p=1.0)(image), image.flip(-1))
    crop = RandomResizedCrop(8, scale=(0.25, 0.5))
    top, left, h, w = crop.window(16, 16, torch.Generator().manual_seed(1))
    assert 0.2 <= h * w / 256 <= 0.55 and top + h <= 16 and left + w <= 16
    same = [crop(image, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(same[0], same[1]) and same[0].shape == (3, 8, 8)
    # a full-scale, square window at ratio 1 is the whole image
    assert torch.allclose(RandomResizedCrop(16, scale=(1, 1), ratio=(1, 1))(image), image)
    assert Compose([Resize(8), CenterCrop(4)])(image).shape == (3, 4, 4)


def test_bad_inputs_raise():
    with pytest.raises(ShapeError, match="expected an image"):
        resize(torch.rand(4, 4), 2)
    with pytest.raises(ShapeError, match="outside"):
        center_crop(torch.rand(3, 4, 4), 6)
    with pytest.raises(ShapeError, match="3 channels, input has 1"):
        Normalize()(torch.rand(1, 4, 4))
    with pytest.raises(ConfigError):
        RandomResizedCrop(8, scale=(0.5, 0.2))
    with pytest.raises(ShapeError, match="uint8"):
        to_tensor(np.zeros((4, 4, 3), dtype=np.float32))
