"""A weighted multimodal mixture that runs offline: real code, image -> code, text and instructions.

Every item is deterministic by ``(seed, split, index)``: the index's own generator picks the source
by the mixture weights, then the source's item. A sample is::

    {"source": name, "image": (3, S, S) float in [0, 1] or None, "prompt": str, "text": str}

where ``prompt`` conditions the text and is not predicted (instructions, questions) and ``text``
is what a language model learns to write. Sources:

* ``code``: windows of the Python standard library's own source files
  (:class:`~mambajepa.data.code_corpus.CodeCorpus`, split by file into train / held-out), or of
  user JSONL / text files (``code_jsonl``);
* ``image_code``: a ShapesWorld scene and the program that draws it
  (:mod:`~mambajepa.data.shapes_program`);
* ``text``: ShapesWorld captions (natural-language descriptions), or windows of user JSONL / text
  files (``text_jsonl``);
* ``qa``: ShapesWorld questions about an image and their answers;
* ``edit``: "edit this program so that ..." with the source program as the prompt;
* ``image_text``: image-caption pairs of a JSONL / CSV manifest
  (:class:`~mambajepa.data.image_text.ImageTextManifest`, e.g. charts -> plotting code);
* ``instructions``: ``{"prompt", "response"}`` records of JSONL files.

The user files of a source are its data for every split: pass other files to evaluate on.

Dimension legend: ``S`` image side.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mambajepa.core.errors import ConfigError, DataError
from mambajepa.data.code_corpus import CodeCorpus
from mambajepa.data.image_text import ImageTextManifest
from mambajepa.data.shapes_program import edit_instruction, program_of
from mambajepa.data.shapes_render import ShapesConfig, render, sample_scene
from mambajepa.data.shapes_text import caption, question_answer
from mambajepa.data.text import read_documents
from mambajepa.data.transforms import Normalize, build_transform

__all__ = ["IMAGE_CODE_PROMPT", "OFFLINE_SOURCES", "SOURCES", "MultimodalDataset", "mixture_weights"]

#: sources that need no user files (the default mixture weighs them equally)
OFFLINE_SOURCES = ("code", "image_code", "text", "qa", "edit")
SOURCES = (*OFFLINE_SOURCES, "image_text", "instructions")
#: the instruction that precedes the program of an image
IMAGE_CODE_PROMPT = "write the program that draws this image:\n"
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}


def mixture_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Normalised weights of the sources with a positive weight.

    Raises:
        ConfigError: an unknown source, a negative or non-finite weight, or no positive weight.
    """
    unknown = sorted(set(weights) - set(SOURCES))
    if unknown:
        raise ConfigError(f"unknown mixture sources {unknown}; expected some of {list(SOURCES)}")
    bad = {k: v for k, v in weights.items() if not (math.isfinite(v) and v >= 0)}
    if bad:
        raise ConfigError(f"mixture weights must be finite and >= 0, got {bad}")
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError(f"mixture weights {dict(weights)} have no positive weight")
    return {k: float(v) / total for k, v in weights.items() if v > 0}


