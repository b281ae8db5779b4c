"""ShapesWorld datasets: images, videos, captions, questions and long streams with scene cuts.

Every dataset is map-style and deterministic: item ``i`` of a split is drawn from
``(seed, split_start + i)``, so it is the same in every worker, process and epoch, and the
train/val/test splits never share a scene. Items are dicts; the integer label of every attribute
(``shape``, ``colour``, ``size``, ``position``, ``texture``, ``background``, ``direction``,
``speed``, ``count``, ``class10``) sits beside the pixels so a probe can classify each one, and
``dataset.classes`` gives the class names (chance level ``1 / len(names)``).

Dimension legend: ``C`` = 3 colour channels, ``T`` frames, ``S`` image side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mambajepa.core.errors import ConfigError
from mambajepa.data.shapes_render import (
    Scene,
    ShapesConfig,
    attribute_classes,
    render,
    sample_scene,
    scene_rng,
)
from mambajepa.data.shapes_text import ANSWERS, QUESTION_TYPES, caption, question_answer

#: first global scene index of each split; splits are disjoint ranges of this many indices
SPLIT_START = {"train": 0, "val": 100_000_000, "test": 200_000_000}
SPLIT_CAPACITY = 100_000_000
DEFAULT_LENGTH = {"train": 50_000, "val": 5_000, "test": 10_000}
#: labels a still image shows (direction and speed need motion)
IMAGE_LABELS = ("shape", "colour", "size", "position", "texture", "background")
#: labels a clip shows
VIDEO_LABELS = IMAGE_LABELS + ("direction", "speed")

# salts that separate the random streams drawn for one scene index
_CAPTION_SALT, _QUESTION_SALT, _STREAM_SALT, _TASK_SALT = 1, 2, 3, 4

Transform = Callable[..., torch.Tensor]


class _ShapesDataset(Dataset):
    """Split bookkeeping and scene drawing shared by every ShapesWorld dataset."""

    def __init__(
        self,
        split: str = "train",
        size: int = 32,
        num_items: int | None = None,
        seed: int = 0,
        config: ShapesConfig | None = None,
        transform: Transform | None = None,
    ) -> None:
        if split not in SPLIT_START:
            raise ConfigError(f"unknown ShapesWorld split {split!r}; expected one of {sorted(SPLIT_START)}")
        num_items = DEFAULT_LENGTH[split] if num_items is None else int(num_items)
        if not 0 < num_items <= SPLIT_CAPACITY:
            raise ConfigError(f"num_items must lie in [1, {SPLIT_CAPACITY}], got {num_items}")
        if size < 8:
            raise ConfigError(f"ShapesWorld images need size >= 8 pixels, got {size}")
        self.split = split
        self.size = int(size)
        self.num_items = num_items
        self.seed = int(seed)
        self.config = config or ShapesConfig()
        self.transform = transform
        #: class names of every integer label an item carries
        self.classes = attribute_classes(self.config.max_objects)

    def __len__(self) -> int:
        return self.num_items

    def global_index(self, index: int) -> int:
        """The world-wide scene index behind item ``index`` of this split."""
        if not -self.num_items <= index < self.num_items:
            raise IndexError(f"index {index} out of range for a {self.split} split of {self.num_items} items")
        return SPLIT_START[self.split] + index % self.num_items

    def scene(self, index: int) -> Scene:
        """The :class:`~mambajepa.data.shapes_render.Scene` of item ``index``."""
        return sample_scene(scene_rng(self.seed, self.global_index(index)), self.config)

    def _rng(self, index: int, salt: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.global_index(index), salt))

    def _pixels(self, scene, num_frames: int | None) -> torch.Tensor:
        pixels = torch.from_numpy(render(scene, self.size, num_frames))  # (C, S, S) or (C, T, S, S)
        return self.transform(pixels) if self.transform is not None else pixels


class ShapesImages(_ShapesDataset):
    """Still scenes: ``{"image": (3, S, S) float in [0, 1], "index": int, <label>: int, ...}``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: image side in pixels (32 and 64 are the usual choices).
        num_items: number of items in the split (defaults 50k / 5k / 10k).
        seed: the world seed; two datasets with the same seed and split hold the same items.
        config: number of objects, background and 10-class options.
        transform: applied to the image tensor.
    """

    @property
    def visible_labels(self) -> tuple[str, ...]:
        """The labels an image shows: what a probe of its pixels can hope to classify."""
        return IMAGE_LABELS + (("count",) if self.config.max_objects > 1 else ())

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene = self.scene(index)
        return {"image": self._pixels(scene, None), "index": self.global_index(index), **scene.labels()}


class ShapesVideos(_ShapesDataset):
    """Clips of moving objects: ``{"video": (3, T, S, S), <label>: int, ...}``.

    Args:
        num_frames: frames ``T`` per clip.
        **kwargs: as :class:`ShapesImages`.
    """

    def __init__(self, *args: Any, num_frames: int = 16, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if num_frames < 1:
            raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
        self.num_frames = int(num_frames)

    @property
    def visible_labels(self) -> tuple[str, ...]:
        """The labels a clip shows: what a probe of its pixels can hope to classify."""
        return VIDEO_LABELS + (("count",) if self.config.max_objects > 1 else ())

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene = self.scene(index)
        return {
            "video": self._pixels(scene, self.num_frames),
            "index": self.global_index(index),
            **scene.labels(),
        }


class ShapesCaptions(_ShapesDataset):
    """Scenes with a caption naming every attribute: ``{"image" | "video", "caption": str, ...}``.

    Args:
        video: give clips of ``num_frames`` frames (captions then name the motion) instead of images.
        num_frames: frames per clip when ``video``.
        **kwargs: as :class:`ShapesImages`.
    """

    def __init__(self, *args: Any, video: bool = False, num_frames: int = 16, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.video = bool(video)
        self.num_frames = int(num_frames)

    def text(self, index: int) -> str:
        """The caption of item ``index`` (without rendering pixels)."""
        return caption(self.scene(index), self._rng(index, _CAPTION_SALT), video=self.video)

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene = self.scene(index)
        key = "video" if self.video else "image"
        return {
            key: self._pixels(scene, self.num_frames if self.video else None),
            "caption": caption(scene, self._rng(index, _CAPTION_SALT), video=self.video),
            "index": self.global_index(index),
            **scene.labels(),
        }


class ShapesVQA(_ShapesDataset):
    """Scenes with one question: ``{"image" | "video", "question", "answer", "answer_id", ...}``.

    ``answer_id`` indexes :data:`~mambajepa.data.shapes_text.ANSWERS`; ``question_type`` indexes
    :data:`~mambajepa.data.shapes_text.QUESTION_TYPES`.

    Args:
        video: clips (and motion questions) instead of images.
        num_frames: frames per clip when ``video``.
        **kwargs: as :class:`ShapesImages`.
    """

    answers = ANSWERS
    question_types = QUESTION_TYPES

    def __init__(self, *args: Any, video: bool = False, num_frames: int = 16, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.video = bool(video)
        self.num_frames = int(num_frames)

    def qa(self, index: int) -> tuple[str, str, str]:
        """``(question_type, question, answer)`` of item ``index`` (without rendering pixels)."""
        return question_answer(self.scene(index), self._rng(index, _QUESTION_SALT), video=self.video)

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene = self.scene(index)
        qtype, question, answer = question_answer(scene, self._rng(index, _QUESTION_SALT), video=self.video)
        key = "video" if self.video else "image"
        return {
            key: self._pixels(scene, self.num_frames if self.video else None),
            "question": question,
            "answer": answer,
            "answer_id": ANSWERS.index(answer),
            "question_type": QUESTION_TYPES.index(qtype),
            "index": self.global_index(index),
            **scene.labels(),
        }


class ShapesVL(_ShapesDataset):
    """Vision-language triplets ``{"image" | "video", "query", "target", "task", <label>: int, ...}``.

    A ``caption`` item has an empty ``query`` and the scene's caption as ``target``; a ``vqa`` item
    has a question as ``query`` and its canonical answer as ``target`` (plus ``question_type`` and
    ``answer_id``). ``task="mixed"`` draws the kind of each item from its index, a caption with
    probability ``caption_fraction`` (VL-JEPA's supervised stage mixes captioning into VQA).

    Args:
        task: ``"caption"``, ``"vqa"`` or ``"mixed"``.
        caption_fraction: share of caption items when mixed.
        video: clips of ``num_frames`` frames (captions and questions then name the motion).
        num_frames: frames per clip when ``video``.
        **kwargs: as :class:`ShapesImages`.

    Raises:
        ConfigError: an unknown task or a fraction outside [0, 1].
    """

    question_types = QUESTION_TYPES

    def __init__(
        self,
        *args: Any,
        task: str = "caption",
        caption_fraction: float = 0.3,
        video: bool = False,
        num_frames: int = 16,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if task not in ("caption", "vqa", "mixed"):
            raise ConfigError(f"ShapesVL task={task!r}; expected 'caption', 'vqa' or 'mixed'")
        if not 0.0 <= caption_fraction <= 1.0:
            raise ConfigError(f"caption_fraction={caption_fraction} must lie in [0, 1]")
        self.task, self.caption_fraction = task, float(caption_fraction)
        self.video, self.num_frames = bool(video), int(num_frames)

    def task_of(self, index: int) -> str:
        """``"caption"`` or ``"vqa"``: the kind of item ``index``."""
        if self.task != "mixed":
            return self.task
        return "caption" if self._rng(index, _TASK_SALT).random() < self.caption_fraction else "vqa"

    def texts(self, index: int) -> tuple[str, str]:
        """``(query, target)`` of item ``index`` (without rendering pixels)."""
        if self.task_of(index) == "caption":
            return "", caption(self.scene(index), self._rng(index, _CAPTION_SALT), video=self.video)
        _, question, answer = question_answer(self.scene(index), self._rng(index, _QUESTION_SALT), self.video)
        return question, answer

    def corpus(self, index: int) -> list[str]:
        """Every text of item ``index``'s scene, whatever its task: caption, question, answer."""
        scene = self.scene(index)
        _, question, answer = question_answer(scene, self._rng(index, _QUESTION_SALT), video=self.video)
        return [caption(scene, self._rng(index, _CAPTION_SALT), video=self.video), question, answer]

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene = self.scene(index)
        task = self.task_of(index)
        item: dict[str, Any] = {
            "video" if self.video else "image": self._pixels(scene, self.num_frames if self.video else None),
            "task": task,
            "index": self.global_index(index),
            **scene.labels(),
        }
        if task == "caption":
            item.update(query="", target=caption(scene, self._rng(index, _CAPTION_SALT), video=self.video))
        else:
            qtype, question, answer = question_answer(
                scene, self._rng(index, _QUESTION_SALT), video=self.video
            )
            item.update(
                query=question,
                target=answer,
                question_type=QUESTION_TYPES.index(qtype),
                answer_id=ANSWERS.index(answer),
            )
        return item


class ShapesStream(_ShapesDataset):
    """Long videos made of several scenes separated by cuts at known frames.

    Each item is ``{"video": (3, T, S, S), "scene_starts": (K,) int64, "frame_scene": (T,) int64,
    "captions": list of K str}``: scene ``k`` fills frames ``scene_starts[k]`` up to the next start,
    and ``frame_scene[t]`` is the scene shown at frame ``t``. Consecutive scenes differ, so every
    cut is a change of meaning.

    Args:
        num_frames: total frames ``T`` of a stream.
        num_scenes: scenes ``K`` per stream.
        min_scene_frames: the shortest scene; ``num_scenes * min_scene_frames <= num_frames``.
        **kwargs: as :class:`ShapesImages`.

    Raises:
        ConfigError: when the scenes cannot fit in ``num_frames``.
    """

    def __init__(
        self, *args: Any, num_frames: int = 64, num_scenes: int = 4, min_scene_frames: int = 8, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if num_scenes < 1 or min_scene_frames < 1 or num_scenes * min_scene_frames > num_frames:
            raise ConfigError(
                f"ShapesStream needs num_scenes * min_scene_frames <= num_frames, got {num_scenes} * "
                f"{min_scene_frames} > {num_frames}"
            )
        self.num_frames = int(num_frames)
        self.num_scenes = int(num_scenes)
        self.min_scene_frames = int(min_scene_frames)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = self._rng(index, _STREAM_SALT)
        # spread the spare frames over the scenes: lengths >= min_scene_frames summing to T
        spare = self.num_frames - self.num_scenes * self.min_scene_frames
        cuts = np.sort(rng.integers(0, spare + 1, size=self.num_scenes - 1))
        extra = np.diff(np.concatenate([[0], cuts, [spare]]))
        lengths = extra + self.min_scene_frames  # (K,)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        clips, captions, previous = [], [], None
        for k in range(self.num_scenes):
            scene = sample_scene(rng, self.config)
            while previous is not None and scene.labels() == previous:  # a cut must change the scene
                scene = sample_scene(rng, self.config)
            previous = scene.labels()
            clips.append(render(scene, self.size, int(lengths[k])))  # (C, T_k, S, S)
            captions.append(caption(scene, rng, video=True))
        video = torch.from_numpy(np.concatenate(clips, axis=1))  # (C, T, S, S)
        if self.transform is not None:
            video = self.transform(video)
        return {
            "video": video,
            "scene_starts": torch.from_numpy(starts.astype(np.int64)),
            "frame_scene": torch.from_numpy(np.repeat(np.arange(self.num_scenes), lengths).astype(np.int64)),
            "captions": captions,
            "index": self.global_index(index),
        }
