"""The encoder benchmark runs end to end on tiny sizes and its two models agree."""

import json

import pytest

pytest.importorskip("transformers")

from mambajepa.bench.encoders import main  # noqa: E402


def test_vit_benchmark_smoke(capsys):
    argv = ["--only", "vit", "--json", "--batch", "1", "--frames", "2", "--size", "32", "--patch", "8"]
    argv += [
        "--dim",
        "48",
        "--depth",
        "1",
        "--heads",
        "2",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--min-round-s",
        "0",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["section"] == "vit_vs_vjepa2"
    assert result["max_abs_diff"] < 1e-4
    assert result["ratio"] > 0 and result["ours_keep10_clips_per_s"] > 0
