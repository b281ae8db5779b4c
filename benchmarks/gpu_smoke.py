"""GPU smoke check: ``python benchmarks/gpu_smoke.py [--skip-ddp] [--json out.json]``.

What the CPU test suite cannot see, in a few minutes on a CUDA machine:

1. one bf16-autocast JEPA training step of the ``ijepa_shapes`` recipe (shrunk), with the engine's
   parameter groups and AdamW: the loss finite, every trainable parameter with a finite gradient, the
   weights updated;
2. for each SSM layer (Mamba1, Mamba2, Mamba3), outputs and the gradients of the input and of every
   parameter: fused kernels against the chunked scan when ``mamba_ssm`` is importable (else the
   fused path is reported unavailable), and the chunked scan against the sequential reference on
   the GPU, in fp32 with TF32 off, at a length that is no multiple of any chunk size;
3. with two or more GPUs, ``torchrun --nproc_per_node=2`` DDP over NCCL against one process on the
   ``debug_tiny`` recipe (fp32): the final weights agree.

It prints one JSON line with every result and exits 0 when everything it could run passed, 1 when
something failed, and 2 (with a message on stderr) on a machine without CUDA.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

EXIT_PASSED, EXIT_FAILED, EXIT_NO_CUDA = 0, 1, 2
SEQ_LEN = 300  # no multiple of the chunked scan's 64 nor of Mamba-2's 256
# tolerances of `compare_tensors`: errors are measured against the largest magnitude of each tensor
FUSED_RTOL = 1e-2  # the kernels accumulate in another order (Triton dots may use TF32)
REF_RTOL = 1e-3  # chunked vs sequential scan, both PyTorch fp32
DDP_RTOL, DDP_ATOL = 1e-4, 1e-5
DDP_STEPS = 15
DDP_ARGS = [
    f"--train.max_steps={DDP_STEPS}",
    "--train.warmup_steps=3",
    "--train.batch_size=16",
    "--train.checkpoint_every=0",
    "--train.eval_every=0",
    "--train.progress=false",
    "--train.plots=false",
    "--train.device=cuda",
    "--train.precision=fp32",
]


def compare_tensors(
    expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor], rtol: float, atol: float = 1e-6
) -> dict[str, Any]:
    """Compare two sets of named tensors.

    A tensor passes when its largest absolute error is at most ``atol + rtol * scale``, where
    ``scale`` is the largest magnitude of the expected tensor (so near-zero entries of a gradient do
    not blow up a per-element ratio).

    Args:
        expected: reference tensors by name.
        actual: tensors to check, with the same names and shapes.
        rtol: tolerance relative to each expected tensor's largest magnitude.
        atol: absolute tolerance.

    Returns:
        ``{"passed", "max_abs", "max_rel", "worst", "failed"}``: the largest absolute error, the largest
        error relative to its tensor's scale, the name with that largest relative error, and the
        names that failed (a missing name, a shape mismatch or a non-finite value fails).
    """
    failed, max_abs, max_rel, worst = [], 0.0, 0.0, None
    for name in sorted(set(expected) | set(actual)):
        if name not in expected or name not in actual or expected[name].shape != actual[name].shape:
            failed.append(name)
            continue
        e, a = expected[name].detach().double().cpu(), actual[name].detach().double().cpu()
        if not (torch.isfinite(e).all() and torch.isfinite(a).all()):
            failed.append(name)
            continue
        err = (a - e).abs().max().item() if e.numel() else 0.0
        scale = e.abs().max().item() if e.numel() else 0.0
        rel = err / scale if scale > 0 else (0.0 if err == 0 else math.inf)
        max_abs = max(max_abs, err)
        if worst is None or rel > max_rel:
            max_rel, worst = rel, name
        if err > atol + rtol * scale:
            failed.append(name)
    return {"passed": not failed, "max_abs": max_abs, "max_rel": max_rel, "worst": worst, "failed": failed}


@contextlib.contextmanager
def _strict_fp32() -> Iterator[None]:
    """Turn TF32 off for matmuls and convolutions (restored afterwards)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _ssm_layers() -> dict[str, Callable[..., torch.nn.Module]]:
    from mambajepa.ssm import Mamba1, Mamba2, Mamba3

    return {
        "mamba1": lambda **kw: Mamba1(d_model=64, d_state=16, **kw),
        "mamba2": lambda **kw: Mamba2(d_model=64, d_state=64, headdim=16, **kw),
        "mamba3": lambda **kw: Mamba3(d_model=64, d_state=32, headdim=16, **kw),
    }


