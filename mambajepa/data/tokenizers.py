"""Text tokenizers with one batch API: a built-in byte-level one and Hugging Face ``tokenizers`` BPE.

Both give ``batch_encode(texts, max_length, padding, truncation) -> (ids, attention_mask)``, two
``(B, L)`` int64 tensors, and ``decode(ids)``. Sequences are ``[BOS] tokens [EOS]``, padded on
the right with ``pad_id``; truncation keeps BOS and EOS and drops tokens from the end.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from mambajepa.core.errors import ConfigError, DataError

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


class TextTokenizer(abc.ABC):
    """Shared batching, padding and truncation; subclasses map text to ids and back."""

    pad_id: int
    bos_id: int
    eos_id: int
    unk_id: int
    vocab_size: int

    @abc.abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Ids of ``text`` without special tokens."""

    @abc.abstractmethod
    def detokenize(self, ids: Sequence[int]) -> str:
        """Text of ids that contain no special tokens."""

    @property
    def special_ids(self) -> frozenset[int]:
        """Ids of PAD, BOS, EOS and UNK."""
        return frozenset((self.pad_id, self.bos_id, self.eos_id, self.unk_id))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Ids of one text, framed by BOS/EOS when ``add_special_tokens``."""
        ids = self.tokenize(text)
        return [self.bos_id, *ids, self.eos_id] if add_special_tokens else ids

    def batch_encode(
        self,
        texts: Sequence[str],
        max_length: int | None = None,
        padding: bool | str = "longest",
        truncation: bool = True,
        add_special_tokens: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch to padded ids and an attention mask.

        Args:
            texts: ``B`` strings.
            max_length: longest sequence kept (with specials); required for ``"max_length"``.
            padding: ``"longest"`` (or ``True``) pads to the longest sequence, ``"max_length"`` to
                ``max_length``, ``False`` requires all sequences to have the same length.
            truncation: cut sequences longer than ``max_length`` (else they raise).
            add_special_tokens: frame each sequence with BOS/EOS.

        Returns:
            ``(ids, attention_mask)``, both ``(B, L)`` int64; the mask is 1 on real tokens.

        Raises:
            ConfigError: on a bad ``padding``/``max_length`` pair, a too long sequence without
                truncation, or unequal lengths with ``padding=False``.
        """
        if isinstance(texts, str):
            raise ConfigError("batch_encode takes a list of strings, got one string")
        if padding is True:
            padding = "longest"
        if padding not in ("longest", "max_length", False):
            raise ConfigError(f"padding must be 'longest', 'max_length' or False, got {padding!r}")
        if padding == "max_length" and max_length is None:
            raise ConfigError("padding='max_length' needs max_length")
        if max_length is not None and max_length < (2 if add_special_tokens else 1):
            raise ConfigError(f"max_length must leave room for BOS and EOS, got {max_length}")
        sequences = []
        for text in texts:
            ids = self.encode(text, add_special_tokens)
            if max_length is not None and len(ids) > max_length:
                if not truncation:
                    raise ConfigError(
                        f"text of {len(ids)} tokens exceeds max_length={max_length}: {text[:40]!r}"
                    )
                ids = ids[: max_length - 1] + [self.eos_id] if add_special_tokens else ids[:max_length]
            sequences.append(ids)
        lengths = [len(s) for s in sequences]
        if padding is False and len(set(lengths)) > 1:
            raise ConfigError(
                f"padding=False needs sequences of one length, got lengths {sorted(set(lengths))}"
            )
        width = max_length if padding == "max_length" else max(lengths, default=0)
        ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.int64)  # (B, L)
        mask = torch.zeros((len(sequences), width), dtype=torch.int64)  # (B, L)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.int64)
            mask[row, : len(seq)] = 1
        return ids, mask

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Text of one id sequence; special tokens are dropped (or written as their names)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        names = dict(zip((self.pad_id, self.bos_id, self.eos_id, self.unk_id), SPECIAL_TOKENS))
        pieces: list[str] = []
        run: list[int] = []
        for token in ids:
            if token in names:
                if run:
                    pieces.append(self.detokenize(run))
                    run = []
                if not skip_special_tokens:
                    pieces.append(names[token])
            else:
                run.append(int(token))
        if run:
            pieces.append(self.detokenize(run))
        return "".join(pieces)

    def batch_decode(self, ids: torch.Tensor, skip_special_tokens: bool = True) -> list[str]:
        """Decode every row of a ``(B, L)`` tensor."""
        return [self.decode(row, skip_special_tokens) for row in ids]


class ByteTokenizer(TextTokenizer):
    """UTF-8 bytes as ids 0..255, then PAD=256, BOS=257, EOS=258, UNK=259 (vocabulary of 260)."""

    pad_id, bos_id, eos_id, unk_id = 256, 257, 258, 259
    vocab_size = 260

    def tokenize(self, text: str) -> list[int]:
        """The UTF-8 bytes of ``text`` as ids."""
        return list(text.encode("utf-8"))

    def detokenize(self, ids: Sequence[int]) -> str:
        """Text of byte ids (ids of special tokens dropped; invalid UTF-8 replaced)."""
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


class HFTokenizer(TextTokenizer):
    """A Hugging Face ``tokenizers.Tokenizer`` (e.g. BPE) holding the four special tokens.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` whose vocabulary contains ``<pad>``, ``<bos>``,
            ``<eos>`` and ``<unk>``.

    Raises:
        DataError: when a special token is missing from the vocabulary.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        ids = [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]
        if None in ids:
            missing = [t for t, i in zip(SPECIAL_TOKENS, ids) if i is None]
            raise DataError(f"tokenizer vocabulary lacks special tokens {missing}")
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = ids
        self.vocab_size = tokenizer.get_vocab_size()

    @classmethod
    def from_file(cls, path: str | Path) -> HFTokenizer:
        """Load a ``tokenizer.json``.

        Raises:
            DataError: when the file is missing or not a tokenizer.
        """
        from tokenizers import Tokenizer

        path = Path(path)
        if not path.is_file():
            raise DataError(f"tokenizer file {path} not found")
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as err:  # the Rust core raises plain Exceptions on malformed JSON
            raise DataError(f"{path} is not a tokenizer.json: {err}") from err

    @classmethod
    def train_bpe(cls, texts: Iterable[str], vocab_size: int = 1000, min_frequency: int = 2) -> HFTokenizer:
        """Train a byte-level BPE tokenizer on a corpus.

        Args:
            texts: the training corpus, one document per string.
            vocab_size: target vocabulary size, special tokens included.
            min_frequency: merges seen fewer times are not learnt.

        Returns:
            The trained tokenizer.
        """
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < len(SPECIAL_TOKENS) + 256:
            raise ConfigError(f"a byte-level BPE vocabulary needs >= 260 tokens, got {vocab_size}")
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            show_progress=False,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    def save(self, path: str | Path) -> None:
        """Write ``tokenizer.json``."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(path))

    def tokenize(self, text: str) -> list[int]:
        """Ids of ``text`` without special tokens."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def detokenize(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens included as written in the vocabulary."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)


def load_tokenizer(spec: str | Path) -> TextTokenizer:
    """``"byte"`` gives the built-in byte tokenizer; anything else is a ``tokenizer.json`` path."""
    if str(spec) == "byte":
        return ByteTokenizer()
    return HFTokenizer.from_file(spec)
