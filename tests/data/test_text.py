"""Token blocks for next-token prediction from text files and ShapesWorld text."""

import json

import pytest
import torch

from mambajepa.core.errors import DataError
from mambajepa.data import BadItems, BadItemWarning, ByteTokenizer
from mambajepa.data.text import TokenBlocks, read_documents, shapesworld_documents


def test_blocks_cover_the_stream_and_targets_shift_by_one(tmp_path):
    (tmp_path / "a.txt").write_text("first doc\n\nsecond\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "third"}) + "\n")
    tok = ByteTokenizer()
    docs = list(read_documents([tmp_path / "a.txt", tmp_path / "b.jsonl"]))
    assert docs == ["first doc", "second", "third"]
    blocks = TokenBlocks(docs, tok, block_size=4)
    stream = [t for d in docs for t in [*d.encode(), tok.eos_id]]
    assert len(blocks) == (len(stream) - 1) // 4
    joined = torch.cat([blocks[i]["input_ids"] for i in range(len(blocks))])
    assert joined.tolist() == stream[: 4 * len(blocks)]
    for i in range(len(blocks)):
        item = blocks[i]
        assert item["input_ids"].dtype == torch.int64 and item["input_ids"].shape == (4,)
        assert item["target_ids"][:-1].tolist() == item["input_ids"][1:].tolist()
        assert item["target_ids"][-1] == stream[4 * i + 4]
    with pytest.raises(IndexError):
        blocks[len(blocks)]


def test_bad_corpus_lines_and_files(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"text": "ok"}\n{"title": "no text"}\n[1]\n')
    with pytest.raises(DataError, match=r"c.jsonl:2: missing text field"):
        list(read_documents([tmp_path / "c.jsonl"], BadItems(strict=True)))
    with pytest.warns(BadItemWarning):
        assert list(read_documents([tmp_path / "c.jsonl"])) == ["ok"]
    with pytest.raises(DataError, match="not found"):
        list(read_documents([tmp_path / "none.txt"]))
    with pytest.raises(DataError, match="fewer than block_size"):
        TokenBlocks(["ab"], ByteTokenizer(), block_size=8)


def test_shapesworld_text_pairs_captions_and_answers():
    docs = list(shapesworld_documents(num_items=3, split="val"))
    assert len(docs) == 6 and "background" in docs[0] and "?" in docs[1]
    assert docs == list(shapesworld_documents(num_items=3, split="val"))
