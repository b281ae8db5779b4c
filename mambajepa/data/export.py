"""Write ShapesWorld in real on-disk formats so the real loaders can read it back.

Formats: ``cifar-binary`` / ``cifar-python`` (the CIFAR-10 layouts, 32 px, labels from the
10-class task), ``jsonl`` (PNG files + a manifest), ``coco`` (PNG files + COCO captions JSON +
VQAv2 question/annotation JSON) and ``webdataset`` (tar shards of ``.png`` + ``.txt`` + ``.json``).
Pixels are stored as uint8 (lossless PNG or raw bytes), so reading an export back gives
``round(255 * rendered) / 255`` exactly.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mambajepa.core.errors import ConfigError
from mambajepa.data.cifar10 import write_cifar10
from mambajepa.data.shapes_render import CLASS10_NAMES, ShapesConfig
from mambajepa.data.shapes_text import caption, question_answer
from mambajepa.data.synthetic import ShapesCaptions, ShapesImages, ShapesVQA

FORMATS = ("cifar-binary", "cifar-python", "jsonl", "coco", "webdataset")
#: file name of an exported COCO/VQA image, from its ``image_id`` (the scene's global index)
COCO_IMAGE_TEMPLATE = "{image_id:012d}.png"


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint8, rounding to the nearest level."""
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def _cifar_arrays(dataset: ShapesImages) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack(
        [to_uint8(dataset[i]["image"]).transpose(2, 0, 1) for i in range(len(dataset))]
    )  # (N, 3, H, W)
    labels = np.array([dataset.scene(i).labels()["class10"] for i in range(len(dataset))], dtype=np.int64)
    return images, labels  # (N, C, H, W) uint8, (N,)


def export_shapesworld(
    out: str | Path,
    fmt: str,
    num_items: int = 1000,
    num_test: int | None = None,
    split: str = "train",
    size: int = 32,
    seed: int = 0,
    config: ShapesConfig | None = None,
    shard_size: int = 1000,
    captions_per_image: int = 2,
    questions_per_image: int = 2,
) -> list[Path]:
    """Write ``num_items`` ShapesWorld scenes of one split in a real format.

    Args:
        out: output folder (created).
        fmt: one of :data:`FORMATS`.
        num_items: scenes to write (for CIFAR layouts: the train batches).
        num_test: CIFAR layouts only: scenes of the ``test`` split for ``test_batch``
            (default ``num_items // 5``, at least 1).
        split: ShapesWorld split of the exported scenes (non-CIFAR formats).
        size: image side; CIFAR layouts need 32.
        seed: world seed.
        config: scene options; CIFAR layouts force ``ten_class=True``.
        shard_size: samples per WebDataset shard.
        captions_per_image: COCO captions per image (the first is ``ShapesCaptions.text``).
        questions_per_image: VQA questions per image (the first is ``ShapesVQA.qa``).

    Returns:
        The files and folders written.

    Raises:
        ConfigError: on an unknown format or a CIFAR export that is not 32 px.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; expected one of {FORMATS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = config or ShapesConfig()
    if fmt.startswith("cifar"):
        if size != 32:
            raise ConfigError(f"CIFAR-10 layouts hold 32x32 images, got size={size}")
        config = replace(config, ten_class=True)
        num_test = max(1, num_items // 5) if num_test is None else num_test
        train = _cifar_arrays(ShapesImages("train", 32, num_items, seed, config))
        test = _cifar_arrays(ShapesImages("test", 32, num_test, seed, config))
        layout = "binary" if fmt == "cifar-binary" else "python"
        return [write_cifar10(out, train, test, layout, CLASS10_NAMES)]
    captions = ShapesCaptions(split, size, num_items, seed, config)
    if fmt == "jsonl":
        return _export_jsonl(out, captions)
    if fmt == "coco":
        vqa = ShapesVQA(split, size, num_items, seed, config)
        return _export_coco(out, captions, vqa, captions_per_image, questions_per_image)
    return _export_webdataset(out, captions, shard_size)


def _export_jsonl(out: Path, captions: ShapesCaptions) -> list[Path]:
    images = out / "images"
    images.mkdir(exist_ok=True)
    manifest = out / f"{captions.split}.jsonl"
    with open(manifest, "w", encoding="utf-8") as handle:
        for i in range(len(captions)):
            item = captions[i]
            name = f"images/{captions.split}_{item['index']:09d}.png"
            (out / name).write_bytes(_png(item.pop("image")))
            handle.write(json.dumps({"image": name, **item}) + "\n")
    return [manifest, images]


def _export_coco(
    out: Path, captions: ShapesCaptions, vqa: ShapesVQA, per_image: int, questions_per_image: int
) -> list[Path]:
    images_dir, ann_dir = out / "images", out / "annotations"
    images_dir.mkdir(exist_ok=True)
    ann_dir.mkdir(exist_ok=True)
    images, annotations, questions, answers = [], [], [], []
    for i in range(len(captions)):
        image_id = captions.global_index(i)
        scene = captions.scene(i)
        file_name = COCO_IMAGE_TEMPLATE.format(image_id=image_id)
        (images_dir / file_name).write_bytes(_png(captions[i]["image"]))
        images.append(
            {"id": image_id, "file_name": file_name, "width": captions.size, "height": captions.size}
        )
        texts = [captions.text(i)] + [
            caption(scene, np.random.default_rng((captions.seed, image_id, 10 + k)))
            for k in range(1, per_image)
        ]
        for k, text in enumerate(texts):
            annotations.append({"id": image_id * per_image + k, "image_id": image_id, "caption": text})
        qas = [vqa.qa(i)] + [
            question_answer(scene, np.random.default_rng((vqa.seed, image_id, 20 + k)))
            for k in range(1, questions_per_image)
        ]
        for k, (qtype, question, answer) in enumerate(qas):
            question_id = image_id * questions_per_image + k
            questions.append({"image_id": image_id, "question": question, "question_id": question_id})
            answers.append(
                {
                    "question_id": question_id,
                    "image_id": image_id,
                    "question_type": qtype,
                    "answer_type": "number" if qtype == "count" else "other",
                    "multiple_choice_answer": answer,
                    "answers": [
                        {"answer": answer, "answer_confidence": "yes", "answer_id": j + 1} for j in range(10)
                    ],
                }
            )
    split = captions.split
    files = {
        f"captions_{split}.json": {
            "info": {"description": "ShapesWorld"},
            "images": images,
            "annotations": annotations,
        },
        f"questions_{split}.json": {"data_subtype": split, "questions": questions},
        f"answers_{split}.json": {"data_subtype": split, "annotations": answers},
    }
    for name, content in files.items():
        (ann_dir / name).write_text(json.dumps(content), encoding="utf-8")
    return [images_dir, *(ann_dir / name for name in files)]


def _export_webdataset(out: Path, captions: ShapesCaptions, shard_size: int) -> list[Path]:
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    shards = []
    for first in range(0, len(captions), shard_size):
        path = out / f"shapesworld-{captions.split}-{first // shard_size:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(first, min(first + shard_size, len(captions))):
                item = captions[i]
                key = f"{item['index']:09d}"
                meta = {k: v for k, v in item.items() if k not in ("image", "caption")}
                members = {
                    "png": _png(item["image"]),
                    "txt": item["caption"].encode("utf-8"),
                    "json": json.dumps({"caption": item["caption"], **meta}).encode("utf-8"),
                }
                for extension, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{extension}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        shards.append(path)
    return shards
