"""Two gloo DDP processes launched by torchrun end with the same weights as one process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import torch

from mambajepa.core.checkpoint import load_checkpoint_weights, read_trainer_state

ARGS = [
    "--train.max_steps=15",
    "--train.warmup_steps=3",
    "--train.batch_size=16",
    "--train.checkpoint_every=0",
    "--train.progress=false",
    "--train.plots=false",
    "--train.eval_every=5",
    "--train.log_every=5",
]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _torchrun(run_dir):
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "mambajepa", "train", "debug_tiny", "--run-dir", str(run_dir), *ARGS],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
        out, err = proc.communicate()
    return proc.returncode, out, err


def test_two_process_gloo_matches_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(
        [sys.executable, "-m", "mambajepa", "train", "debug_tiny", "--run-dir", str(one), *ARGS],
        env=_env(), check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    returncode, out, err = _torchrun(two)
    if returncode != 0 and "terminate called without an active exception" in err:
        # a gloo worker thread occasionally aborts one rank at interpreter exit, after training
        # has finished (about 1 run in 15 on a busy 2-core machine): run once more
        shutil.rmtree(two)
        returncode, out, err = _torchrun(two)
    assert returncode == 0, err[-8000:]
    assert out.count("trained mlp_regression") == 1  # only rank 0 reports
    w1, w2 = load_checkpoint_weights(one), load_checkpoint_weights(two)
    assert w1.keys() == w2.keys()
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], rtol=1e-5, atol=1e-6, msg=key)
    state = read_trainer_state(two / "checkpoints" / "step_15")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    lines_two = (two / "metrics.jsonl").read_text().splitlines()
    assert len(lines_two) == 3  # rank 0 alone writes the log
