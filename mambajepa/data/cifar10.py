"""CIFAR-10 from its official archives or their extracted folders, without torchvision.

Two on-disk layouts are read:

* ``cifar-10-python.tar.gz`` / ``cifar-10-batches-py/``: pickled batches (a dict with ``data``, a
  ``(N, 3072)`` uint8 array, and ``labels``). They are read by :func:`restricted_loads`, which
  admits only plain containers, numbers, strings, bytes and the numpy array/dtype records, so a
  tampered file cannot run code.
* ``cifar-10-binary.tar.gz`` / ``cifar-10-batches-bin/``: records of one label byte followed by
  3072 pixel bytes in ``(C, H, W)`` order.

Archives are read in place (no extraction) and checked against the official MD5 sums.
A writer for both layouts (:func:`write_cifar10`) lets ShapesWorld export itself as CIFAR-10.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mambajepa.core.errors import DataError
from mambajepa.core.files import atomic_path
from mambajepa.data.skipping import BadItems

URL_BASE = "https://www.cs.toronto.edu/~kriz/"
ARCHIVES = {
    "python": ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py"),
    "binary": ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", "cifar-10-batches-bin"),
}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
RECORD_BYTES = 1 + 3 * 32 * 32


# ---------------------------------------------------------------------------------------------
# restricted unpickling
# ---------------------------------------------------------------------------------------------


class _ArrayRecord:
    """Stands in for ``numpy.ndarray`` while unpickling: it only stores the pickled state."""

    def __init__(self, *args: Any) -> None:
        self.state: tuple | None = None

    def __setstate__(self, state: tuple) -> None:
        self.state = state


class _DtypeRecord:
    """Stands in for ``numpy.dtype``: keeps the type code and the byte order from the state."""

    def __init__(self, code: Any, align: Any = False, copy: Any = False) -> None:
        self.code = code.decode("latin1") if isinstance(code, bytes) else str(code)
        self.order = "|"

    def __setstate__(self, state: tuple) -> None:
        order = state[1]
        self.order = order.decode("latin1") if isinstance(order, bytes) else str(order)

    def to_numpy(self) -> np.dtype:
        dtype = np.dtype(self.code)
        if dtype.kind not in "biuf":
            raise pickle.UnpicklingError(f"array dtype {self.code!r} is not a plain number type")
        return dtype.newbyteorder(self.order) if self.order in "<>" else dtype


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ArrayRecord:
    return _ArrayRecord()


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> _ArrayRecord:
    record = _ArrayRecord()
    record.state = (1, shape, dtype, order == "F", bytes(buffer))
    return record


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _ArrayRecord,
    ("numpy", "dtype"): _DtypeRecord,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _to_plain(obj: Any) -> Any:
    """Replace array records by numpy arrays built from their raw bytes, recursively."""
    if isinstance(obj, _ArrayRecord):
        if obj.state is None or len(obj.state) != 5:
            raise pickle.UnpicklingError("malformed numpy array record")
        _, shape, dtype, fortran, raw = obj.state
        if not isinstance(dtype, _DtypeRecord) or not isinstance(raw, (bytes, bytearray, str)):
            raise pickle.UnpicklingError("numpy array record without a plain dtype and raw bytes")
        raw = raw.encode("latin1") if isinstance(raw, str) else bytes(raw)
        array = np.frombuffer(raw, dtype=dtype.to_numpy()).reshape(
            tuple(shape), order="F" if fortran else "C"
        )
        return array.copy()
    if isinstance(obj, dict):
        return {_to_plain(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_plain(v) for v in obj)
    return obj


def restricted_loads(data: bytes) -> Any:
    """Unpickle data that may only hold containers, numbers, strings, bytes and numpy arrays.

    Strings pickled by Python 2 come back as ``bytes`` (as with ``encoding="bytes"``).

    Args:
        data: the pickle stream.

    Returns:
        The object, with numpy arrays rebuilt from their raw bytes.

    Raises:
        pickle.UnpicklingError: on any other global (``os.system``, ``builtins.eval``, ...).
    """
    return _to_plain(_RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load())


# ---------------------------------------------------------------------------------------------
# batch readers and writers
# ---------------------------------------------------------------------------------------------


def _field(batch: dict, name: str) -> Any:
    for key in (name.encode(), name):
        if key in batch:
            return batch[key]
    raise DataError(f"missing field {name!r} (fields: {sorted(map(str, batch))})")


def parse_python_batch(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled batch into ``(images (N, 3, 32, 32) uint8, labels (N,) int64)``."""
    try:
        batch = restricted_loads(data)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"unreadable pickle: {err}") from err
    if not isinstance(batch, dict):
        raise DataError(f"expected a dict batch, got {type(batch).__name__}")
    pixels = np.asarray(_field(batch, "data"))
    labels = np.asarray(_field(batch, "labels"), dtype=np.int64)
    if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != 3072:
        raise DataError(f"data must be (N, 3072) uint8, got {pixels.shape} {pixels.dtype}")
    if labels.shape != (pixels.shape[0],) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DataError(f"labels must be {pixels.shape[0]} ints in [0, 9]")
    return pixels.reshape(-1, 3, 32, 32), labels  # (N, C, H, W)