class MultimodalDataset(Dataset):
    """``num_items`` samples of a weighted source mixture (module docstring).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (code: ``train`` reads the training files, the
            others the held-out files; ShapesWorld: disjoint scene ranges per split).
        weights: source -> weight (normalised here; zero-weight sources are never drawn; None: the
            offline sources equally).
        num_items: items of the split.
        seed: seeds every choice.
        image_size: side of the ShapesWorld images.
        max_objects: objects per ShapesWorld scene.
        code_chars: characters of a code window (the collator truncates to the token budget).
        code_files: first files of the stdlib split to use (None: all).
        code_jsonl: JSONL / text files read instead of the stdlib for ``code``.
        text_jsonl: JSONL / text files read instead of the captions for ``text``.
        image_text_manifest: the manifest of the ``image_text`` source.
        instructions_jsonl: the files of the ``instructions`` source.
        normalize: ImageNet mean / std normalisation of every image.

    Raises:
        ConfigError: bad weights, sizes or split, or a user source with a weight and no files.
    """

    def __init__(
        self,
        split: str = "train",
        weights: Mapping[str, float] | None = None,
        num_items: int = 10_000,
        seed: int = 0,
        image_size: int = 32,
        max_objects: int = 1,
        code_chars: int = 1024,
        code_files: int | None = None,
        code_jsonl: Sequence[str] = (),
        text_jsonl: Sequence[str] = (),
        image_text_manifest: str | None = None,
        instructions_jsonl: Sequence[str] = (),
        normalize: bool = False,
    ) -> None:
        if split not in _SPLIT_ID:
            raise ConfigError(f"split={split!r}; expected one of {sorted(_SPLIT_ID)}")
        if num_items < 1 or code_chars < 16 or image_size < 8:
            raise ConfigError(
                f"need num_items >= 1, code_chars >= 16, image_size >= 8; got {num_items}, {code_chars}, {image_size}"
            )
        self.split, self.num_items, self.seed = split, int(num_items), int(seed)
        self.weights = mixture_weights(weights or {s: 1.0 for s in OFFLINE_SOURCES})
        self.image_size, self.code_chars = int(image_size), int(code_chars)
        self.world = ShapesConfig(max_objects=max_objects)
        self._names = list(self.weights)
        self._cdf = np.cumsum([self.weights[n] for n in self._names])
        self._code: list[str] | None = None
        self._code_args = (code_files, tuple(code_jsonl))
        self._user = {"text": tuple(text_jsonl), "instructions": tuple(instructions_jsonl)}
        self._user_docs: dict[str, list] = {}
        self._manifest = image_text_manifest
        self._image_text: ImageTextManifest | None = None
        self._normalize = bool(normalize)
        missing = [
            name
            for name, given in (("image_text", image_text_manifest), ("instructions", instructions_jsonl))
            if name in self.weights and not given
        ]
        if missing:
            raise ConfigError(
                f"mixture sources {missing} have a weight but no files (image_text_manifest / instructions_jsonl)"
            )

    def __len__(self) -> int:
        return self.num_items

    @property
    def code_documents(self) -> list[str]:
        """The code documents of this split (read on first use)."""
        if self._code is None:
            files, jsonl = self._code_args
            if jsonl:
                self._code = [d for d in read_documents(list(jsonl)) if d.strip()]
            else:
                corpus = CodeCorpus("train" if self.split == "train" else "held_out", max_files=files)
                self._code = [corpus[i] for i in range(len(corpus))]
            if not self._code:
                raise ConfigError(f"the {self.split} code source holds no documents")
        return self._code

    def _documents(self, source: str) -> list:
        """The user documents of ``text`` (strings) or ``instructions`` (``(prompt, response)``)."""
        if source not in self._user_docs:
            if source == "text":
                docs: list = [d for d in read_documents(list(self._user["text"])) if d.strip()]
            else:
                docs = []
                for path in self._user["instructions"]:
                    for line_no, line in enumerate(
                        Path(path).read_text(encoding="utf-8").splitlines(), start=1
                    ):
                        if not line.strip():
                            continue
                        try:
                            record = json.loads(line)
                            docs.append((str(record["prompt"]), str(record["response"])))
                        except (json.JSONDecodeError, KeyError, TypeError) as err:
                            raise DataError(
                                f"{path}:{line_no}: expected a JSON object with prompt and response ({err})"
                            ) from err
            if not docs:
                raise ConfigError(f"the {source} files hold no documents")
            self._user_docs[source] = docs
        return self._user_docs[source]

    def _pair(self, index: int) -> dict[str, Any]:
        if self._image_text is None:
            transform = build_transform(self.image_size, False, self._normalize, crop_fraction=1.0)
            self._image_text = ImageTextManifest(self._manifest, transform=transform)
        return self._image_text[index % len(self._image_text)]

    def source_of(self, index: int) -> str:
        """The source item ``index`` is drawn from."""
        u = self._rng(index).random()
        return self._names[min(int(np.searchsorted(self._cdf, u, side="right")), len(self._names) - 1)]

    def _rng(self, index: int, salt: int = 0) -> np.random.Generator:
        if not 0 <= index < self.num_items:
            raise IndexError(f"index {index} out of range for {self.num_items} items")
        return np.random.default_rng((self.seed, _SPLIT_ID[self.split], index, salt))

    def _scene(self, index: int):
        return sample_scene(self._rng(index, 2), self.world)

    def _image(self, scene) -> torch.Tensor:
        image = torch.from_numpy(render(scene, self.image_size))
        return self._norm(image) if self._normalize else image

    _norm = staticmethod(Normalize())

    def __getitem__(self, index: int) -> dict[str, Any]:
        source = self.source_of(index)
        rng = self._rng(index, 1)
        if source == "code" or (source == "text" and self._user["text"]):
            docs = self.code_documents if source == "code" else self._documents("text")
            doc = docs[int(rng.integers(len(docs)))]
            start = int(rng.integers(max(1, len(doc) - self.code_chars + 1)))  # a window of code_chars
            return {
                "source": source,
                "image": None,
                "prompt": "",
                "text": doc[start : start + self.code_chars],
            }
        if source == "instructions":
            docs = self._documents("instructions")
            prompt, response = docs[int(rng.integers(len(docs)))]
            return {"source": source, "image": None, "prompt": prompt + "\n", "text": response}
        if source == "image_text":
            pair = self._pair(int(rng.integers(2**31)))
            return {"source": source, "image": pair["image"], "prompt": "", "text": pair["caption"]}
        scene = self._scene(index)
        if source == "image_code":
            return {
                "source": source,
                "image": self._image(scene),
                "prompt": IMAGE_CODE_PROMPT,
                "text": program_of(scene),
            }
        if source == "text":
            return {"source": source, "image": None, "prompt": "", "text": caption(scene, rng)}
        if source == "qa":
            _, question, answer = question_answer(scene, rng)
            return {"source": source, "image": self._image(scene), "prompt": question + "\n", "text": answer}
        instruction, program, edited = edit_instruction(scene, rng)
        return {"source": source, "image": None, "prompt": f"{instruction}\n{program}\n", "text": edited}

    def scene(self, index: int):
        """The ShapesWorld scene of item ``index`` (image_code, text, qa and edit items)."""
        return self._scene(index)
