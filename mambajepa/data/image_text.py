"""Image–text pairs: JSONL/CSV manifests, COCO captions JSON and WebDataset tar shards.

Map-style datasets (:class:`ImageTextManifest`, :class:`COCOCaptions`) check their manifest when
built; an item whose image cannot be decoded is reported to the loader's
:class:`~mambajepa.data.skipping.BadItems` and replaced by the next readable item. The streaming
:class:`WebDatasetShards` reads the img2dataset layout (``NNNNN.jpg`` + ``NNNNN.txt`` and/or
``NNNNN.json`` grouped by key in ``.tar`` files) with a shuffle buffer, splitting shards across
DataLoader workers and DDP ranks.

Items are ``{"image": (3, H, W) float in [0, 1] (or transformed), "caption": str, ...}``.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import random
import re
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from mambajepa.core.errors import DataError
from mambajepa.core.files import read_json
from mambajepa.data.skipping import BadItems
from mambajepa.data.transforms import load_image, to_tensor

IMAGE_KEYS = ("image", "image_path", "file_name", "filepath", "path")
CAPTION_KEYS = ("caption", "text", "title")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp")
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZ", b"\xfd7")  # gzip, bzip2, xz
_IMAGE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError)

Transform = Callable[[torch.Tensor], torch.Tensor]


def _first_key(record: dict, keys: Sequence[str]) -> Any:
    for key in keys:
        if record.get(key) not in (None, ""):
            return record[key]
    return None


class _ImageRecords(Dataset):
    """Items from a list of ``(image path, caption, extra fields)`` records with bad-image skipping."""

    def __init__(
        self, records: list[tuple[Path, str, dict]], transform: Transform | None, bad: BadItems
    ) -> None:
        if not records:
            raise DataError(f"{bad.source}: no usable records")
        self.records = records
        self.transform = transform
        self.bad_items = bad

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        for attempt in range(len(self.records)):
            path, caption, extra = self.records[(index + attempt) % len(self.records)]
            try:
                image = load_image(path)
            except _IMAGE_ERRORS as err:
                self.bad_items.report(path, f"unreadable image: {err}")
                continue
            if self.transform is not None:
                image = self.transform(image)
            return {"image": image, "caption": caption, **extra}
        raise DataError(f"{self.bad_items.source}: no readable image among {len(self.records)} records")


class ImageTextManifest(_ImageRecords):
    """Pairs listed in a JSONL (one object per line) or CSV (header row) manifest.

    The image is read from the first of ``image``, ``image_path``, ``file_name``, ``filepath``,
    ``path`` that is present, the caption from ``caption``, ``text`` or ``title``; other fields are
    passed through. Relative image paths are resolved against ``image_root`` (default: the
    manifest's folder).

    Args:
        manifest: a ``.jsonl`` or ``.csv`` file.
        image_root: folder of relative image paths.
        transform: applied to the ``(3, H, W)`` image.
        strict: raise on a bad line or image instead of skipping it with a warning.

    Raises:
        DataError: when the manifest is missing, has an unknown suffix, or holds no usable line.
    """

    def __init__(
        self,
        manifest: str | Path,
        image_root: str | Path | None = None,
        transform: Transform | None = None,
        strict: bool = False,
    ) -> None:
        manifest = Path(manifest)
        if not manifest.is_file():
            raise DataError(f"image-text manifest {manifest} not found")
        root = Path(image_root) if image_root is not None else manifest.parent
        bad = BadItems(strict, f"ImageTextManifest({manifest.name})")
        records = []
        for line_no, record in self._rows(manifest, bad):
            image = _first_key(record, IMAGE_KEYS)
            caption = _first_key(record, CAPTION_KEYS)
            where = f"{manifest}:{line_no}"
            if image is None:
                bad.report(where, f"missing image field (one of {IMAGE_KEYS})")
                continue
            if caption is None:
                bad.report(where, f"missing caption field (one of {CAPTION_KEYS})")
                continue
            extra = {k: v for k, v in record.items() if k not in IMAGE_KEYS and k not in CAPTION_KEYS}
            records.append((root / str(image), str(caption), extra))
        super().__init__(records, transform, bad)

    @staticmethod
    def _rows(manifest: Path, bad: BadItems) -> Iterator[tuple[int, dict]]:
        suffix = manifest.suffix.lower()
        if suffix in (".jsonl", ".json"):
            with open(manifest, encoding="utf-8") as handle:
                for line_no, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as err:
                        bad.report(f"{manifest}:{line_no}", f"invalid JSON: {err}")
                        continue
                    if not isinstance(record, dict):
                        bad.report(f"{manifest}:{line_no}", "a line is not a JSON object")
                        continue
                    yield line_no, record
        elif suffix in (".csv", ".tsv"):
            with open(manifest, encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                for line_no, row in enumerate(reader, start=2):
                    yield line_no, dict(row)
        else:
            raise DataError(f"manifest {manifest} must end in .jsonl, .csv or .tsv")


class COCOCaptions(_ImageRecords):
    """One item per caption annotation of a COCO captions file (``captions_train2017.json``).

    Items also carry ``image_id`` and the annotation ``id``.

    Args:
        annotations: the captions JSON (``images`` with ``id``/``file_name``, ``annotations`` with
            ``image_id``/``caption``).
        image_root: folder of the images.
        transform: applied to the ``(3, H, W)`` image.
        strict: raise on a bad annotation or image instead of skipping it with a warning.

    Raises:
        DataError: when the file is missing or is not COCO captions JSON.
    """

    def __init__(
        self,
        annotations: str | Path,
        image_root: str | Path,
        transform: Transform | None = None,
        strict: bool = False,
    ) -> None:
        annotations = Path(annotations)
        data = read_json(annotations, DataError)
        if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
            raise DataError(f"{annotations} is not COCO captions JSON (needs 'images' and 'annotations')")
        bad = BadItems(strict, f"COCOCaptions({annotations.name})")
        files = {image["id"]: image["file_name"] for image in data["images"]}
        records = []
        for number, ann in enumerate(data["annotations"]):
            where = f"{annotations}:annotations[{number}]"
            if ann.get("image_id") not in files:
                bad.report(where, f"image_id {ann.get('image_id')!r} not in images")
                continue
            if not isinstance(ann.get("caption"), str):
                bad.report(where, "missing caption field")
                continue
            extra = {"image_id": ann["image_id"], "id": ann.get("id", number)}
            records.append((Path(image_root) / files[ann["image_id"]], ann["caption"].strip(), extra))
        super().__init__(records, transform, bad)


# ---------------------------------------------------------------------------------------------
# WebDataset shards
# ---------------------------------------------------------------------------------------------


def expand_shards(pattern: str | Path | Sequence[str | Path]) -> list[Path]:
    """Shard paths from a list, a glob (``shards/*.tar``) or a brace range (``cc3m-{00000..00009}.tar``).

    Raises:
        DataError: when nothing matches.
    """
    if isinstance(pattern, (list, tuple)):
        return [Path(p) for p in pattern]
    text = str(pattern)
    found = re.search(r"\{(\d+)\.\.(\d+)\}", text)
    if found:
        lo, hi = found.group(1), found.group(2)
        names = [
            text[: found.start()] + str(i).zfill(len(lo)) + text[found.end() :]
            for i in range(int(lo), int(hi) + 1)
        ]
    else:
        names = sorted(glob.glob(text)) if any(c in text for c in "*?[") else [text]
    paths = [Path(n) for n in names]
    if not paths:
        raise DataError(f"no WebDataset shard matches {text}")
    return paths


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class WebDatasetShards(IterableDataset):
    """Stream ``{"image", "caption", "key", "meta"}`` samples from img2dataset-style tar shards.

    Shards go round-robin to the ``world_size * num_workers`` readers (rank-major); when there are
    fewer shards than readers every reader walks all shards and keeps every n-th sample instead.
    ``meta`` is the sample's ``.json`` member as a JSON string (``"{}"`` when absent), so batches
    collate. Samples pass through a shuffle buffer seeded by ``(seed, epoch, reader)``; call
    :meth:`set_epoch` each epoch for a new order.

    Args:
        shards: list of paths, glob or brace range (see :func:`expand_shards`).
        transform: applied to the ``(3, H, W)`` image.
        shuffle_buffer: samples held for shuffling; 0 or 1 keeps the stored order.
        seed: seed of the shuffle.
        strict: raise on a truncated tar, an unreadable image or a missing caption instead of
            skipping it with a warning.
        rank: DDP rank; taken from ``torch.distributed`` when ``None``.
        world_size: DDP world size; taken from ``torch.distributed`` when ``None``.
    """

    def __init__(
        self,
        shards: str | Path | Sequence[str | Path],
        transform: Transform | None = None,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        strict: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        self.shards = expand_shards(shards)
        self.transform = transform
        self.shuffle_buffer = int(shuffle_buffer)
        self.seed = int(seed)
        self.rank, self.world_size = rank, world_size
        self.bad_items = BadItems(strict, "WebDatasetShards")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reseed the shuffle for a new pass."""
        self.epoch = int(epoch)

    def _reader(self) -> tuple[int, int]:
        rank, world = _rank_and_world()
        rank = rank if self.rank is None else self.rank
        world = world if self.world_size is None else self.world_size
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * workers + worker, world * workers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        reader, readers = self._reader()
        by_shard = len(self.shards) >= readers
        shards = self.shards[reader::readers] if by_shard else self.shards
        samples = self._samples(shards)
        if not by_shard:
            samples = (s for n, s in enumerate(samples) if n % readers == reader)
        yield from self._shuffled(samples, random.Random(f"{self.seed}/{self.epoch}/{reader}"))

    def _shuffled(self, samples: Iterator[dict], rng: random.Random) -> Iterator[dict]:
        if self.shuffle_buffer <= 1:
            yield from samples
            return
        buffer: list[dict] = []
        for sample in samples:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(sample)
                continue
            slot = rng.randrange(len(buffer))
            yield buffer[slot]
            buffer[slot] = sample
        rng.shuffle(buffer)
        yield from buffer

    def _samples(self, shards: Sequence[Path]) -> Iterator[dict[str, Any]]:
        for shard in shards:
            for key, files in self._groups(shard):
                sample = self._decode(shard, key, files)
                if sample is not None:
                    yield sample

    def _groups(self, shard: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
        """``(key, {extension: bytes})`` per sample, in tar order; a broken tar ends its shard."""
        key, files = None, {}
        try:
            with open(shard, "rb") as handle:
                compressed = handle.read(3)[:2] in _COMPRESSED_MAGIC
                handle.seek(0)
                with tarfile.open(fileobj=handle, mode="r|*") as tar:
                    for member in tar:
                        if not member.isfile():
                            continue
                        name = Path(member.name)
                        member_key = str(name.parent / name.name.split(".", 1)[0])
                        extension = name.name.split(".", 1)[1].lower() if "." in name.name else ""
                        if member_key != key and key is not None:
                            yield key, files
                            files = {}
                        key = member_key
                        files[extension] = tar.extractfile(member).read()
                    end = tar.offset
                if not compressed:
                    # tarfile stops quietly at a cut between members; a whole tar ends in 2 zero blocks
                    handle.seek(end)
                    if handle.read(2 * tarfile.BLOCKSIZE) != bytes(2 * tarfile.BLOCKSIZE):
                        raise tarfile.ReadError(f"no end-of-archive marker after byte {end}")
        except (tarfile.TarError, EOFError, OSError) as err:
            self.bad_items.report(shard, f"truncated or unreadable tar: {err}")
            return  # the partial group at the break is dropped with the rest of the shard
        if key is not None:
            yield key, files

    def _decode(self, shard: Path, key: str, files: dict[str, bytes]) -> dict[str, Any] | None:
        where = f"{shard}:{key}"
        image_ext = next((e for e in IMAGE_EXTENSIONS if e in files), None)
        if image_ext is None:
            self.bad_items.report(where, f"no image member (one of {IMAGE_EXTENSIONS})")
            return None
        meta: dict = {}
        if "json" in files:
            try:
                meta = json.loads(files["json"].decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                self.bad_items.report(where, f"invalid json member: {err}")
                return None
        caption = (
            files["txt"].decode("utf-8", errors="replace").strip() if "txt" in files else meta.get("caption")
        )
        if not caption:
            self.bad_items.report(where, "missing caption field (.txt member or 'caption' in .json)")
            return None
        try:
            with Image.open(io.BytesIO(files[image_ext])) as image:
                pixels = to_tensor(image)  # (3, H, W)
        except _IMAGE_ERRORS as err:
            self.bad_items.report(where, f"unreadable image: {err}")
            return None
        if self.transform is not None:
            pixels = self.transform(pixels)
        return {"image": pixels, "caption": caption, "key": key, "meta": json.dumps(meta, sort_keys=True)}
