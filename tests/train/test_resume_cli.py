"""A run killed with SIGKILL and resumed through the CLI ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch

from mambajepa.core.checkpoint import latest_valid_checkpoint, list_checkpoints, load_checkpoint_weights

STEPS, EVERY, KILL_AT = 800, 100, 200
ARGS = [
    "--train.max_steps", str(STEPS),
    f"--train.checkpoint_every={EVERY}",
    "--train.progress=false",
    "--train.plots=false",
    "--train.eval_every=0",
    "--model.dropout=0.1",  # exercises the RNG restore
]  # fmt: skip


def _cmd(run_dir, *extra):
    return [
        sys.executable,
        "-m",
        "mambajepa",
        "train",
        "debug_tiny",
        "--run-dir",
        str(run_dir),
        *ARGS,
        *extra,
    ]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_sigkill_then_resume_auto_is_bit_identical(tmp_path):
    killed_dir, full_dir = tmp_path / "killed", tmp_path / "full"
    proc = subprocess.Popen(_cmd(killed_dir), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = killed_dir / "checkpoints" / f"step_{KILL_AT}"
    deadline = time.monotonic() + 240
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"run ended before it could be killed: {err.decode()[-2000:]}"
    interrupted_at = latest_valid_checkpoint(killed_dir / "checkpoints")
    assert interrupted_at is not None and int(interrupted_at.name[5:]) < STEPS

    subprocess.run(
        _cmd(killed_dir, "--resume", "auto"), env=_env(), check=True, capture_output=True, timeout=300
    )
    subprocess.run(_cmd(full_dir), env=_env(), check=True, capture_output=True, timeout=300)

    assert [p.name for p in list_checkpoints(killed_dir / "checkpoints")][-1] == f"step_{STEPS}"
    resumed, full = load_checkpoint_weights(killed_dir), load_checkpoint_weights(full_dir)
    assert resumed.keys() == full.keys()
    for key in full:
        assert torch.equal(resumed[key], full[key]), key
