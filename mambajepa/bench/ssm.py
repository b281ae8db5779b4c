"""Benchmark of the SSM layers against Hugging Face's pure-PyTorch mixers, in one process.

Times forward and forward+backward of one layer (ours and the peer loaded with the same weights,
on the same input; runs interleaved, best of ``--repeats``), and reports tokens/s, the speed ratio ours/peer, achieved GFLOP/s against a
measured fp32 matmul peak, peak memory of forward+backward, and the latency of one decode
``step()`` at an early and a late position.

Pairs: ``Mamba2`` vs ``transformers`` ``Mamba2Mixer`` (torch path); ``Mamba1`` vs ``MambaMixer``
with ``use_mambapy=True`` (parallel scan of the ``mambapy`` package when installed); ``Mamba3``
(SISO) vs our ``Mamba2`` when ``mambajepa.ssm.mamba3`` is importable.

Run ``python benchmarks/ssm.py`` (``--quick`` for a smaller smoke run) or ``mambajepa bench ssm``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from mambajepa.ssm import Mamba1, Mamba2


@dataclass
class Timing:
    """Measurements of one layer."""

    name: str
    fwd_s: float
    fwd_bwd_s: float
    fwd_cpu_s: float
    fwd_bwd_cpu_s: float
    tokens_per_s_fwd: float
    tokens_per_s_fwd_bwd: float
    gflops_fwd_bwd: float
    peak_mem_mb: float | None
    saved_mb: float


def _best_time(fn: Callable[[], None], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Measured fp32 GEMM throughput (GFLOP/s) of this machine with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = _best_time(lambda: torch.mm(a, b), repeats, warmup=2)
    return 2 * n**3 / t / 1e9


def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory_mb(fn: Callable[[], None]) -> float | None:
    """Peak resident memory above the starting level while ``fn`` runs (Linux; None elsewhere).

    Freed heap is first handed back to the OS (``malloc_trim``) and the high-water mark reset
    (``/proc/self/clear_refs``), so the number is the growth caused by ``fn`` alone.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    start = _proc_status_kb("VmRSS")
    fn()
    peak = _proc_status_kb("VmHWM")
    if start is None or peak is None:
        return None
    return (peak - start) / 1024


def saved_for_backward_mb(layer: nn.Module, x: torch.Tensor) -> float:
    """Bytes of the tensors autograd keeps for backward (activation memory; deterministic)."""
    total = 0
    seen: set[int] = set()

    def pack(t: torch.Tensor):
        nonlocal total
        key = t.untyped_storage().data_ptr()
        if key not in seen and not isinstance(t, nn.Parameter):
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x.detach().requires_grad_(True)).sum()
    return total / 2**20


def _fwd_fns(layer: nn.Module, x: torch.Tensor) -> tuple[Callable[[], None], Callable[[], None]]:
    xg = x.detach().requires_grad_(True)

    def fwd():
        with torch.no_grad():
            layer(x)

    def fwd_bwd():
        xg.grad = None
        layer.zero_grad(set_to_none=True)
        layer(xg).sum().backward()

    return fwd, fwd_bwd


