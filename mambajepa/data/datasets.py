"""The registered datasets: ``build_dataset(name, split=..., **arguments)`` (:mod:`mambajepa.registry`).

A method's data section names one of these and sets its arguments
(``data: {name: shapes_images, image_size: 64}``, see :class:`mambajepa.specs.DatasetSpec`).
Each factory takes the split (``train``, ``val`` or ``test``) and typed keyword arguments; image
and video datasets take ``image_size`` and clip datasets ``num_frames``, so a method can size its
token grid from the section alone. A factory returns ``None`` for a split without items
(``n_val: 0``).

========================  =====================================================================
``shapes_images``         ShapesWorld still scenes (three disjoint splits)
``shapes_videos``         ShapesWorld clips of moving objects (three disjoint splits)
``shapes_vl``             ShapesWorld (image or clip, query, target text): captions, questions, both
``shapes_stream``         ShapesWorld long videos of several scenes with cuts at known frames
``cifar10``               CIFAR-10 archives or folders on disk (``val`` and ``test``: the test set)
``video_folder``          clips of the video files in a folder (``val``/``test``: ``val_root``)
``webdataset``            image-caption WebDataset tar shards (``val``/``test``: ``val_shards``)
``vqa``                   VQAv2 question + annotation JSON and an image folder (``val``/``test``: ``val_*``)
``random_function``       samples of a fixed random MLP (the engine's smallest real task)
``multimodal_mixture``    weighted mixture of real code, image -> program, captions, QA and edits
========================  =====================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mambajepa.core.errors import ConfigError
from mambajepa.data.cifar10 import CIFAR10
from mambajepa.data.image_text import WebDatasetShards
from mambajepa.data.mixture import MultimodalDataset
from mambajepa.data.random_function import RandomFunctionDataset
from mambajepa.data.shapes_render import ShapesConfig
from mambajepa.data.synthetic import ShapesImages, ShapesStream, ShapesVideos, ShapesVL
from mambajepa.data.transforms import Normalize, build_transform
from mambajepa.data.video import VideoClips
from mambajepa.data.vqa import COCO_TEMPLATE, VQADataset
from mambajepa.registry import register_dataset

__all__ = [
    "cifar10",
    "multimodal_mixture",
    "random_function",
    "shapes_images",
    "shapes_stream",
    "shapes_videos",
    "shapes_vl",
    "video_folder",
    "vqa",
    "webdataset",
]

Split = Literal["train", "val", "test"]
_SPLITS = ("train", "val", "test")


def _check(split: str, image_size: int | None = None, num_frames: int | None = None) -> None:
    if split not in _SPLITS:
        raise ConfigError(f"split={split!r}; expected one of {list(_SPLITS)}")
    if image_size is not None and image_size < 8:
        raise ConfigError(f"image_size={image_size} must be >= 8")
    if num_frames is not None and num_frames < 1:
        raise ConfigError(f"num_frames={num_frames} must be >= 1")


def _split_size(split: str, n_train: int, n_val: int, n_test: int) -> int:
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    if n_train < 1 or n_val < 0 or n_test < 0:
        raise ConfigError(f"need n_train >= 1, n_val >= 0 and n_test >= 0; got {n_train}, {n_val}, {n_test}")
    return sizes[split]


@register_dataset("shapes_images")
def shapes_images(
    split: Split = "train",
    *,
    image_size: int = 32,  # image side in pixels
    n_train: int = 20_000,  # items of the training split
    n_val: int = 512,  # items of the held-out split of the periodic evaluation (0: none)
    n_test: int = 10_000,  # items of the test split (probes)
    seed: int = 0,  # world seed
    max_objects: int = 1,  # objects per scene
    normalize: bool = False,  # ImageNet mean/std normalisation of the pixels
) -> ShapesImages | None:
    """ShapesWorld still scenes ``{"image": (3, S, S), <label>: int, ...}``."""
    _check(split, image_size)
    num = _split_size(split, n_train, n_val, n_test)
    world, transform = ShapesConfig(max_objects=max_objects), Normalize() if normalize else None
    return ShapesImages(split, image_size, num, seed, world, transform) if num else None


@register_dataset("shapes_videos")
def shapes_videos(
    split: Split = "train",
    *,
    image_size: int = 32,  # frame side in pixels
    num_frames: int = 8,  # frames per clip
    n_train: int = 20_000,  # items of the training split
    n_val: int = 512,  # items of the held-out split of the periodic evaluation (0: none)
    n_test: int = 10_000,  # items of the test split (probes)
    seed: int = 0,  # world seed
    max_objects: int = 1,  # objects per scene
    normalize: bool = False,  # ImageNet mean/std normalisation of the pixels
) -> ShapesVideos | None:
    """ShapesWorld clips ``{"video": (3, T, S, S), <label>: int, ...}``."""
    _check(split, image_size, num_frames)
    num = _split_size(split, n_train, n_val, n_test)
    world, transform = ShapesConfig(max_objects=max_objects), Normalize() if normalize else None
    return (
        ShapesVideos(split, image_size, num, seed, world, transform, num_frames=num_frames) if num else None
    )


@register_dataset("shapes_vl")
def shapes_vl(
    split: Split = "train",
    *,
    image_size: int = 32,  # image / frame side in pixels
    task: Literal["caption", "vqa", "mixed"] = "caption",  # captions, questions, or both
    caption_fraction: float = 0.3,  # share of caption items when task is mixed
    video: bool = False,  # clips instead of still images
    num_frames: int = 8,  # frames per clip when video
    n_train: int = 20_000,  # items of the training split
    n_val: int = 512,  # items of the held-out split of the periodic evaluation (0: none)
    n_test: int = 10_000,  # items of the test split (evaluation)
    seed: int = 0,  # world seed
    max_objects: int = 1,  # objects per scene
    normalize: bool = False,  # ImageNet mean/std normalisation of the pixels
) -> ShapesVL | None:
    """ShapesWorld ``{"image" | "video", "query", "target", "task", <label>: int, ...}`` triplets."""
    _check(split, image_size, num_frames)
    num = _split_size(split, n_train, n_val, n_test)
    world, transform = ShapesConfig(max_objects=max_objects), Normalize() if normalize else None
    if not num:
        return None
    return ShapesVL(
        split, image_size, num, seed, world, transform,
        task=task, caption_fraction=caption_fraction, video=video, num_frames=num_frames,
    )  # fmt: skip


@register_dataset("shapes_stream")
def shapes_stream(
    split: Split = "test",
    *,
    image_size: int = 32,  # frame side in pixels
    num_frames: int = 64,  # frames per stream
    num_scenes: int = 4,  # scenes per stream (cuts = num_scenes - 1)
    min_scene_frames: int = 8,  # the shortest scene
    n_train: int = 1_000,  # streams of the training split
    n_val: int = 20,  # streams of the held-out split
    n_test: int = 20,  # streams of the test split
    seed: int = 0,  # world seed
    max_objects: int = 1,  # objects per scene
    normalize: bool = False,  # ImageNet mean/std normalisation of the pixels
) -> ShapesStream | None:
    """ShapesWorld streams ``{"video": (3, T, S, S), "scene_starts", "frame_scene", "captions"}``."""
    _check(split, image_size, num_frames)
    num = _split_size(split, n_train, n_val, n_test)
    world, transform = ShapesConfig(max_objects=max_objects), Normalize() if normalize else None
    if not num:
        return None
    return ShapesStream(
        split, image_size, num, seed, world, transform,
        num_frames=num_frames, num_scenes=num_scenes, min_scene_frames=min_scene_frames,
    )  # fmt: skip


@register_dataset("cifar10")
def cifar10(
    split: Split = "train",
    *,
    root: str,  # a folder holding cifar-10-batches-{py,bin}/ or an official archive
    image_size: int = 32,  # image side after resizing
    augment: bool = False,  # random resized crop + flip on training images
    normalize: bool = False,  # ImageNet mean/std normalisation of the pixels
    download: bool = False,  # fetch the python archive into root when no copy is found
) -> CIFAR10:
    """CIFAR-10 ``(image (3, S, S), label)``; ``val`` and ``test`` read the test set."""
    _check(split, image_size)
    train = split == "train"
    transform = build_transform(image_size, train and augment, normalize, crop_fraction=1.0)
    return CIFAR10(root, "train" if train else "test", transform=transform, download=download)


@register_dataset("video_folder")
def video_folder(
    split: Split = "train",
    *,
    root: str,  # folder of the training videos
    val_root: str | None = None,  # folder of held-out videos for val and test (default: root)
    image_size: int = 32,  # frame side after resize + center crop
    num_frames: int = 8,  # frames per clip
    frame_stride: int = 2,  # frame step inside a clip
    seed: int = 0,  # seeds the random start frames of training clips
    normalize: bool = False,  # ImageNet mean/std normalisation of the pixels
) -> VideoClips:
    """Clips ``{"video": (3, T, S, S), "path": str, "label": int}`` of the video files in a folder."""
    _check(split, image_size, num_frames)
    if frame_stride < 1:
        raise ConfigError(f"frame_stride={frame_stride} must be >= 1")
    train = split == "train"
    return VideoClips(
        root if train or not val_root else val_root,
        num_frames=num_frames,
        stride=frame_stride,
        size=image_size,
        random_start=train,
        seed=seed,
        transform=Normalize() if normalize else None,
    )


@register_dataset("webdataset")
def webdataset(
    split: Split = "train",
    *,
    root: str,  # folder of the shards
    shards: str = "*.tar",  # training shards under root: a glob or a brace range ({00000..00099}.tar)
    val_shards: str | None = None,  # held-out shards under root for val and test (null: none)
    image_size: int = 224,  # image side after resize + center crop
    normalize: bool = True,  # ImageNet mean/std normalisation of the pixels
    shuffle_buffer: int = 1000,  # samples held for shuffling the training stream
    seed: int = 0,  # seed of the shuffle
    strict: bool = False,  # raise on a bad sample instead of skipping it with a warning
) -> WebDatasetShards | None:
    """Image-caption samples ``{"image": (3, S, S), "caption", "key", "meta"}`` streamed from tar shards."""
    _check(split, image_size)
    pattern = shards if split == "train" else val_shards
    if pattern is None:
        return None
    train = split == "train"
    return WebDatasetShards(
        str(Path(root) / pattern),
        transform=build_transform(image_size, False, normalize, crop_fraction=1.0),
        shuffle_buffer=shuffle_buffer if train else 0,
        seed=seed,
        strict=strict,
    )


@register_dataset("vqa")
def vqa(
    split: Split = "train",
    *,
    root: str,  # folder of the VQAv2 files; the paths below are relative to it
    questions: str = "v2_OpenEnded_mscoco_train2014_questions.json",  # training questions JSON
    annotations: str = "v2_mscoco_train2014_annotations.json",  # training annotations JSON
    images: str = "train2014",  # folder of the training images
    val_questions: str | None = None,  # held-out questions for val and test (null: none)
    val_annotations: str | None = None,  # held-out annotations
    val_images: str | None = None,  # folder of the held-out images (default: images)
    image_template: str = COCO_TEMPLATE,  # image file name from image_id and the questions' data_subtype
    image_size: int = 224,  # image side after resize + center crop
    normalize: bool = True,  # ImageNet mean/std normalisation of the pixels
    strict: bool = False,  # raise on a question without annotation or image instead of skipping it
) -> VQADataset | None:
    """VQAv2 items ``{"image": (3, S, S), "question", "answer", "answers", ...}``."""
    _check(split, image_size)
    if split != "train":
        if val_questions is None:
            return None
        if val_annotations is None:
            raise ConfigError("val_questions needs val_annotations (the held-out answers)")
        questions, annotations, images = val_questions, val_annotations, val_images or images
    base = Path(root)
    return VQADataset(
        base / questions,
        base / images,
        base / annotations,
        image_template=image_template,
        transform=build_transform(image_size, False, normalize, crop_fraction=1.0),
        strict=strict,
    )


@register_dataset("random_function")
def random_function(
    split: Split = "train",
    *,
    in_dim: int = 8,  # input features
    out_dim: int = 4,  # outputs
    n_train: int = 512,  # training samples
    n_val: int = 128,  # held-out samples for val and test (0: none)
    teacher_hidden: int = 16,  # hidden width of the frozen teacher MLP
    noise: float = 0.0,  # std of Gaussian noise added to training targets
    seed: int = 1234,  # seeds the teacher and the samples
) -> RandomFunctionDataset | None:
    """Pairs ``{"x": (I,), "y": (O,)}`` of one fixed random MLP; held-out splits draw other inputs."""
    _check(split)
    train = split == "train"
    num = n_train if train else n_val
    if num == 0:
        return None
    return RandomFunctionDataset(
        num, in_dim, out_dim, teacher_hidden, seed, "train" if train else "val", noise if train else 0.0
    )


@register_dataset("multimodal_mixture")
def multimodal_mixture(
    split: Split = "train",
    *,
    weights: dict[str, float]
    | None = None,  # source -> weight (code, image_code, text, qa, edit); None: equal
    n_train: int = 20_000,  # items of the training split
    n_val: int = 256,  # items of the held-out split of the periodic evaluation (0: none)
    n_test: int = 1_000,  # items of the test split
    seed: int = 0,  # seeds every choice
    image_size: int = 32,  # ShapesWorld image side
    max_objects: int = 1,  # objects per ShapesWorld scene
    code_chars: int = 1024,  # characters of a code window
    code_files: int | None = None,  # first files of the stdlib split (None: all)
    code_jsonl: list[str] | None = None,  # JSONL / text files read instead of the stdlib for `code`
    text_jsonl: list[str] | None = None,  # JSONL / text files read instead of the captions for `text`
    image_text_manifest: str | None = None,  # JSONL / CSV manifest of the `image_text` source
    instructions_jsonl: list[str] | None = None,  # {"prompt", "response"} JSONL of the `instructions` source
    normalize: bool = False,  # ImageNet mean/std normalisation of the images
) -> MultimodalDataset | None:
    """Samples ``{"source", "image" or None, "prompt", "text"}`` of a weighted multimodal mixture."""
    num = _split_size(split, n_train, n_val, n_test)
    if not num:
        return None
    return MultimodalDataset(
        split,
        weights,
        num,
        seed,
        image_size,
        max_objects,
        code_chars,
        code_files,
        tuple(code_jsonl or ()),
        tuple(text_jsonl or ()),
        image_text_manifest,
        tuple(instructions_jsonl or ()),
        normalize,
    )
