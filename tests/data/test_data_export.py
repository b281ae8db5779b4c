"""`mambajepa data` commands: ShapesWorld export read back by the real loaders, tokenizer, download."""

import argparse
import io
import json
import pickle
import tarfile

import pytest
import torch

from mambajepa.core.errors import ConfigError, DataError
from mambajepa.data import (
    CIFAR10,
    CLASS10_NAMES,
    COCOCaptions,
    ImageTextManifest,
    ShapesCaptions,
    ShapesConfig,
    ShapesImages,
    ShapesVQA,
    VQADataset,
    WebDatasetShards,
    commands,
    load_tokenizer,
)
from mambajepa.data.export import COCO_IMAGE_TEMPLATE


def _run(*argv):
    parser = argparse.ArgumentParser()
    commands.configure(parser)
    return commands.run(parser.parse_args(list(argv)))


def _quantized(image):
    return (image * 255).round() / 255


@pytest.mark.parametrize("fmt", ["cifar-binary", "cifar-python"])
def test_cifar_export_reads_back_with_the_cifar_loader(tmp_path, fmt):
    assert (
        _run("export", "shapesworld", "--format", fmt, "--out", str(tmp_path), "--n", "10", "--n-test", "3")
        == 0
    )
    config = ShapesConfig(ten_class=True)
    for split, count in (("train", 10), ("test", 3)):
        data = CIFAR10(tmp_path, split=split)
        source = ShapesImages(split, 32, count, seed=0, config=config)
        assert len(data) == count
        for i in range(count):
            image, label = data[i]
            assert torch.equal(image, _quantized(source[i]["image"]))
            assert label == source[i]["class10"] >= 0
    if fmt == "cifar-python":
        meta = pickle.loads((tmp_path / "cifar-10-batches-py" / "batches.meta").read_bytes())
        assert [n.decode() for n in meta[b"label_names"]] == list(CLASS10_NAMES)


def test_jsonl_export_reads_back_with_the_manifest_loader(tmp_path):
    _run("export", "shapesworld", "--format", "jsonl", "--out", str(tmp_path), "--n", "6", "--size", "24")
    data = ImageTextManifest(tmp_path / "train.jsonl")
    source = ShapesCaptions("train", 24, 6)
    for i in range(6):
        assert torch.equal(data[i]["image"], _quantized(source[i]["image"]))
        assert data[i]["caption"] == source[i]["caption"] and data[i]["shape"] == source[i]["shape"]


def test_coco_export_reads_back_with_coco_and_vqa_loaders(tmp_path):
    argv = ["export", "shapesworld", "--format", "coco", "--out", str(tmp_path), "--n", "4", "--split", "val"]
    _run(*argv, "--max-objects", "2")
    config = ShapesConfig(max_objects=2)
    captions = COCOCaptions(tmp_path / "annotations" / "captions_val.json", tmp_path / "images")
    source = ShapesCaptions("val", 32, 4, config=config)
    assert len(captions) == 8  # two captions per image
    for i in range(4):
        first = captions[2 * i]
        assert first["image_id"] == source.global_index(i) and first["caption"] == source.text(i)
        assert torch.equal(first["image"], _quantized(source[i]["image"]))
        assert captions[2 * i + 1]["caption"] != first["caption"]
    vqa = VQADataset(
        tmp_path / "annotations" / "questions_val.json",
        tmp_path / "images",
        tmp_path / "annotations" / "answers_val.json",
        image_template=COCO_IMAGE_TEMPLATE,
    )
    questions = ShapesVQA("val", 32, 4, config=config)
    for i in range(4):
        _, question, answer = questions.qa(i)
        item = vqa[2 * i]
        assert (item["question"], item["answer"]) == (question, answer)
        assert torch.equal(item["image"], _quantized(source[i]["image"]))


def test_webdataset_export_reads_back_with_the_shard_loader(tmp_path):
    _run(
        "export",
        "shapesworld",
        "--format",
        "webdataset",
        "--out",
        str(tmp_path),
        "--n",
        "5",
        "--shard-size",
        "2",
    )
    shards = sorted(tmp_path.glob("*.tar"))
    assert len(shards) == 3
    samples = list(WebDatasetShards(shards, shuffle_buffer=0))
    source = ShapesCaptions("train", 32, 5)
    for i, sample in enumerate(samples):
        assert torch.equal(sample["image"], _quantized(source[i]["image"]))
        assert sample["caption"] == source[i]["caption"]
        assert json.loads(sample["meta"])["colour"] == source[i]["colour"]


def test_cifar_export_needs_32_pixels(tmp_path):
    with pytest.raises(ConfigError, match="32x32"):
        _run("export", "shapesworld", "--format", "cifar-binary", "--out", str(tmp_path), "--size", "64")


def test_train_tokenizer_command(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox\n" * 50 + "jumps over the lazy dog\n" * 50)
    out = tmp_path / "tok" / "tokenizer.json"
    argv = ["train-tokenizer", "--corpus", str(corpus), "shapesworld", "--n", "200", "--vocab-size", "500"]
    assert _run(*argv, "--out", str(out)) == 0
    tok = load_tokenizer(out)
    ids, _ = tok.batch_encode(["the quick brown fox"])
    assert ids.shape[1] < 10 and tok.decode(ids[0]) == "the quick brown fox"


def test_download_command_uses_the_given_mirror(tmp_path):
    archive = tmp_path / "mirror.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/readme")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DataError, match="expected c58f30108f718f92721af3b95e74349a"):
        _run("download", "cifar10", "--root", str(tmp_path / "root"), "--url", archive.as_uri())


def test_data_benchmark_smoke(capsys):
    from mambajepa.bench.data import main

    assert main(["--quick", "--no-proxy-step"]) == 0
    out = capsys.readouterr().out
    assert "images 32px, 1 object" in out and "CIFAR-10 binary items (peer)" in out
