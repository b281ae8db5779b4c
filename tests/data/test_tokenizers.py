"""Byte-level and BPE tokenizers: round trips, padding/truncation semantics, peer parity."""

import pytest
import torch

from mambajepa.core.errors import ConfigError, DataError
from mambajepa.data import ByteTokenizer, HFTokenizer, ShapesCaptions, load_tokenizer

TEXTS = ["a tiny crimson disc in the top-left", "héllo ☃ wörld", ""]


def test_byte_tokenizer_round_trip_and_layout():
    tok = ByteTokenizer()
    assert tok.vocab_size == 260 and tok.special_ids == {256, 257, 258, 259}
    ids, mask = tok.batch_encode(TEXTS)
    lengths = [len(t.encode("utf-8")) + 2 for t in TEXTS]
    assert ids.dtype == torch.int64 and mask.dtype == torch.int64 and ids.shape == (3, max(lengths))
    assert mask.sum(1).tolist() == lengths
    assert ids[1, 0] == tok.bos_id and ids[1, lengths[1] - 1] == tok.eos_id
    assert torch.all(ids[mask == 0] == tok.pad_id)
    assert tok.batch_decode(ids) == TEXTS
    assert tok.decode(ids[2], skip_special_tokens=False) == "<bos><eos>" + "<pad>" * (ids.shape[1] - 2)


def test_padding_and_truncation_modes():
    tok = ByteTokenizer()
    ids, mask = tok.batch_encode(["abcdef", "ab"], max_length=5)
    assert ids.tolist() == [[257, 97, 98, 99, 258], [257, 97, 98, 258, 256]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    ids, mask = tok.batch_encode(["ab"], max_length=7, padding="max_length")
    assert ids.shape == (1, 7) and mask.sum() == 4
    ids, _ = tok.batch_encode(["abc", "xyz"], padding=False, add_special_tokens=False)
    assert ids.tolist() == [[97, 98, 99], [120, 121, 122]]
    with pytest.raises(ConfigError, match="one length"):
        tok.batch_encode(["abc", "x"], padding=False)
    with pytest.raises(ConfigError, match="exceeds max_length=3"):
        tok.batch_encode(["abcdef"], max_length=3, truncation=False)
    with pytest.raises(ConfigError, match="needs max_length"):
        tok.batch_encode(["a"], padding="max_length")
    with pytest.raises(ConfigError, match="list of strings"):
        tok.batch_encode("abc")


@pytest.fixture(scope="module")
def bpe():
    captions = ShapesCaptions(num_items=400)
    return HFTokenizer.train_bpe((captions.text(i) for i in range(400)), vocab_size=420)


def test_bpe_learns_merges_round_trips_and_reloads(bpe, tmp_path):
    text = ShapesCaptions(num_items=1, split="val").text(0)
    assert len(bpe.encode(text)) < len(ByteTokenizer().encode(text)) / 2  # merges compress the captions
    ids, mask = bpe.batch_encode(TEXTS)
    assert bpe.batch_decode(ids) == TEXTS  # byte-level: unseen characters survive
    bpe.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path / "tokenizer.json")
    ids2, mask2 = again.batch_encode(TEXTS)
    assert torch.equal(ids, ids2) and torch.equal(mask, mask2)
    assert (again.pad_id, again.bos_id, again.eos_id, again.unk_id) == (0, 1, 2, 3)
    assert isinstance(load_tokenizer("byte"), ByteTokenizer)


def test_bpe_matches_transformers_fast_tokenizer(bpe, tmp_path):
    transformers = pytest.importorskip("transformers")
    bpe.save(tmp_path / "tokenizer.json")
    peer = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(tmp_path / "tokenizer.json"),
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
    )
    texts = ["a small red circle", "two objects on a grey background: tiny wedge"]
    body = peer(texts, add_special_tokens=False)["input_ids"]
    framed = [[peer.bos_token_id, *b, peer.eos_token_id] for b in body]
    expected = peer.pad({"input_ids": framed}, padding="longest", return_tensors="pt")
    ids, mask = bpe.batch_encode(texts)
    assert torch.equal(ids, expected["input_ids"]) and torch.equal(mask, expected["attention_mask"].long())


def test_tokenizer_file_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_tokenizer(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="not a tokenizer.json"):
        load_tokenizer(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match=">= 260"):
        HFTokenizer.train_bpe(["x"], vocab_size=100)