def run_layer(
    layer: torch.nn.Module, impl: str, x: torch.Tensor, grad_out: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Output and gradients (input and every parameter) of ``layer`` run with scan ``impl``."""
    layer.impl = impl
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    y = layer(x)
    y.backward(grad_out)
    out = {"y": y.detach(), "grad.x": x.grad}
    out.update({f"grad.{n}": p.grad for n, p in layer.named_parameters() if p.grad is not None})
    return out


def check_ssm_layer(name: str, device: torch.device, fused: bool) -> dict[str, Any]:
    """Fused vs chunked (when ``fused``) and chunked vs reference of one layer on ``device``."""
    torch.manual_seed(0)
    layer = _ssm_layers()[name](device=device)
    x = torch.randn(2, SEQ_LEN, 64, device=device)
    grad_out = torch.randn(2, SEQ_LEN, 64, device=device)
    with _strict_fp32():
        chunked = run_layer(layer, "chunked", x, grad_out)
        result: dict[str, Any] = {
            "ref_vs_chunked": compare_tensors(run_layer(layer, "ref", x, grad_out), chunked, REF_RTOL)
        }
        if fused:
            result["fused_vs_chunked"] = compare_tensors(
                chunked, run_layer(layer, "fused", x, grad_out), FUSED_RTOL
            )
            if name == "mamba3":
                result["fused_vs_chunked"]["note"] = (
                    "Mamba3 has no fused kernel: 'fused' runs the chunked scan"
                )
        else:
            result["fused_vs_chunked"] = {"status": "unavailable", "reason": "mamba_ssm is not importable"}
    return result


def check_jepa_bf16_step(device: torch.device) -> dict[str, Any]:
    """One bf16-autocast training step of the shrunk ``ijepa_shapes`` recipe on ``device``."""
    from mambajepa.config import load_config, resolve_recipe
    from mambajepa.registry import get_method
    from mambajepa.train.optim import build_optimizer, split_param_groups
    from mambajepa.train.trainer import move_to_device, seed_everything

    overrides = ["--data.n_train=32", "--data.n_val=0", "--train.batch_size=16", "--train.max_steps=2",
                 "--train.warmup_steps=0"]  # fmt: skip
    cfg = load_config(resolve_recipe("ijepa_shapes"), overrides)
    seed_everything(0)
    method = get_method(cfg.method).from_config(cfg).to(device)
    data = method.build_data(cfg)
    t = cfg.train
    optimizer = build_optimizer(
        split_param_groups(method, method.param_groups()), t.lr, t.weight_decay, t.betas, t.eps
    )
    batch = data.collate_fn([data.train[i] for i in range(t.batch_size)], torch.Generator().manual_seed(0))
    batch = move_to_device(batch, device)
    before = {n: p.detach().clone() for n, p in method.named_parameters() if p.requires_grad}

    method.train()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        out = method.training_step(batch, 0)
    loss = out.loss.float()
    loss.backward()
    grads = {n: p.grad for n, p in method.named_parameters() if p.requires_grad}
    missing = sorted(n for n, g in grads.items() if g is None)
    bad_grads = sorted(n for n, g in grads.items() if g is not None and not torch.isfinite(g).all())
    grad_norm = math.sqrt(sum(float(g.float().pow(2).sum()) for g in grads.values() if g is not None))
    optimizer.step()
    method.after_optimizer_step(0, t.max_steps)
    changed = sum(not torch.equal(before[n], p.detach()) for n, p in method.named_parameters() if n in before)
    finite_weights = all(torch.isfinite(p).all() for p in method.parameters())
    passed = bool(torch.isfinite(loss)) and not missing and not bad_grads and finite_weights and changed > 0
    return {
        "passed": passed,
        "loss": loss.item(),
        "loss_dtype": str(out.loss.dtype),
        "grad_norm": grad_norm,
        "params_updated": int(changed),
        "params_trainable": len(before),
        "params_without_grad": missing,
        "nonfinite_grads": bad_grads,
        "finite_weights": finite_weights,
    }


def _train_cmd(launcher: list[str], run_dir: Path) -> list[str]:
    return [*launcher, "-m", "mambajepa", "train", "debug_tiny", "--run-dir", str(run_dir), *DDP_ARGS]


def check_ddp(workdir: Path, timeout: float = 240.0) -> dict[str, Any]:
    """Two NCCL processes under torchrun end with the weights of one process (``debug_tiny``, fp32)."""
    from mambajepa.core.checkpoint import load_checkpoint_weights

    one, two = workdir / "one", workdir / "two"
    runs = {
        "one": _train_cmd([sys.executable], one),
        "two": _train_cmd(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], two
        ),
    }
    for label, cmd in runs.items():
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            return {
                "passed": False,
                "failed_run": label,
                "returncode": proc.returncode,
                "stderr": proc.stderr[-2000:],
            }
    result = compare_tensors(load_checkpoint_weights(one), load_checkpoint_weights(two), DDP_RTOL, DDP_ATOL)
    result["steps"] = DDP_STEPS
    return result


def _guard(results: dict[str, Any], key: str, fn: Callable[[], dict[str, Any]]) -> None:
    """Run one check; an exception fails that check (recorded with its message) and not the others."""
    start = time.perf_counter()
    try:
        results[key] = fn()
    except Exception as err:  # a crash is a failed check, reported in the JSON line
        results[key] = {"passed": False, "error": f"{type(err).__name__}: {err}"}
    results[key]["seconds"] = round(time.perf_counter() - start, 2)


def _all_passed(node: Any) -> bool:
    if isinstance(node, dict):
        return node.get("passed", True) is not False and all(_all_passed(v) for v in node.values())
    return True


def _report(results: dict[str, Any], path: Path | None) -> None:
    """Print ``results`` as one JSON line (and write it to ``path``)."""
    line = json.dumps(results, default=str)
    print(line, flush=True)
    if path is not None:
        path.write_text(line + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-ddp", action="store_true", help="leave out the 2-process DDP run")
    parser.add_argument("--json", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print(
            "gpu_smoke: CUDA is not available; this check needs an NVIDIA GPU, nothing was run",
            file=sys.stderr,
        )
        _report(
            {"cuda": False, "passed": False, "reason": "cuda unavailable", "torch": torch.__version__},
            args.json,
        )
        return EXIT_NO_CUDA

    from mambajepa.ssm.dispatch import ENV_VAR, fused_available, kernel_available

    os.environ.pop(ENV_VAR, None)  # a forced implementation would override the per-layer choice
    device = torch.device("cuda", 0)
    results: dict[str, Any] = {
        "cuda": True,
        "device": torch.cuda.get_device_name(device),
        "gpus": torch.cuda.device_count(),
        "torch": torch.__version__,
        "cuda_version": torch.version.cuda,
        "kernels": {m: kernel_available(m) for m in ("mamba_ssm", "causal_conv1d")},
    }
    _guard(results, "jepa_bf16_step", lambda: check_jepa_bf16_step(device))
    fused = fused_available(device)
    results["ssm"] = {}
    for name in _ssm_layers():
        _guard(results["ssm"], name, lambda name=name: check_ssm_layer(name, device, fused))
    if args.skip_ddp:
        results["ddp"] = {"status": "skipped", "reason": "--skip-ddp"}
    elif torch.cuda.device_count() < 2:
        results["ddp"] = {"status": "skipped", "reason": f"needs 2 GPUs, found {torch.cuda.device_count()}"}
    else:
        with tempfile.TemporaryDirectory(prefix="gpu_smoke_") as tmp:
            _guard(results, "ddp", lambda: check_ddp(Path(tmp)))
    results["passed"] = _all_passed(results)

    _report(results, args.json)
    return EXIT_PASSED if results["passed"] else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
