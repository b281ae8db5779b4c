"""``benchmarks/gpu_smoke.py``: its exit status without CUDA and its tensor comparison."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_smoke.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_and_exits_2():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides any GPU of the machine running the suite
    proc = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "CUDA is not available" in proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["cuda"] is False and result["passed"] is False and result["reason"] == "cuda unavailable"


def test_compare_tensors_measures_errors_against_each_tensors_scale():
    compare = _load().compare_tensors
    g = torch.Generator().manual_seed(0)
    expected = {"y": torch.randn(4, 8, generator=g), "grad.w": torch.randn(3, generator=g) * 100}
    same = compare(expected, {k: v.clone() for k, v in expected.items()}, rtol=1e-3)
    assert same == {"passed": True, "max_abs": 0.0, "max_rel": 0.0, "worst": "grad.w", "failed": []}

    # an error of 1e-2 is small against the gradient's scale (about 100) but not against y's (about 1)
    nudged = {"y": expected["y"].clone(), "grad.w": expected["grad.w"] + 1e-2}
    ok = compare(expected, nudged, rtol=1e-3)
    assert ok["passed"] and ok["worst"] == "grad.w"
    scale = expected["grad.w"].abs().max().item()
    assert abs(ok["max_abs"] - 1e-2) < 1e-4  # float32 rounding at magnitude 100
    assert abs(ok["max_rel"] - ok["max_abs"] / scale) < 1e-12
    nudged["y"] = expected["y"] + 1e-2
    bad = compare(expected, nudged, rtol=1e-3)
    assert not bad["passed"] and bad["failed"] == ["y"] and bad["worst"] == "y"

    # missing names, shape mismatches and non-finite values fail
    assert compare(expected, {"y": expected["y"]}, rtol=1.0)["failed"] == ["grad.w"]
    assert compare(expected, {**expected, "y": expected["y"][:2]}, rtol=1.0)["failed"] == ["y"]
    assert compare(expected, {**expected, "y": torch.full((4, 8), float("nan"))}, rtol=1.0)["failed"] == ["y"]


def test_ssm_check_reports_the_fused_path_unavailable_and_compares_chunked_to_the_reference():
    result = _load().check_ssm_layer("mamba2", torch.device("cpu"), fused=False)
    assert result["fused_vs_chunked"]["status"] == "unavailable"
    ref = result["ref_vs_chunked"]
    assert ref["passed"], ref
    assert ref["max_rel"] < 1e-3 and ref["worst"] is not None
