"""VQAv2-style question/annotation JSON + image folder."""

import json

import pytest
import torch
from data_test_files import known_image, png_bytes

from mambajepa.core.errors import DataError
from mambajepa.data import BadItemWarning, VQADataset, vqa_accuracy


def _write(tmp_path, with_orphan=False):
    images = tmp_path / "val2014"
    images.mkdir()
    for image_id in (1, 2):
        (images / f"COCO_val2014_{image_id:012d}.jpg").write_bytes(png_bytes(known_image(image_id)))
    questions = [
        {"image_id": 1, "question": "What color is the cat?", "question_id": 10},
        {"image_id": 2, "question": "How many dogs?", "question_id": 20},
    ]
    if with_orphan:
        questions.append({"image_id": 2, "question": "Unanswered?", "question_id": 30})
    annotations = [
        {
            "question_id": 10,
            "image_id": 1,
            "multiple_choice_answer": "black",
            "answers": [
                {"answer": a, "answer_confidence": "yes", "answer_id": i}
                for i, a in enumerate(["black"] * 9 + ["grey"])
            ],
        },
        {"question_id": 20, "image_id": 2, "multiple_choice_answer": "2", "answers": [{"answer": "2"}] * 10},
    ]
    (tmp_path / "q.json").write_text(json.dumps({"data_subtype": "val2014", "questions": questions}))
    (tmp_path / "a.json").write_text(json.dumps({"annotations": annotations}))
    return images


def test_items_pair_images_questions_and_answers(tmp_path):
    images = _write(tmp_path)
    data = VQADataset(tmp_path / "q.json", images, tmp_path / "a.json")
    assert len(data) == 2
    item = data[0]
    expected = torch.from_numpy(known_image(1)).permute(2, 0, 1).float() / 255
    assert torch.equal(item["image"], expected)
    assert item["question"] == "What color is the cat?" and item["answer"] == "black"
    assert item["answers"].split("|").count("grey") == 1 and data[1]["question_id"] == 20
    test_dev = VQADataset(tmp_path / "q.json", images)
    assert test_dev[1]["answer"] == "" and test_dev[1]["image_id"] == 2


def test_unanswered_question_and_missing_image(tmp_path):
    images = _write(tmp_path, with_orphan=True)
    with pytest.raises(DataError, match=r"q.json:questions\[2\]: no annotation .* question_id 30"):
        VQADataset(tmp_path / "q.json", images, tmp_path / "a.json", strict=True)
    with pytest.warns(BadItemWarning, match="question_id 30"):
        data = VQADataset(tmp_path / "q.json", images, tmp_path / "a.json")
    assert len(data) == 2
    (images / "COCO_val2014_000000000001.jpg").unlink()
    with pytest.warns(BadItemWarning, match="COCO_val2014_000000000001.jpg: unreadable image"):
        assert data[0]["question_id"] == 20  # the next answerable question comes instead
    with pytest.raises(DataError, match="not found"):
        VQADataset(tmp_path / "missing.json", images)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        VQADataset(tmp_path / "bad.json", images)


def test_vqa_accuracy_counts_annotators():
    assert vqa_accuracy("Black", ["black"] * 9 + ["grey"]) == 1.0
    assert vqa_accuracy("grey", ["black"] * 9 + ["grey"]) == pytest.approx(1 / 3)
    assert vqa_accuracy("white", ["black"] * 10) == 0.0
