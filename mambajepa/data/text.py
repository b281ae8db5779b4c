"""Text corpora for next-token prediction: documents packed into fixed-length token blocks.

Documents come from ``.txt`` files (one document per non-empty line), ``.jsonl`` files (the
``text`` field of each object) or the built-in ShapesWorld captions and question/answer pairs.
They are tokenized once, joined with EOS between documents into one stream, and cut into
blocks; item ``i`` is ``input_ids = stream[i*L : i*L + L]`` with ``target_ids`` the same window
shifted by one token (nanoGPT-style).

Dimension legend: ``L`` block length in tokens.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from mambajepa.core.errors import ConfigError, DataError
from mambajepa.data.shapes_render import ShapesConfig
from mambajepa.data.skipping import BadItems
from mambajepa.data.synthetic import ShapesCaptions, ShapesVQA
from mambajepa.data.tokenizers import TextTokenizer


def read_documents(paths: Sequence[str | Path], bad_items: BadItems | None = None) -> Iterator[str]:
    """Documents of ``.txt`` (one per non-empty line) and ``.jsonl`` (``text`` field) files.

    Args:
        paths: the corpus files.
        bad_items: receives JSONL lines that are invalid or lack a ``text`` string.

    Raises:
        DataError: when a file is missing or has another suffix (or on a bad line when strict).
    """
    bad_items = bad_items or BadItems(source="read_documents")
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError(f"corpus file {path} not found")
        suffix = path.suffix.lower()
        if suffix not in (".txt", ".jsonl"):
            raise DataError(f"corpus file {path} must end in .txt or .jsonl")
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                if suffix == ".txt":
                    yield line.rstrip("\n")
                    continue
                try:
                    text = json.loads(line).get("text")
                except (json.JSONDecodeError, AttributeError) as err:
                    bad_items.report(f"{path}:{line_no}", f"invalid JSON object: {err}")
                    continue
                if not isinstance(text, str):
                    bad_items.report(f"{path}:{line_no}", "missing text field")
                    continue
                yield text


def shapesworld_documents(
    num_items: int = 10_000, split: str = "train", seed: int = 0, config: ShapesConfig | None = None
) -> Iterator[str]:
    """ShapesWorld text without pixels: per scene, its caption then ``question answer``."""
    captions = ShapesCaptions(split, num_items=num_items, seed=seed, config=config)
    questions = ShapesVQA(split, num_items=num_items, seed=seed, config=config)
    for i in range(num_items):
        yield captions.text(i)
        _, question, answer = questions.qa(i)
        yield f"{question} {answer}"


class TokenBlocks(Dataset):
    """Fixed-length blocks of a tokenized corpus: ``{"input_ids": (L,), "target_ids": (L,)}`` int64.

    Args:
        documents: the corpus, one string per document.
        tokenizer: any :class:`~mambajepa.data.tokenizers.TextTokenizer`.
        block_size: tokens ``L`` per block.

    Raises:
        ConfigError: when ``block_size`` < 1.
        DataError: when the corpus holds fewer than ``block_size + 1`` tokens.
    """

    def __init__(self, documents: Iterable[str], tokenizer: TextTokenizer, block_size: int) -> None:
        if block_size < 1:
            raise ConfigError(f"block_size must be >= 1, got {block_size}")
        stream: list[int] = []
        for text in documents:
            stream.extend(tokenizer.tokenize(text))
            stream.append(tokenizer.eos_id)
        if len(stream) < block_size + 1:
            raise DataError(f"corpus has {len(stream)} tokens, fewer than block_size + 1 = {block_size + 1}")
        self.tokens = torch.tensor(stream, dtype=torch.int64)  # (N,)
        self.block_size = int(block_size)
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return (len(self.tokens) - 1) // self.block_size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"block {index} out of range for {len(self)} blocks")
        start = (index % len(self)) * self.block_size
        window = self.tokens[start : start + self.block_size + 1]  # (L + 1,)
        return {"input_ids": window[:-1], "target_ids": window[1:]}
