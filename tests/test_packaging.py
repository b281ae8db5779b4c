"""The wheel ships the YAML recipes of ``configs/`` as ``mambajepa.configs``, and finds them installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mambajepa.config import list_recipes, recipes_dir

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "README.md", "mambajepa", "configs")


def _build_wheel(out: Path) -> Path:
    """Build the wheel of a copy of the sources (the repository's ``build/`` cache is left alone)."""
    pytest.importorskip(
        "setuptools", minversion="77", reason="setuptools, the build backend, is not installed"
    )
    src = out / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    (wheel,) = out.glob("mambajepa-*.whl")
    return wheel


def test_wheel_ships_every_recipe_and_finds_them_installed(tmp_path):
    wheel = _build_wheel(tmp_path)
    repo_recipes = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))
    assert repo_recipes, "the repository has no recipes"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for recipe in repo_recipes:
            shipped = f"mambajepa/configs/{recipe}"
            assert shipped in names, f"{recipe} is not in the wheel"
            assert zf.read(shipped) == (REPO / "configs" / recipe).read_bytes()
        zf.extractall(tmp_path / "site")

    # the unpacked wheel is what `pip install` lays out; import it from a folder outside the repository
    probe = (
        "import json, mambajepa\n"
        "from mambajepa.config import list_recipes, recipes_dir, resolve_recipe\n"
        "print(json.dumps({'package': mambajepa.__file__, 'dir': str(recipes_dir()),\n"
        "                  'recipes': list_recipes(), 'resolved': str(resolve_recipe('ijepa_shapes'))}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    env.pop("MAMBAJEPA_SSM_IMPL", None)
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    installed = tmp_path / "site" / "mambajepa"
    assert Path(found["package"]).parent == installed
    assert Path(found["dir"]) == installed / "configs"
    assert found["recipes"] == [name[: -len(".yaml")] for name in repo_recipes]
    assert Path(found["resolved"]) == installed / "configs" / "ijepa_shapes.yaml"


def test_source_checkout_reads_the_repository_configs():
    assert recipes_dir() == REPO / "configs"
    assert list_recipes() == sorted(p.stem for p in (REPO / "configs").glob("*.yaml"))