def parse_binary_batch(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Decode records of 1 label byte + 3072 CHW pixel bytes into ``(images, labels)``."""
    if len(data) == 0 or len(data) % RECORD_BYTES:
        raise DataError(f"size {len(data)} bytes is not a positive multiple of {RECORD_BYTES}")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)  # (N, 1 + C*H*W)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"label byte {int(labels.max())} is not in [0, 9]")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels  # (N, C, H, W), (N,)


def write_cifar10(
    folder: str | Path,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    layout: str = "python",
    class_names: Iterable[str] = CLASSES,
) -> Path:
    """Write ``cifar-10-batches-py/`` or ``cifar-10-batches-bin/``: 5 train batches, 1 test batch, names.

    The python layout holds pickled dicts (``data_batch_{1..5}``, ``test_batch``, ``batches.meta``);
    the binary one label-then-pixels records (``*.bin``, ``batches.meta.txt``).

    Args:
        folder: parent folder; created if needed.
        train: ``(images (N, 3, 32, 32) uint8, labels (N,))``.
        test: the same for the test batch.
        layout: ``"python"`` or ``"binary"``.
        class_names: the 10 label names.

    Returns:
        The batches folder.

    Raises:
        DataError: for an unknown layout.
    """
    if layout not in ARCHIVES:
        raise DataError(f"unknown CIFAR-10 layout {layout!r}; expected one of {sorted(ARCHIVES)}")
    out = Path(folder) / ARCHIVES[layout][2]
    out.mkdir(parents=True, exist_ok=True)
    for (images, labels), names in ((train, TRAIN_BATCHES), (test, TEST_BATCHES)):
        for name, part in zip(names, np.array_split(np.arange(len(labels)), len(names))):
            pixels = np.ascontiguousarray(images[part], dtype=np.uint8)
            pixels = pixels.reshape(len(part), 3072)  # (N, C·H·W)
            if layout == "python":
                record = {
                    b"batch_label": name.encode(),
                    b"labels": [int(v) for v in labels[part]],
                    b"data": pixels,
                    b"filenames": [f"{name}_{i:05d}.png".encode() for i in range(len(part))],
                }
                (out / name).write_bytes(pickle.dumps(record, protocol=2))
            else:
                label_bytes = np.asarray(labels[part], dtype=np.uint8)[:, None]  # (N, 1)
                records = np.concatenate([label_bytes, pixels], axis=1)  # (N, 1 + C·H·W)
                (out / f"{name}.bin").write_bytes(records.tobytes())
    if layout == "python":
        meta = {b"label_names": [n.encode() for n in class_names], b"num_cases_per_batch": len(train[1]) // 5}
        (out / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    else:
        (out / "batches.meta.txt").write_text("\n".join(class_names) + "\n")
    return out


def write_cifar_python(
    folder: str | Path,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    class_names: Iterable[str] = CLASSES,
) -> Path:
    """:func:`write_cifar10` in the python layout (``cifar-10-batches-py/``)."""
    return write_cifar10(folder, train, test, "python", class_names)


# ---------------------------------------------------------------------------------------------
# locating, checking and downloading
# ---------------------------------------------------------------------------------------------


def md5sum(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex MD5 digest of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download_cifar10(
    root: str | Path, layout: str = "python", url: str | None = None, md5: str | None = None
) -> Path:
    """Download an official CIFAR-10 archive into ``root`` and check its MD5.

    Args:
        root: destination folder.
        layout: ``"python"`` or ``"binary"``.
        url: override of the download address (a mirror, or ``file://`` for a local copy).
        md5: expected digest; defaults to the official one.

    Returns:
        Path of the archive (reused when it is already there with the right digest).

    Raises:
        DataError: when the download fails or the digest does not match.
    """
    if layout not in ARCHIVES:
        raise DataError(f"unknown CIFAR-10 layout {layout!r}; expected one of {sorted(ARCHIVES)}")
    name, official_md5, _ = ARCHIVES[layout]
    expected = md5 or official_md5
    target = Path(root) / name
    if target.is_file() and md5sum(target) == expected:
        return target
    with atomic_path(target) as partial:  # a failed or corrupt download never becomes ``target``
        try:
            urllib.request.urlretrieve(url or URL_BASE + name, partial)
        except OSError as err:
            raise DataError(f"downloading CIFAR-10 from {url or URL_BASE + name} failed: {err}") from err
        got = md5sum(partial)
        if got != expected:
            raise DataError(f"downloaded {name} has MD5 {got}, expected {expected}")
    return target


def _find_source(root: Path) -> tuple[str, Path] | None:
    """``(layout, folder or archive)`` of the first CIFAR-10 copy found at or under ``root``."""
    for layout, (_, _, folder) in ARCHIVES.items():
        marker = "data_batch_1" + ("" if layout == "python" else ".bin")
        if (root / marker).is_file():
            return layout, root
        if (root / folder / marker).is_file():
            return layout, root / folder
    for layout, (archive, _, _) in ARCHIVES.items():
        if root.is_file() and root.name == archive:
            return layout, root
        if (root / archive).is_file():
            return layout, root / archive
    return None


class CIFAR10(Dataset):
    """CIFAR-10 items ``(image, label)``; ``image`` is ``(3, 32, 32)`` float in [0, 1] by default.

    Args:
        root: a folder holding ``cifar-10-batches-{py,bin}/`` or an official archive (or that
            folder or archive itself).
        split: ``"train"`` (50k images) or ``"test"`` (10k).
        transform: applied to the ``(3, 32, 32)`` float image.
        download: fetch the python archive into ``root`` when no copy is found.
        check_md5: compare an archive with the official digest before reading it.
        strict: raise on an unreadable batch instead of skipping it with a warning.

    Raises:
        DataError: when no copy is found, an archive's digest is wrong, or no batch is readable.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        download: bool = False,
        check_md5: bool = True,
        strict: bool = False,
    ) -> None:
        if split not in ("train", "test"):
            raise DataError(f"CIFAR-10 split must be 'train' or 'test', got {split!r}")
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.bad_items = BadItems(strict, "CIFAR10")
        source = _find_source(self.root)
        if source is None and download:
            download_cifar10(self.root)
            source = _find_source(self.root)
        if source is None:
            raise DataError(
                f"CIFAR-10 not found under {self.root}; fetch it with `mambajepa data download cifar10 "
                f"--root {self.root}`, or pass --data.root (a folder holding cifar-10-batches-py/ or "
                "cifar-10-batches-bin/, or an official archive) or --data.download"
            )
        self.layout, self.source = source
        names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
        suffix = "" if self.layout == "python" else ".bin"
        files = self._read_files([n + suffix for n in names], check_md5)
        parse = parse_python_batch if self.layout == "python" else parse_binary_batch
        images, labels = [], []
        for name, data in files.items():
            try:
                batch_images, batch_labels = parse(data)
            except DataError as err:
                self.bad_items.report(self._where(name), str(err))
                continue
            images.append(batch_images)
            labels.append(batch_labels)
        if not images:
            raise DataError(f"no readable CIFAR-10 {split} batch in {self.source}")
        self.images = np.concatenate(images)  # (N, C, H, W) uint8
        self.labels = np.concatenate(labels)  # (N,) int64
        self.classes = CLASSES

    def _where(self, name: str) -> str:
        return f"{self.source}:{name}" if self.source.is_file() else str(self.source / name)

    def _read_files(self, names: list[str], check_md5: bool) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        if self.source.is_dir():
            for name in names:
                path = self.source / name
                if path.is_file():
                    files[name] = path.read_bytes()
                else:
                    self.bad_items.report(path, "missing batch file")
            return files
        archive, official_md5, _ = ARCHIVES[self.layout]
        if check_md5 and (got := md5sum(self.source)) != official_md5:
            raise DataError(
                f"{self.source} has MD5 {got}, expected {official_md5} for {archive}; "
                "pass check_md5=False to read a re-packed archive"
            )
        try:
            with tarfile.open(self.source, "r:*") as tar:
                members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
                for name in names:
                    if name not in members:
                        self.bad_items.report(self._where(name), "missing batch file")
                        continue
                    files[name] = tar.extractfile(members[name]).read()
        except (tarfile.TarError, EOFError, OSError) as err:
            self.bad_items.report(self.source, f"unreadable archive: {err}")
        return files

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(self.images[index]).float().div_(255.0)  # (C, H, W)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
