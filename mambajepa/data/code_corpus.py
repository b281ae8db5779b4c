"""Real code that every machine has: the Python standard library's own source files.

The ``.py`` files of the running interpreter's stdlib (``sysconfig.get_paths()["stdlib"]``) make a
training corpus of real code with no download. The test suites, IDLE, third-party packages and
compiled caches are left out (:data:`EXCLUDED_DIRS`); so are files over ``max_bytes`` (generated
tables such as ``pydoc_data/topics.py``). A file that is not valid UTF-8 is reported through
:class:`~mambajepa.data.skipping.BadItems`, never dropped silently.

The train / held-out split is by file and depends only on each file's path relative to the root
(:func:`split_files`), so two machines with the same Python version hold out the same files and
a held-out file is never trained on. Users' own corpora come as JSONL ``{"text": ...}`` records
through :func:`mambajepa.data.text.read_documents`.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from collections.abc import Iterable, Sequence
from pathlib import Path

from mambajepa.core.errors import ConfigError, DataError
from mambajepa.data.skipping import BadItems

# Directory names never descended into: third-party packages, test suites (``lib2to3/tests``
# holds deliberately mis-encoded data), IDLE, and bytecode caches.
EXCLUDED_DIRS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "idlelib", "__pycache__"}
)
DEFAULT_MAX_BYTES = 200_000
# Accepted ``split`` names and the split each one selects.
SPLITS = {"train": "train", "held_out": "held_out", "test": "held_out"}


def _root(root: str | Path | None) -> Path:
    """The stdlib directory when ``root`` is None, else ``root``, checked to be a directory."""
    path = Path(sysconfig.get_paths()["stdlib"] if root is None else root)
    if not path.is_dir():
        raise ConfigError(f"code corpus root {path} is not a directory")
    return path


def stdlib_files(
    root: str | Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES, bad_items: BadItems | None = None
) -> list[Path]:
    """The ``.py`` files under the stdlib directory that make the code corpus.

    Directories named in :data:`EXCLUDED_DIRS` are pruned at any depth; symbolic links to
    directories are not followed. Every kept file is read once to check that it decodes as UTF-8.

    Args:
        root: the directory to scan; the running interpreter's stdlib when None.
        max_bytes: files larger than this many bytes are left out.
        bad_items: receives the files that are not valid UTF-8 (a warning each, or
            :class:`DataError` when strict).

    Returns:
        Paths ``root / relative`` sorted by their relative POSIX path.

    Raises:
        ConfigError: when ``root`` is not a directory or ``max_bytes`` < 1.
        DataError: on a file that is not UTF-8 when ``bad_items`` is strict.
    """
    base = _root(root)
    if max_bytes < 1:
        raise ConfigError(f"max_bytes must be >= 1, got {max_bytes}")
    bad_items = bad_items or BadItems(source="stdlib_files")
    relative: list[str] = []
    for folder, dirs, names in os.walk(base):
        dirs[:] = [d for d in dirs if d not in EXCLUDED_DIRS]
        prefix = Path(folder).relative_to(base)
        relative.extend((prefix / name).as_posix() for name in names if name.endswith(".py"))
    files = []
    for rel in sorted(relative):
        path = base / rel
        if path.stat().st_size > max_bytes:
            continue
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            bad_items.report(path, f"not UTF-8: {err}")
            continue
        files.append(path)
    return files


def _check_fraction(held_out_fraction: float) -> None:
    if not 0.0 < held_out_fraction < 1.0:
        raise ConfigError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")


def split_files(
    files: Iterable[str | Path],
    held_out_fraction: float = 0.1,
    seed: int = 0,
    root: str | Path | None = None,
) -> tuple[list[Path], list[Path]]:
    """Deterministic train / held-out split by file.

    File ``f`` is held out when the first 8 bytes of ``sha1(f"{seed}:{relpath}")``, read as an
    integer in ``[0, 2**64)``, fall below ``held_out_fraction * 2**64``. The decision depends on
    nothing but the relative path and the seed, so it is the same on every machine, stable when
    files are added or removed, and each split keeps the order of ``files``.

    Args:
        files: the corpus files; relative paths, or paths under ``root``.
        held_out_fraction: the expected fraction of files held out, in (0, 1).
        seed: another seed draws another split.
        root: the directory that ``files`` are relative to; required for absolute paths, whose
            hash would otherwise depend on where the corpus lies.

    Returns:
        ``(train, held_out)``, two lists of the given paths.

    Raises:
        ConfigError: when ``held_out_fraction`` is outside (0, 1), or a file is absolute without
            ``root`` or not under ``root``.
    """
    _check_fraction(held_out_fraction)
    threshold = int(held_out_fraction * 2**64)
    train: list[Path] = []
    held_out: list[Path] = []
    for path in map(Path, files):
        if root is not None:
            if not path.is_relative_to(root):
                raise ConfigError(f"file {path} is not under root {root}")
            rel = path.relative_to(root).as_posix()
        elif path.is_absolute():
            raise ConfigError(f"absolute file {path} needs the root it is relative to")
        else:
            rel = path.as_posix()
        digest = hashlib.sha1(f"{seed}:{rel}".encode()).digest()
        (held_out if int.from_bytes(digest[:8], "big") < threshold else train).append(path)
    return train, held_out


class CodeCorpus(Sequence[str]):
    """The files of one split of the stdlib code corpus, as documents: ``corpus[i]`` is file text.

    Files are read (and decoded as UTF-8, bytes unchanged) on access; ``paths`` lists them in
    sorted relative-path order.

    Args:
        split: ``"train"``, or ``"held_out"`` (alias ``"test"``).
        root: the directory to scan; the running interpreter's stdlib when None.
        held_out_fraction: the expected fraction of files held out, in (0, 1).
        seed: the seed of :func:`split_files`.
        max_files: keep only the first ``max_files`` files of the split (small CPU recipes).
        max_bytes: files larger than this many bytes are left out.
        strict: raise on a file that is not UTF-8 instead of warning and leaving it out.

    Raises:
        ConfigError: on an unknown split, ``held_out_fraction`` outside (0, 1), a root that is
            not a directory, ``max_files`` < 1 or ``max_bytes`` < 1.
        DataError: when the split holds no file (or on a non-UTF-8 file when strict).
    """

    def __init__(
        self,
        split: str,
        root: str | Path | None = None,
        held_out_fraction: float = 0.1,
        seed: int = 0,
        max_files: int | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        strict: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        _check_fraction(held_out_fraction)
        if max_files is not None and max_files < 1:
            raise ConfigError(f"max_files must be >= 1 or None, got {max_files}")
        self.root = _root(root)
        self.split = SPLITS[split]
        self.bad_items = BadItems(strict, f"CodeCorpus({self.root})")
        files = stdlib_files(self.root, max_bytes=max_bytes, bad_items=self.bad_items)
        train, held_out = split_files(files, held_out_fraction, seed, root=self.root)
        self.paths = (train if self.split == "train" else held_out)[:max_files]
        if not self.paths:
            raise DataError(
                f"no file in the {self.split} split of {self.root} "
                f"({len(files)} files, held_out_fraction={held_out_fraction}, seed={seed})"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> str:  # type: ignore[override]  # int indices, no slices
        if not -len(self) <= index < len(self):
            raise IndexError(f"document {index} out of range for {len(self)} files")
        path = self.paths[index]
        try:
            return path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"code corpus file {path} is no longer readable as UTF-8: {err}") from err