def _interleaved_min(
    fns: list[Callable[[], None]], repeats: int, warmup: int = 2
) -> tuple[list[float], list[float]]:
    """Best wall time and best CPU time of each function, running them in turn so that machine
    noise hits all alike. CPU time (``time.process_time``) leaves out the time the process
    waits while other jobs hold the cores, so with one thread it is the steadier of the two."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    best = [float("inf")] * len(fns)
    best_cpu = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
            best_cpu[i] = min(best_cpu[i], time.process_time() - c0)
    return best, best_cpu


def measure_pair(
    names: tuple[str, str],
    layers: tuple[nn.Module, nn.Module],
    x: torch.Tensor,
    flops_fwd: float,
    repeats: int,
) -> tuple[Timing, Timing]:
    """Time forward (no grad) and forward+backward of two layers on ``x``, interleaved (best of ``repeats``)."""
    tokens = x.shape[0] * x.shape[1]
    fns = [_fwd_fns(layer, x) for layer in layers]
    t_f, c_f = _interleaved_min([f for f, _ in fns], repeats)
    t_fb, c_fb = _interleaved_min([fb for _, fb in fns], repeats)
    out = []
    for i, (name, layer) in enumerate(zip(names, layers)):
        peak = peak_memory_mb(fns[i][1])
        layer.zero_grad(set_to_none=True)
        out.append(
            Timing(
                name=name,
                fwd_s=t_f[i],
                fwd_bwd_s=t_fb[i],
                fwd_cpu_s=c_f[i],
                fwd_bwd_cpu_s=c_fb[i],
                tokens_per_s_fwd=tokens / t_f[i],
                tokens_per_s_fwd_bwd=tokens / t_fb[i],
                gflops_fwd_bwd=3 * flops_fwd / t_fb[i] / 1e9,
                peak_mem_mb=peak,
                saved_mb=saved_for_backward_mb(layer, x),
            )
        )
    return out[0], out[1]


def mamba1_flops(
    batch: int, length: int, d_model: int, d_inner: int, d_state: int, dt_rank: int, d_conv: int
) -> float:
    """Model FLOPs of one Mamba-1 forward: projections, conv and the recurrent scan (2 per MAC)."""
    tokens = batch * length
    proj = (
        2
        * tokens
        * (d_model * 2 * d_inner + d_inner * (dt_rank + 2 * d_state) + dt_rank * d_inner + d_inner * d_model)
    )
    return proj + 2 * tokens * d_inner * d_conv + 6 * tokens * d_inner * d_state


def mamba2_flops(
    batch: int, length: int, d_model: int, d_inner: int, d_state: int, nheads: int, ngroups: int, d_conv: int
) -> float:
    """Model FLOPs of one Mamba-2 forward, counting the scan in its recurrent form."""
    tokens = batch * length
    conv_dim = d_inner + 2 * ngroups * d_state
    proj = 2 * tokens * (d_model * (2 * d_inner + 2 * ngroups * d_state + nheads) + d_inner * d_model)
    return proj + 2 * tokens * conv_dim * d_conv + 6 * tokens * d_inner * d_state


def decode_latency_ms(
    layer: nn.Module, batch: int, positions: list[int], steps: int = 200
) -> dict[int, float]:
    """Median latency of one ``step()`` after a prefill of each of ``positions`` tokens.

    Steps from the different positions are interleaved so that machine noise affects them alike.
    """
    d_model = layer.d_model
    times: dict[int, list[float]] = {pos: [] for pos in positions}
    with torch.no_grad():
        states = {pos: layer(torch.randn(batch, pos, d_model), return_state=True)[1] for pos in positions}
        x_t = torch.randn(batch, d_model)
        for i in range(steps):
            for pos in positions:
                t0 = time.perf_counter()
                _, states[pos] = layer.step(x_t, states[pos])
                if i >= 10:  # warm-up steps are not counted
                    times[pos].append(time.perf_counter() - t0)
    return {pos: 1e3 * statistics.median(t) for pos, t in times.items()}


def _hf_pair(kind: str, args) -> tuple[nn.Module, nn.Module, float]:
    """(ours, peer, forward FLOPs) with the peer's weights loaded into ours."""
    from transformers import Mamba2Config, MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer
    from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer

    d, e = args.d_model, args.expand * args.d_model
    if kind == "mamba2":
        nheads = e // args.headdim
        cfg = Mamba2Config(
            hidden_size=d,
            state_size=args.d_state,
            expand=args.expand,
            head_dim=args.headdim,
            num_heads=nheads,
            n_groups=1,
            conv_kernel=4,
            chunk_size=args.chunk_size,
            layer_norm_epsilon=1e-5,
        )
        peer = Mamba2Mixer(cfg, layer_idx=0)
        ours = Mamba2(
            d, d_state=args.d_state, expand=args.expand, headdim=args.headdim, chunk_size=args.chunk_size
        )
        flops = mamba2_flops(args.batch, args.length, d, e, args.d_state, nheads, 1, 4)
    else:
        cfg = MambaConfig(
            hidden_size=d, state_size=args.d_state_m1, expand=args.expand, conv_kernel=4, use_mambapy=True
        )
        peer = MambaMixer(cfg, layer_idx=0)
        ours = Mamba1(d, d_state=args.d_state_m1, expand=args.expand)
        flops = mamba1_flops(args.batch, args.length, d, e, args.d_state_m1, ours.dt_rank, 4)
    ours.load_state_dict(peer.state_dict(), strict=True)
    return ours.eval(), peer.eval(), flops


