"""PyTorch's engines on 2 gloo processes: DDP with gradient accumulation over a 2-stage recipe and
FSDP2 both equal one process; a 2-process run killed with SIGKILL in its second stage and resumed
equals an uninterrupted 2-process run bit for bit; InfoNCE with cross-rank negatives equals the
loss of the global batch."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mambajepa.core.checkpoint import (
    is_sharded,
    latest_valid_checkpoint,
    list_checkpoints,
    load_checkpoint_weights,
    read_trainer_state,
)
from mambajepa.losses import info_nce

COMMON = ["--train.progress=false", "--train.plots=false", "--train.eval_every=0"]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _train_cmd(run_dir, nproc, *extra):
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return [*launcher, "-m", "mambajepa", "train", "debug_stages", "--run-dir", str(run_dir), *COMMON, *extra]


def _run(run_dir, nproc, *extra):
    """Run to the end; retry once on the rare gloo abort at interpreter exit (after training)."""
    for attempt in range(2):
        proc = subprocess.run(
            _train_cmd(run_dir, nproc, *extra), env=_env(), capture_output=True, text=True, timeout=400
        )
        if proc.returncode == 0 or "terminate called without an active exception" not in proc.stderr:
            break
        if attempt == 0 and "--resume" not in extra:
            shutil.rmtree(run_dir, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return proc


def _assert_close(a, b, exact=False):
    assert a.keys() == b.keys()
    for key in a:
        if exact:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5, msg=key)


NO_DROPOUT = "--model.dropout=0.0"  # dropout masks come from per-rank random streams


def test_ddp_with_accumulation_over_two_stages_matches_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run(one, 1, NO_DROPOUT)
    out = _run(two, 2, NO_DROPOUT)
    assert out.stdout.count("trained mlp_regression") == 1  # only rank 0 reports
    _assert_close(load_checkpoint_weights(one), load_checkpoint_weights(two))
    state = read_trainer_state(latest_valid_checkpoint(two / "checkpoints"))
    assert state["world_size"] == 2 and state["strategy"] == "ddp" and len(state["rng"]) == 2
    assert (state["stage"], state["step_in_stage"]) == (1, 40)


def test_fsdp_matches_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "fsdp"
    _run(one, 1, NO_DROPOUT)
    _run(two, 2, NO_DROPOUT, "--train.strategy=fsdp")
    last = latest_valid_checkpoint(two / "checkpoints")
    assert is_sharded(last) and read_trainer_state(last)["strategy"] == "fsdp"
    _assert_close(load_checkpoint_weights(one), load_checkpoint_weights(two))
    # the sharded checkpoint of stage 1 resumes (same world size) to the same end, bit for bit
    again = tmp_path / "again"
    shutil.copytree(two, again)
    for ckpt in list_checkpoints(again / "checkpoints"):
        if int(ckpt.name[5:]) > 40:
            shutil.rmtree(ckpt)
    _run(again, 2, NO_DROPOUT, "--train.strategy=fsdp", "--resume", "auto")
    assert list_checkpoints(again / "checkpoints")[-1].name == "step_100"
    _assert_close(load_checkpoint_weights(two), load_checkpoint_weights(again), exact=True)


def test_two_process_sigkill_in_stage_two_then_resume_is_bit_identical(tmp_path):
    killed, full = tmp_path / "killed", tmp_path / "full"
    proc = subprocess.Popen(
        _train_cmd(killed, 2), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    marker = killed / "checkpoints" / "step_80"  # stage 2 runs from step 61 to 100
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    _kill_every_process_of(killed)  # the launcher and both workers
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"run ended before it could be killed: {err.decode()[-3000:]}"
    at = latest_valid_checkpoint(killed / "checkpoints")
    assert at is not None and 60 < int(at.name[5:]) < 100
    _run(killed, 2, "--resume", "auto")
    _run(full, 2)
    assert list_checkpoints(killed / "checkpoints")[-1].name == "step_100"
    _assert_close(load_checkpoint_weights(killed), load_checkpoint_weights(full), exact=True)


def _kill_every_process_of(run_dir) -> None:
    """SIGKILL every process whose command line names ``run_dir`` (torchrun's workers run in their
    own process groups)."""
    needle = str(run_dir).encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if needle in fh.read():
                    os.kill(int(pid), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _infonce_rank(rank: int, port: int, a: torch.Tensor, b: torch.Tensor, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        half = a.shape[0] // 2
        mine_a = a[rank * half : (rank + 1) * half].clone().requires_grad_(True)
        mine_b = b[rank * half : (rank + 1) * half].clone().requires_grad_(True)
        groups = GROUPS[rank * half : (rank + 1) * half]
        loss = info_nce(mine_a, mine_b, 0.1, gather=True, groups=groups)
        loss.backward()
        # data parallelism averages the ranks' gradients: scale by 1 / world size to compare
        out[rank] = (loss.detach(), mine_a.grad / 2, mine_b.grad / 2)
    finally:
        dist.destroy_process_group()


GROUPS = torch.tensor([0, 1, 2, 3, 1, 4, 0, 5])  # rows 0 / 6 and 1 / 4 share a target across the ranks


def test_info_nce_with_gathered_negatives_equals_the_global_batch_loss():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    full_a, full_b = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    full = info_nce(full_a, full_b, 0.1, groups=GROUPS)
    full.backward()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_infonce_rank, args=(_free_port(), a, b, out), nprocs=2, join=True)
        results = dict(out)
    losses = torch.stack([results[r][0] for r in range(2)])
    torch.testing.assert_close(losses.mean(), full.detach())
    torch.testing.assert_close(torch.cat([results[r][1] for r in range(2)]), full_a.grad)
    torch.testing.assert_close(torch.cat([results[r][2] for r in range(2)]), full_b.grad)
    # without gathering, each rank sees only its own rows as negatives: a different loss
    local = torch.stack(
        [
            info_nce(a[i * 4 : (i + 1) * 4], b[i * 4 : (i + 1) * 4], 0.1, groups=GROUPS[i * 4 : (i + 1) * 4])
            for i in range(2)
        ]
    )
    assert not torch.allclose(local.mean(), full.detach())
