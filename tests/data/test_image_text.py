"""Image-text loaders on JSONL/CSV manifests, COCO captions JSON and WebDataset shards."""

import csv
import json
import warnings

import pytest
import torch
from data_test_files import known_image, png_bytes, write_tar
from torch.utils.data import DataLoader

from mambajepa.core.errors import DataError
from mambajepa.data import BadItemWarning, COCOCaptions, ImageTextManifest, WebDatasetShards, expand_shards


def _as_tensor(array):
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255.0


def _images(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = []
    for i in range(count):
        arrays.append(known_image(i))
        (folder / f"{i:03d}.png").write_bytes(png_bytes(arrays[-1]))
    return arrays


def test_jsonl_manifest_items(tmp_path):
    arrays = _images(tmp_path / "img", 3)
    lines = [{"image": f"img/{i:03d}.png", "caption": f"picture {i}", "label": i} for i in range(3)]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    data = ImageTextManifest(tmp_path / "pairs.jsonl")
    assert len(data) == 3
    item = data[2]
    assert torch.equal(item["image"], _as_tensor(arrays[2]))
    assert item["caption"] == "picture 2" and item["label"] == 2


def test_csv_manifest_with_image_root_and_transform(tmp_path):
    arrays = _images(tmp_path / "pics", 2)
    with open(tmp_path / "pairs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filepath", "text"])
        writer.writerows([[f"{i:03d}.png", f"text {i}"] for i in range(2)])
    data = ImageTextManifest(
        tmp_path / "pairs.csv", image_root=tmp_path / "pics", transform=lambda x: x.flip(-1)
    )
    assert torch.equal(data[1]["image"], _as_tensor(arrays[1]).flip(-1)) and data[1]["caption"] == "text 1"


def test_manifest_bad_lines_and_images(tmp_path):
    arrays = _images(tmp_path, 3)
    (tmp_path / "001.png").write_bytes(b"not a png")
    lines = [
        json.dumps({"image": "000.png", "caption": "zero"}),
        json.dumps({"image": "001.png", "caption": "one"}),
        json.dumps({"image": "002.png"}),
        "{broken",
        json.dumps({"image": "002.png", "caption": "two"}),
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"m.jsonl:3: missing caption field"):
        ImageTextManifest(tmp_path / "m.jsonl", strict=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = ImageTextManifest(tmp_path / "m.jsonl")
        assert len(data) == 3 and data.bad_items.total == 2 and len(caught) == 2
        item = data[1]  # 001.png is unreadable: the next readable pair comes instead
    assert item["caption"] == "two" and torch.equal(item["image"], _as_tensor(arrays[2]))
    assert data.bad_items.total == 3 and "001.png" in str(caught[-1].message)
    (tmp_path / "clean.jsonl").write_text("\n".join(lines[:2]))
    strict = ImageTextManifest(tmp_path / "clean.jsonl", strict=True)
    with pytest.raises(DataError, match="001.png: unreadable image"):
        strict[1]


def test_manifest_missing_or_unknown(tmp_path):
    with pytest.raises(DataError, match="not found"):
        ImageTextManifest(tmp_path / "none.jsonl")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(DataError, match=r"\.jsonl, \.csv"):
        ImageTextManifest(tmp_path / "m.txt")


def test_coco_captions(tmp_path):
    arrays = _images(tmp_path / "val2017", 2)
    coco = {
        "images": [{"id": 42, "file_name": "000.png"}, {"id": 7, "file_name": "001.png"}],
        "annotations": [
            {"id": 1, "image_id": 42, "caption": "A first caption. "},
            {"id": 2, "image_id": 7, "caption": "second"},
            {"id": 3, "image_id": 42, "caption": "another for 42"},
            {"id": 4, "image_id": 99, "caption": "orphan"},
            {"id": 5, "image_id": 7},
        ],
    }
    (tmp_path / "captions_val2017.json").write_text(json.dumps(coco))
    with pytest.warns(BadItemWarning) as record:
        data = COCOCaptions(tmp_path / "captions_val2017.json", tmp_path / "val2017")
    messages = [str(w.message) for w in record]
    assert "image_id 99" in messages[0] and "annotations[4]: missing caption" in messages[1]
    assert len(data) == 3 and data.bad_items.total == 2
    assert data[0]["caption"] == "A first caption." and data[0]["image_id"] == 42
    assert torch.equal(data[2]["image"], _as_tensor(arrays[0])) and data[1]["id"] == 2
    with pytest.raises(DataError, match=r"annotations\[3\]: image_id 99"):
        COCOCaptions(tmp_path / "captions_val2017.json", tmp_path / "val2017", strict=True)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="not COCO captions"):
        COCOCaptions(tmp_path / "bad.json", tmp_path)