def _row(t: Timing) -> str:
    mem = f"{t.peak_mem_mb:8.0f}" if t.peak_mem_mb is not None else "     n/a"
    return (
        f"{t.name:<28} {1e3 * t.fwd_s:9.1f} {1e3 * t.fwd_bwd_s:9.1f} {1e3 * t.fwd_bwd_cpu_s:9.1f} "
        f"{t.tokens_per_s_fwd_bwd:11.0f} "
        f"{t.gflops_fwd_bwd:8.1f} {mem} {t.saved_mb:8.0f}"
    )


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print a report; returns the results as a dict.

    Args:
        argv: command-line arguments (``--help`` lists them); None reads ``sys.argv``.
    """
    p = argparse.ArgumentParser(prog="mambajepa bench ssm", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (B=2, L=256) for a smoke run")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--expand", type=int, default=2)
    p.add_argument("--headdim", type=int, default=64)
    p.add_argument("--d-state", type=int, default=64, help="Mamba-2/3 state size")
    p.add_argument("--d-state-m1", type=int, default=16, help="Mamba-1 state size")
    p.add_argument(
        "--chunk-size", type=int, default=256, help="Mamba-2 chunk_size of both layers (the default of both)"
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--decode-positions", type=int, nargs=2, default=[16, 8192])
    p.add_argument("--layers", nargs="+", default=["mamba2", "mamba1", "mamba3"])
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.length, args.repeats = 2, 256, 3
        args.decode_positions = [16, 2048]
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore")
    import transformers.utils.logging as hf_logging

    hf_logging.set_verbosity_error()

    peak = matmul_peak_gflops()
    mambapy = importlib.util.find_spec("mambapy") is not None
    print(
        f"# SSM layers, fp32 CPU, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(
        f"# B={args.batch} L={args.length} d_model={args.d_model} expand={args.expand} headdim={args.headdim} "
        f"d_state={args.d_state} (Mamba-1: {args.d_state_m1}); matmul peak {peak:.1f} GFLOP/s; "
        f"mambapy {'installed' if mambapy else 'NOT installed (peer falls back to a sequential loop)'}"
    )
    print(
        f"{'layer':<28} {'fwd ms':>9} {'f+b ms':>9} {'f+b cpu':>9} {'tok/s f+b':>11} {'GFLOP/s':>8} "
        f"{'peak MB':>8} {'saved MB':>8}"
    )
    results: dict = {
        "matmul_peak_gflops": peak,
        "args": vars(args),
        "layers": {},
        "ratios": {},
        "decode_ms": {},
    }
    x = torch.randn(args.batch, args.length, args.d_model)
    ours_m2 = None
    for kind in [k for k in ("mamba2", "mamba1") if k in args.layers]:
        ours, peer, flops = _hf_pair(kind, args)
        peer_name = f"hf {kind}" + (" (mambapy)" if kind == "mamba1" else " (torch)")
        t_ours, t_peer = measure_pair((f"ours {kind}", peer_name), (ours, peer), x, flops, args.repeats)
        print(_row(t_ours))
        print(_row(t_peer))
        ratio = {
            "fwd": t_peer.fwd_s / t_ours.fwd_s,
            "fwd_bwd": t_peer.fwd_bwd_s / t_ours.fwd_bwd_s,
            "fwd_bwd_cpu": t_peer.fwd_bwd_cpu_s / t_ours.fwd_bwd_cpu_s,
            "peak_mem": (t_ours.peak_mem_mb / t_peak) if (t_peak := t_peer.peak_mem_mb) else None,
            "saved": t_ours.saved_mb / t_peer.saved_mb,
        }
        results["layers"][kind] = {"ours": asdict(t_ours), "peer": asdict(t_peer)}
        results["ratios"][kind] = ratio
        results["decode_ms"][kind] = decode_latency_ms(ours, args.batch, args.decode_positions)
        if kind == "mamba2":
            ours_m2 = (ours, t_ours)
    if "mamba3" in args.layers and importlib.util.find_spec("mambajepa.ssm.mamba3") is not None:
        from mambajepa.ssm.mamba3 import Mamba3

        m3 = Mamba3(args.d_model, d_state=args.d_state, expand=args.expand, headdim=args.headdim).eval()
        e = args.expand * args.d_model
        flops = mamba2_flops(args.batch, args.length, args.d_model, e, args.d_state, e // args.headdim, 1, 0)
        if ours_m2 is None:
            ours_m2 = (_hf_pair("mamba2", args)[0], None)
        t3, t2 = measure_pair(
            ("ours mamba3 (siso)", "ours mamba2 (same run)"), (m3, ours_m2[0]), x, flops, args.repeats
        )
        print(_row(t3))
        print(_row(t2))
        results["layers"]["mamba3"] = {"ours": asdict(t3), "mamba2": asdict(t2)}
        results["ratios"]["mamba3_vs_mamba2"] = {
            "fwd": t2.fwd_s / t3.fwd_s,
            "fwd_bwd": t2.fwd_bwd_s / t3.fwd_bwd_s,
            "fwd_bwd_cpu": t2.fwd_bwd_cpu_s / t3.fwd_bwd_cpu_s,
        }
        results["decode_ms"]["mamba3"] = decode_latency_ms(m3, args.batch, args.decode_positions)

    print("\n# ratios (speed: peer time / our time; memory: ours / peer)")
    for kind, r in results["ratios"].items():
        print(f"{kind:<20} " + "  ".join(f"{k}={v:.2f}" for k, v in r.items() if v is not None))
    print("\n# decode step latency (ms) by position")
    for kind, d in results["decode_ms"].items():
        (p0, t0), (p1, t1) = sorted(d.items())
        print(f"{kind:<20} pos {p0}: {t0:.3f}  pos {p1}: {t1:.3f}  ratio {t1 / t0:.2f}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
    return results


if __name__ == "__main__":
    main()
