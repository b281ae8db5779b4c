"""Encoder benchmarks: our ViT vs ``transformers`` ``VJEPA2Model`` (same weights, same input), and VideoMamba.

Run ``mambajepa bench encoders`` or ``python benchmarks/encoders.py [--quick]``. The peer is built
from the same configuration, its weights are copied into ours through the V-JEPA 2 mapping, the
outputs are checked to agree, and both are timed in alternating rounds in this process; the
ratio ours / peer is printed (goal: >= 1.0). :func:`bench_videomamba` times VideoMamba-Ti
(by default) on whole clips and as a stream of chunks carrying the SSM state (goal: per-chunk
latency flat in the stream position). Sections are functions returning a dict of results.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections.abc import Callable

import torch

from mambajepa.core.mapping import load_mapped
from mambajepa.encoders.vit import VisionTransformer, ViTConfig
from mambajepa.io.vjepa2 import HF_MAPPING


def _time(fn: Callable[[], object], sync: Callable[[], None], reps: int) -> float:
    """Seconds per call of ``fn`` averaged over ``reps`` back-to-back calls."""
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - start) / reps


def bench_vit(args: argparse.Namespace) -> dict:
    """Time our ViT and ``VJEPA2Model.get_vision_features`` on one input with the same weights.

    Returns:
        A dict with the sizes, per-model clips/s (best round), their ratio (best and median
        rounds), the largest output difference, and ours with 90 % of the tokens masked out
        (strict encoding).
    """
    from transformers import VJEPA2Config, VJEPA2Model

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    peer_config = VJEPA2Config(
        hidden_size=args.dim,
        num_hidden_layers=args.depth,
        num_attention_heads=args.heads,
        crop_size=args.size,
        patch_size=args.patch,
        frames_per_clip=args.frames,
        tubelet_size=args.tubelet,
        pred_hidden_size=64,
        pred_num_hidden_layers=1,
        pred_num_attention_heads=4,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    peer = VJEPA2Model(peer_config).eval()
    ours = VisionTransformer(
        ViTConfig(
            img_size=args.size,
            num_frames=args.frames,
            patch_size=args.patch,
            tubelet_size=args.tubelet,
            embed_dim=args.dim,
            depth=args.depth,
            num_heads=args.heads,
        )
    ).eval()
    load_mapped(ours, peer.state_dict(), HF_MAPPING, source="VJEPA2Model")
    peer, ours = peer.to(device, dtype), ours.to(device, dtype)
    video = torch.randn(args.batch, 3, args.frames, args.size, args.size, device=device, dtype=dtype)
    peer_video = video.transpose(1, 2).contiguous()  # the peer takes (B, T, C, H, W)
    n_tokens = ours.num_tokens(video.shape)
    keep = torch.stack(
        [torch.randperm(n_tokens, device=device)[: max(1, n_tokens // 10)] for _ in range(args.batch)]
    )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    runs = {
        "ours": lambda: ours(video),
        "peer": lambda: peer.get_vision_features(peer_video),
        "ours_keep10": lambda: ours(video, keep),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        max_diff = (ours(video).float() - peer.get_vision_features(peer_video).float()).abs().max().item()
        reps = {}
        for name, fn in runs.items():  # warm up, then size rounds to >= min_round_s each
            per_call = min(_time(fn, sync, 1) for _ in range(max(args.warmup, 1)))
            reps[name] = max(1, math.ceil(args.min_round_s / per_call))
        for _ in range(args.iters):
            for name, fn in runs.items():  # alternate so that machine noise hits both alike
                times[name].append(_time(fn, sync, reps[name]))
    # Best round per model (as timeit does): on a shared machine the minimum is the least noisy.
    clips = {name: args.batch / min(t) for name, t in times.items()}
    median = {name: args.batch / statistics.median(t) for name, t in times.items()}
    return {
        "section": "vit_vs_vjepa2",
        "sizes": f"D={args.dim} depth={args.depth} heads={args.heads} B={args.batch} "
        f"{args.frames}x{args.size}^2 patch={args.patch} tubelet={args.tubelet} tokens={n_tokens}",
        "device": str(device),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "ours_clips_per_s": clips["ours"],
        "peer_clips_per_s": clips["peer"],
        "ratio": clips["ours"] / clips["peer"],
        "ratio_median": median["ours"] / median["peer"],
        "ours_keep10_clips_per_s": clips["ours_keep10"],
        "max_abs_diff": max_diff,
    }


def bench_videomamba(args: argparse.Namespace) -> dict:
    """Time VideoMamba on whole clips and as a stream of chunks carrying the SSM state.

    Whole clips: the bidirectional model (``bimamba=True``, the released form) and the causal,
    streamable one (``bimamba=False``). Stream: the causal model fed ``--stream-chunks`` chunks of
    ``--chunk-frames`` frames, each continuing from the previous chunk's state; every round starts
    a fresh stream, and per stream position the best round is kept. A recurrent state of fixed
    size makes the per-chunk latency flat in the position, so ``late/early`` (mean latency of the
    last quarter of the stream over the first quarter) should be ~1. On a shared machine load
    drifts during a stream; ``late_over_first_adjacent`` divides each chunk's latency by that of
    the same chunk at position 0 timed right after it (median over rounds, mean over the last
    quarter), which cancels the drift.

    Returns:
        A dict with the sizes, clips/s of both models, per-chunk latencies (ms) by position, the
        late/early ratio and the streamed frames/s.
    """
    from mambajepa.encoders.videomamba import VideoMamba, VideoMambaConfig

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    sizes = dict(
        img_size=args.vm_size,
        patch_size=args.vm_patch,
        depth=args.vm_depth,
        embed_dim=args.vm_dim,
        num_frames=args.vm_frames,
    )
    torch.manual_seed(0)
    bi = VideoMamba(VideoMambaConfig(**sizes, bimamba=True)).eval().to(device, dtype)
    causal = VideoMamba(VideoMambaConfig(**sizes, bimamba=False)).eval().to(device, dtype)
    B = args.vm_batch
    video = torch.randn(B, 3, args.vm_frames, args.vm_size, args.vm_size, device=device, dtype=dtype)
    chunk = video[:, :, : args.chunk_frames]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    runs = {"bidirectional": lambda: bi(video), "causal": lambda: causal(video)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    latencies = [[] for _ in range(args.stream_chunks)]  # per position, one entry per round
    ratios = [[] for _ in range(args.stream_chunks)]  # per position: latency / adjacent first-chunk latency
    with torch.inference_mode():
        for fn in runs.values():
            for _ in range(args.warmup):
                fn()
        for _ in range(args.iters):
            for name, fn in runs.items():
                times[name].append(_time(fn, sync, 1))
            state = causal.init_state(B, device=device, dtype=dtype)
            for position in range(args.stream_chunks):
                sync()
                start = time.perf_counter()
                _, state = causal(chunk, ssm_state=state)
                sync()
                latencies[position].append(time.perf_counter() - start)
                # the same chunk at stream position 0, timed right after: machine noise cancels
                # in the ratio of the two
                fresh = causal.init_state(B, device=device, dtype=dtype)
                sync()
                start = time.perf_counter()
                causal(chunk, ssm_state=fresh)
                sync()
                ratios[position].append(latencies[position][-1] / (time.perf_counter() - start))
    per_position = [1e3 * min(t) for t in latencies]
    ratio = [statistics.median(r) for r in ratios]
    quarter = max(1, args.stream_chunks // 4)
    early = statistics.mean(per_position[:quarter])
    late = statistics.mean(per_position[-quarter:])
    tokens = (args.vm_frames * (args.vm_size // args.vm_patch) ** 2) + 1
    return {
        "section": "videomamba",
        "sizes": f"D={args.vm_dim} depth={args.vm_depth} B={B} {args.vm_frames}x{args.vm_size}^2 "
        f"patch={args.vm_patch} tokens={tokens}; stream {args.stream_chunks} chunks x {args.chunk_frames} frames",
        "device": str(device),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "bidirectional_clips_per_s": B / min(times["bidirectional"]),
        "causal_clips_per_s": B / min(times["causal"]),
        "stream_chunk_ms_first": per_position[0],
        "stream_chunk_ms_early": early,
        "stream_chunk_ms_late": late,
        "stream_late_over_early": late / early,
        "stream_late_over_first_adjacent": statistics.mean(ratio[-quarter:]),
        "stream_frames_per_s": B * args.chunk_frames * 1e3 / statistics.mean(per_position),
        "stream_chunk_ms_by_position": [round(t, 2) for t in per_position],
    }


SECTIONS = {"vit": bench_vit, "videomamba": bench_videomamba}


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the encoder benchmark."""
    parser = argparse.ArgumentParser(prog="mambajepa bench encoders", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--patch", type=int, default=16)
    parser.add_argument("--tubelet", type=int, default=2)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--vm-batch", type=int, default=1, help="VideoMamba batch")
    parser.add_argument("--vm-frames", type=int, default=8, help="VideoMamba frames per clip")
    parser.add_argument("--vm-size", type=int, default=224, help="VideoMamba frame side")
    parser.add_argument("--vm-patch", type=int, default=16, help="VideoMamba patch side")
    parser.add_argument("--vm-dim", type=int, default=192, help="VideoMamba width (Ti: 192)")
    parser.add_argument("--vm-depth", type=int, default=24, help="VideoMamba depth (Ti: 24)")
    parser.add_argument("--stream-chunks", type=int, default=16, help="chunks per VideoMamba stream")
    parser.add_argument("--chunk-frames", type=int, default=1, help="frames per streamed chunk")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--min-round-s", type=float, default=0.2, help="repeat calls until a round lasts this long"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--json", action="store_true", help="print one JSON line per section")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections and print their results; returns 0."""
    args = build_parser().parse_args(argv)
    if args.quick:
        args.batch, args.frames, args.size, args.dim, args.depth, args.heads = 1, 4, 64, 192, 4, 3
        args.iters, args.warmup = 3, 1
        args.vm_frames, args.vm_size, args.vm_depth, args.stream_chunks = 4, 64, 4, 8
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__} | {platform.processor() or platform.machine()}")
    for name in args.only or list(SECTIONS):
        result = SECTIONS[name](args)
        if args.json:
            print(json.dumps(result))
            continue
        print(f"[{result['section']}] {result['sizes']} on {result['device']} {result['dtype']}")
        for key, value in result.items():
            if key not in ("section", "sizes", "device", "dtype"):
                print(f"  {key:>28}: {value:.4g}" if isinstance(value, float) else f"  {key:>28}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
