"""VQAv2-style visual question answering: question and annotation JSON files plus an image folder.

Questions (``v2_OpenEnded_mscoco_val2014_questions.json``) hold ``questions`` with ``image_id``,
``question`` and ``question_id``; annotations (``v2_mscoco_val2014_annotations.json``) hold
``annotations`` with ``question_id``, ``multiple_choice_answer`` and ten ``answers``. Images are
found with a file-name template, by default COCO's ``COCO_{data_subtype}_{image_id:012d}.jpg``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import UnidentifiedImageError
from torch.utils.data import Dataset

from mambajepa.core.errors import DataError
from mambajepa.core.files import read_json
from mambajepa.data.skipping import BadItems
from mambajepa.data.transforms import load_image

COCO_TEMPLATE = "COCO_{data_subtype}_{image_id:012d}.jpg"


def _load(path: Path) -> dict:
    data = read_json(path, DataError)
    if not isinstance(data, dict):
        raise DataError(f"{path} must hold a JSON object")
    return data


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """VQA accuracy of one prediction: ``min(#annotators who gave it / 3, 1)``."""
    return min(sum(a.strip().lower() == prediction.strip().lower() for a in answers) / 3.0, 1.0)


class VQADataset(Dataset):
    """Items ``{"image", "question", "question_id", "image_id", "answer", "answers"}``.

    ``answer`` is the most common human answer and ``answers`` a ``|``-joined string of all ten
    (so batches collate); both are empty strings when no annotation file is given (test-dev).

    Args:
        questions: the questions JSON.
        image_root: folder holding the images.
        annotations: the annotations JSON, or ``None``.
        image_template: file name of an image from ``image_id`` and the questions'
            ``data_subtype``.
        transform: applied to the ``(3, H, W)`` image.
        strict: raise on a question without annotation or image instead of skipping it.

    Raises:
        DataError: when a file is missing or malformed, or nothing usable remains.
    """

    def __init__(
        self,
        questions: str | Path,
        image_root: str | Path,
        annotations: str | Path | None = None,
        image_template: str = COCO_TEMPLATE,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        strict: bool = False,
    ) -> None:
        questions = Path(questions)
        data = _load(questions)
        if not isinstance(data.get("questions"), list):
            raise DataError(f"{questions} has no 'questions' list")
        self.bad_items = BadItems(strict, f"VQADataset({questions.name})")
        answers: dict[int, dict] = {}
        if annotations is not None:
            ann_data = _load(Path(annotations))
            if not isinstance(ann_data.get("annotations"), list):
                raise DataError(f"{annotations} has no 'annotations' list")
            answers = {a["question_id"]: a for a in ann_data["annotations"] if "question_id" in a}
        subtype = data.get("data_subtype", "")
        root = Path(image_root)
        self.items: list[dict[str, Any]] = []
        for number, q in enumerate(data["questions"]):
            where = f"{questions}:questions[{number}]"
            if not all(k in q for k in ("image_id", "question", "question_id")):
                self.bad_items.report(where, "missing image_id, question or question_id field")
                continue
            item = {
                "image_path": str(root / image_template.format(data_subtype=subtype, image_id=q["image_id"])),
                "question": q["question"],
                "question_id": q["question_id"],
                "image_id": q["image_id"],
                "answer": "",
                "answers": "",
            }
            if annotations is not None:
                ann = answers.get(q["question_id"])
                if ann is None or "multiple_choice_answer" not in ann:
                    self.bad_items.report(
                        where, f"no annotation with an answer for question_id {q['question_id']}"
                    )
                    continue
                item["answer"] = ann["multiple_choice_answer"]
                item["answers"] = "|".join(a.get("answer", "") for a in ann.get("answers", []))
            self.items.append(item)
        if not self.items:
            raise DataError(f"no usable question in {questions}")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        for attempt in range(len(self.items)):
            item = self.items[(index + attempt) % len(self.items)]
            try:
                image = load_image(item["image_path"])
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
                self.bad_items.report(item["image_path"], f"unreadable image: {err}")
                continue
            if self.transform is not None:
                image = self.transform(image)
            return {"image": image, **item}
        raise DataError(f"{self.bad_items.source}: no readable image among {len(self.items)} questions")
