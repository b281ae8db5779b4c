"""The stdlib code corpus: which files count, the split by file, and the real interpreter's stdlib."""

import sysconfig
from pathlib import Path

import pytest

from mambajepa.core.errors import ConfigError, DataError
from mambajepa.data import BadItems, BadItemWarning
from mambajepa.data.code_corpus import CodeCorpus, split_files, stdlib_files


def _fake_stdlib(root: Path) -> Path:
    files = {
        "os.py": "import sys\n",
        "json/__init__.py": "from .decoder import JSONDecoder\n",
        "json/decoder.py": "class JSONDecoder:\n    pass\n",
        "email/mime/text.py": "# text\n",
        "notes.txt": "not python\n",
        "test/test_os.py": "import os\n",
        "unittest/test/test_case.py": "import unittest\n",
        "lib2to3/tests/data/bom.py": "print(1)\n",
        "idlelib/editor.py": "import tkinter\n",
        "site-packages/numpy/core.py": "x = 1\n",
        "__pycache__/os.py": "stale\n",
        "big.py": "x = 1\n" * 100,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / "latin.py").write_bytes("s = 'caf\xe9'\n".encode("latin-1"))
    return root


def _rel(paths, root):
    return [p.relative_to(root).as_posix() for p in paths]


def test_exclusions_size_limit_and_sorted_order(tmp_path):
    root = _fake_stdlib(tmp_path)
    with pytest.warns(BadItemWarning, match="latin.py: not UTF-8"):
        files = stdlib_files(root, max_bytes=100)
    assert _rel(files, root) == ["email/mime/text.py", "json/__init__.py", "json/decoder.py", "os.py"]
    with pytest.warns(BadItemWarning):
        assert "big.py" in _rel(stdlib_files(root), root)


def test_decode_failures_are_counted_or_raise_when_strict(tmp_path):
    root = _fake_stdlib(tmp_path)
    bad = BadItems(source="test")
    with pytest.warns(BadItemWarning):
        stdlib_files(root, bad_items=bad)
    assert bad.total == 1 and bad.counts["not UTF-8"] == 1
    with pytest.warns(BadItemWarning):
        corpus = CodeCorpus("train", root=root, held_out_fraction=0.01)
    assert corpus.bad_items.total == 1
    with pytest.raises(DataError, match="latin.py: not UTF-8"):
        CodeCorpus("train", root=root, strict=True)


def test_split_is_by_relative_path_deterministic_and_disjoint(tmp_path):
    names = [f"pkg{i // 10}/mod{i}.py" for i in range(400)]
    train, held_out = split_files(names, held_out_fraction=0.25, seed=3)
    assert sorted(map(str, train + held_out)) == sorted(names) and not set(train) & set(held_out)
    assert 0.15 < len(held_out) / len(names) < 0.35
    assert [p.as_posix() for p in train] == [n for n in names if Path(n) in set(train)]  # order kept
    # The same relative paths under another root split the same way; another seed does not.
    moved = split_files([tmp_path / n for n in names], held_out_fraction=0.25, seed=3, root=tmp_path)
    assert [p.relative_to(tmp_path) for p in moved[1]] == held_out
    assert split_files(names, held_out_fraction=0.25, seed=4)[1] != held_out
    # A file keeps its side when others are added.
    more = split_files([*names, "extra/a.py", "extra/b.py"], held_out_fraction=0.25, seed=3)
    assert set(held_out) <= set(more[1])
    with pytest.raises(ConfigError, match="needs the root"):
        split_files([tmp_path / "a.py"])
    with pytest.raises(ConfigError, match="is not under root"):
        split_files([tmp_path / "a.py"], root=tmp_path / "other")


def test_corpus_documents_max_files_and_bad_arguments(tmp_path):
    root = _fake_stdlib(tmp_path)
    (root / "latin.py").unlink()
    train = CodeCorpus("train", root=root, held_out_fraction=0.01)
    held_out = CodeCorpus("test", root=root, held_out_fraction=0.99)
    assert train.split == "train" and held_out.split == "held_out"
    assert len(train) == len(train.paths) == 5 and train.bad_items.total == 0
    assert train[_rel(train.paths, root).index("json/decoder.py")] == "class JSONDecoder:\n    pass\n"
    assert list(train) == [p.read_text() for p in train.paths] and train[-1] == train[4]
    with pytest.raises(IndexError):
        train[5]
    small = CodeCorpus("train", root=root, held_out_fraction=0.01, max_files=2)
    assert small.paths == train.paths[:2]
    for kwargs, match in [
        ({"split": "val"}, "split must be one of .* got 'val'"),
        ({"split": "train", "held_out_fraction": 1.0}, r"held_out_fraction must be in \(0, 1\), got 1.0"),
        ({"split": "train", "root": tmp_path / "missing"}, "missing is not a directory"),
        ({"split": "train", "max_files": 0}, "max_files must be >= 1 or None, got 0"),
        ({"split": "train", "max_bytes": 0}, "max_bytes must be >= 1, got 0"),
    ]:
        with pytest.raises(ConfigError, match=match):
            CodeCorpus(**{"root": root, **kwargs})
    with pytest.raises(DataError, match="no file in the train split"):
        CodeCorpus("train", root=root, max_bytes=5)


def test_real_stdlib_of_the_running_interpreter():
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    train, held_out = CodeCorpus("train"), CodeCorpus("held_out")
    assert train.root == held_out.root == stdlib
    every = _rel(train.paths, stdlib) + _rel(held_out.paths, stdlib)
    assert len(every) > 300 and not set(train.paths) & set(held_out.paths)
    assert 0.06 < len(held_out) / len(every) < 0.14
    assert "json/decoder.py" in every and "os.py" in every
    assert not any(
        part in {"test", "tests", "site-packages", "idlelib"} for rel in every for part in rel.split("/")
    )
    corpus = train if stdlib / "json/decoder.py" in train.paths else held_out
    assert "class JSONDecoder" in corpus[corpus.paths.index(stdlib / "json/decoder.py")]
