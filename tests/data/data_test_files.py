"""Small real-format files for the data tests."""

import io
import tarfile

import numpy as np
from PIL import Image


def known_image(seed: int, height: int = 6, width: int = 5) -> np.ndarray:
    """A ``(H, W, 3)`` uint8 picture whose pixels depend on ``seed``."""
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_tar(path, members: list[tuple[str, bytes]]) -> None:
    """A tar file holding ``members`` in the given order."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
