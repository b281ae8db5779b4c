"""The one atomic writer: old file kept on failure, no temp files left, unique temp names."""

from __future__ import annotations

import json
import threading

import pytest

from mambajepa.core import files
from mambajepa.core.files import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    write_synced,
)


def test_writes_replace_the_file_and_create_its_folder(tmp_path):
    path = tmp_path / "a" / "b" / "out.json"
    atomic_write_json(path, {"x": [1, 2]})
    assert json.loads(path.read_text()) == {"x": [1, 2]}
    atomic_write_text(path, "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]


def test_a_failing_body_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("old\n")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(path) as tmp:
            assert tmp.parent == path.parent and tmp != path
            tmp.write_text("half written")
            raise RuntimeError("boom")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_the_temp_file_and_then_the_folder_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = files.fsync_path
    monkeypatch.setattr(files, "fsync_path", lambda p: (synced.append(p), real(p)))
    path = tmp_path / "out.bin"
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"data")
    assert synced == [tmp, tmp_path]


def test_two_writers_to_one_path_never_share_a_temp_file(tmp_path):
    path = tmp_path / "probe.json"
    with atomic_path(path) as first, atomic_path(path) as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    assert path.read_text() == "first"  # the outer writer finished last
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=atomic_write_bytes, args=(path, data)) for data in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert path.read_bytes() in payloads  # one complete write, never a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe.json"]


def test_write_synced_writes_in_place(tmp_path):
    write_synced(tmp_path / "trainer.json", '{"step": 3}')
    write_synced(tmp_path / "raw.bin", b"\x07")
    assert (tmp_path / "trainer.json").read_text() == '{"step": 3}'
    assert (tmp_path / "raw.bin").read_bytes() == b"\x07"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.bin", "trainer.json"]


def _write_probe(path):
    from mambajepa.eval.probe import write_probe_json

    write_probe_json({"shape": {"linear_acc": 1.0}}, path)


def _write_config(path):
    from mambajepa.config import RunConfig, save_config

    save_config(RunConfig(), path)


def _truncate_metrics(path):
    from mambajepa.train.logging import truncate_metrics

    path.write_text('{"step": 1}\n{"step": 2}\n')
    truncate_metrics(path.parent, 1)


@pytest.mark.parametrize(
    ("writer", "name"),
    [(_write_probe, "probe.json"), (_write_config, "config.yaml"), (_truncate_metrics, "metrics.jsonl")],
)
def test_the_package_writers_go_through_atomic_path(tmp_path, monkeypatch, writer, name):
    used = []
    real = files.atomic_path

    def recording(path):
        used.append(path)
        return real(path)

    monkeypatch.setattr(files, "atomic_path", recording)
    writer(tmp_path / name)
    assert [str(p) for p in used] == [str(tmp_path / name)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