def _shard(path, first, count, with_json=True):
    members = []
    for i in range(first, first + count):
        key = f"{i:05d}"
        members.append((f"{key}.jpg", png_bytes(known_image(i))))  # img2dataset names; PIL sniffs content
        members.append((f"{key}.txt", f"caption {i}".encode()))
        if with_json:
            members.append((f"{key}.json", json.dumps({"key": key, "width": 5}).encode()))
    write_tar(path, members)
    return path


def test_webdataset_reads_img2dataset_layout(tmp_path):
    _shard(tmp_path / "00000.tar", 0, 4)
    _shard(tmp_path / "00001.tar", 4, 3, with_json=False)
    data = WebDatasetShards(str(tmp_path / "{00000..00001}.tar"), shuffle_buffer=0)
    samples = list(data)
    assert [s["caption"] for s in samples] == [f"caption {i}" for i in range(7)]
    assert torch.equal(samples[5]["image"], _as_tensor(known_image(5)))
    assert json.loads(samples[1]["meta"]) == {"key": "00001", "width": 5} and samples[6]["meta"] == "{}"
    assert expand_shards(str(tmp_path / "*.tar")) == expand_shards(
        [tmp_path / "00000.tar", tmp_path / "00001.tar"]
    )


def test_webdataset_shuffle_is_a_seeded_permutation(tmp_path):
    _shard(tmp_path / "a.tar", 0, 12, with_json=False)
    order = [s["key"] for s in WebDatasetShards(tmp_path / "a.tar", shuffle_buffer=4, seed=1)]
    again = [s["key"] for s in WebDatasetShards(tmp_path / "a.tar", shuffle_buffer=4, seed=1)]
    shuffled = WebDatasetShards(tmp_path / "a.tar", shuffle_buffer=4, seed=1)
    shuffled.set_epoch(1)
    other = [s["key"] for s in shuffled]
    assert order == again and sorted(order) == [f"{i:05d}" for i in range(12)]
    assert order != sorted(order) and other != order


def test_webdataset_splits_across_ranks_and_workers(tmp_path):
    shards = [_shard(tmp_path / f"{k}.tar", 3 * k, 3, with_json=False) for k in range(4)]
    seen = []
    for rank in range(2):
        keys = [s["key"] for s in WebDatasetShards(shards, shuffle_buffer=0, rank=rank, world_size=2)]
        assert keys == [f"{i:05d}" for k in (rank, rank + 2) for i in range(3 * k, 3 * k + 3)]
        seen += keys
    assert sorted(seen) == [f"{i:05d}" for i in range(12)]
    # fewer shards than readers: every reader walks the shard and keeps every n-th sample
    few = [
        s["key"]
        for r in range(3)
        for s in WebDatasetShards(shards[:1], shuffle_buffer=0, rank=r, world_size=3)
    ]
    assert sorted(few) == ["00000", "00001", "00002"]
    loader = DataLoader(WebDatasetShards(shards, shuffle_buffer=0), batch_size=None, num_workers=2)
    keys = [s["key"] for s in loader]
    assert sorted(keys) == [f"{i:05d}" for i in range(12)]


def test_webdataset_bad_samples_and_truncated_tar(tmp_path):
    members = [
        ("00000.jpg", png_bytes(known_image(0))),
        ("00000.txt", b"fine"),
        ("00001.jpg", b"garbage"),
        ("00001.txt", b"broken image"),
        ("00002.jpg", png_bytes(known_image(2))),
        ("00002.json", b'{"width": 5}'),
        ("00003.txt", b"no image"),
        ("00004.jpg", png_bytes(known_image(4))),
        ("00004.json", b'{"caption": "from json"}'),
    ]
    write_tar(tmp_path / "s.tar", members)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = list(WebDatasetShards(tmp_path / "s.tar", shuffle_buffer=0))
    assert [s["caption"] for s in samples] == ["fine", "from json"]
    reasons = " | ".join(str(w.message) for w in caught)
    assert "00001: unreadable image" in reasons and "00002: missing caption" in reasons
    assert "00003: no image member" in reasons
    with pytest.raises(DataError, match="s.tar:00001: unreadable image"):
        list(WebDatasetShards(tmp_path / "s.tar", shuffle_buffer=0, strict=True))
    full = _shard(tmp_path / "t.tar", 0, 6, with_json=False).read_bytes()
    # a cut inside a member's data, and a cut exactly between two members
    for cut in (5 * 1024 + 100, 6 * 1024):
        (tmp_path / "t.tar").write_bytes(full[:cut])
        with pytest.warns(BadItemWarning, match="t.tar: truncated or unreadable tar"):
            partial = list(WebDatasetShards(tmp_path / "t.tar", shuffle_buffer=0))
        assert 0 < len(partial) < 6
        assert all(torch.equal(s["image"], _as_tensor(known_image(int(s["key"])))) for s in partial)
        with pytest.raises(DataError, match="truncated"):
            list(WebDatasetShards(tmp_path / "t.tar", shuffle_buffer=0, strict=True))
