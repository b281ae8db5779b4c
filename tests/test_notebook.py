"""``notebooks/mamba3_jepa.ipynb``: committed without outputs, and runs top to bottom in a fresh kernel.

The kernel is this interpreter (``sys.executable``) through a kernelspec written for the test, so a
``python3`` kernel installed elsewhere on the machine cannot stand in for it. It runs in a temporary
folder, so the notebook's run directory and summary land there and not in the repository.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402  (installed with nbclient)
from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from traitlets import default  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "mamba3_jepa.ipynb"
CELL_TIMEOUT_S = 300


def _kernel_manager_class(kernels: Path) -> type[AsyncKernelManager]:
    """A kernel manager whose only ``python3`` kernelspec launches ``sys.executable -m ipykernel_launcher``."""
    spec = kernels / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3 (test)", "language": "python"})
    )

    class ThisPythonKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self) -> KernelSpecManager:
            return KernelSpecManager(parent=self, kernel_dirs=[str(kernels)], ensure_native_kernel=False)

    return ThisPythonKernelManager


def _kernel_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")  # a small CPU footprint unless the caller asks otherwise
    env["MPLBACKEND"] = "Agg"
    env["MPLCONFIGDIR"] = str(tmp_path / "matplotlib")
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    return env


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    for index, cell in enumerate(code):
        assert cell.outputs == [], f"code cell {index} ({cell.get('id')}) has outputs"
        assert cell.execution_count is None, f"code cell {index} ({cell.get('id')}) has an execution count"
    headings = [
        line for cell in nb.cells if cell.cell_type == "markdown" for line in cell.source.splitlines()
    ]
    sections = [line.split(".")[0].removeprefix("## ") for line in headings if line.startswith("## ")]
    assert sections == ["1", "2", "3", "4", "5", "6"]


def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # connection files
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        kernel_manager_class=_kernel_manager_class(tmp_path / "kernels"),
        resources={"metadata": {"path": str(work)}},
        allow_errors=False,  # a cell that raises fails the test (CellExecutionError)
    )
    client.execute(env=_kernel_env(tmp_path))

    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    first = _stdout(next(cell for cell in nb.cells if cell.cell_type == "code"))
    assert f"mambajepa from {REPO / 'mambajepa'}" in first  # the kernel imported this checkout

    summary = json.loads((work / "mamba3_jepa_summary.json").read_text())
    assert summary["tiny"]["trainable"] > summary["tiny"]["x_encoder"] > 0
    assert summary["training"]["stages"] == ["captioning", "sft"]
    assert summary["training"]["final_step"] == 50
    assert summary["inference"]["embedding_shape"] == [32, 64]
    assert summary["inference"]["retrieval_top5_shape"] == [32, 5]
    stream = summary["stream"]
    assert stream["decodes"][0] == 0 and all(0 <= t < stream["frames"] for t in stream["decodes"])
    assert stream["decodes"] == sorted(set(stream["decodes"]))
    segments = stream["segments"]
    assert segments[0][0] == 0 and segments[-1][1] == stream["frames"] and len(segments) == 3
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))
    assert summary["small"] == {"trainable_M": 188.6, "frozen_M": 303.9}

    run_dir = work / "runs" / "mamba3_jepa_tutorial"
    assert (run_dir / "metrics.jsonl").is_file() and (run_dir / "frozen" / "model.safetensors").is_file()
    last = _stdout(nb.cells[-1])
    assert "188.6M trainable + 303.9M frozen" in last
    assert "['captioning', 'sft'] for 50 steps" in last
