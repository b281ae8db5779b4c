"""The VideoMamba benchmark section runs end to end on tiny sizes and reports a full stream."""

import json

from mambajepa.bench.encoders import main


def test_videomamba_benchmark_smoke(capsys):
    argv = ["--only", "videomamba", "--json", "--device", "cpu", "--iters", "1", "--warmup", "0"]
    argv += ["--vm-frames", "2", "--vm-size", "16", "--vm-patch", "8", "--vm-dim", "16", "--vm-depth", "1"]
    argv += ["--stream-chunks", "4", "--chunk-frames", "1"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["section"] == "videomamba"
    assert len(result["stream_chunk_ms_by_position"]) == 4
    assert result["bidirectional_clips_per_s"] > 0 and result["causal_clips_per_s"] > 0
    assert result["stream_late_over_early"] > 0 and result["stream_frames_per_s"] > 0
