"""ShapesWorld generation speed, against reading CIFAR-10 batches from disk in the same process.

Prints items per second on one core for images (32 and 64 px), clips, captions, questions and
streams, and the same rate for :class:`~mambajepa.data.CIFAR10` items read from a CIFAR-10
binary folder exported from ShapesWorld. Each case also prints the time one batch of generation
takes relative to a training step: by default a stand-in for the tiny recipes (forward and
backward of a 4-layer, 192-wide ``nn.TransformerEncoder`` over the 64 patch tokens of a 32 px
batch, one thread), or ``--step-ms`` milliseconds. One DataLoader worker keeps up with training
while that ratio is below 1.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import torch

from mambajepa.data.cifar10 import CIFAR10
from mambajepa.data.export import export_shapesworld
from mambajepa.data.shapes_render import ShapesConfig
from mambajepa.data.synthetic import ShapesCaptions, ShapesImages, ShapesStream, ShapesVideos, ShapesVQA


def items_per_second(get: Callable[[int], object], count: int, min_seconds: float = 0.5) -> float:
    """Rate of ``get(i)`` calls over at least ``count`` calls and ``min_seconds``."""
    get(0)  # warm-up
    done, start = 0, time.perf_counter()
    while True:
        for i in range(count):
            get(done + i)
        done += count
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def proxy_step_ms(batch_size: int, repeats: int = 5) -> float:
    """Milliseconds of one forward+backward+SGD step of a tiny ViT-sized encoder (4 x 192, 64 tokens)."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(192, 3, 768, dropout=0.0, batch_first=True, norm_first=True)
    model = torch.nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    tokens = torch.randn(batch_size, 64, 192)  # (B, L, D): 8x8 patches of 4 px on a 32 px image

    def step() -> None:
        loss = model(tokens).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return 1000.0 * (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> int:
    """Run the data benchmark; ``argv`` as on the command line (``--quick``, ``--step-ms``)."""
    parser = argparse.ArgumentParser(prog="mambajepa bench data", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size for the step-time ratio")
    parser.add_argument("--step-ms", type=float, default=None, help="training step time to compare with")
    parser.add_argument("--no-proxy-step", action="store_true", help="skip the stand-in training step")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    count, min_seconds = (20, 0.05) if args.quick else (200, 1.0)
    step_ms = args.step_ms
    if step_ms is None and not args.no_proxy_step:
        step_ms = proxy_step_ms(args.batch_size, repeats=1 if args.quick else 5)
        print(f"stand-in training step (tiny encoder, batch {args.batch_size}, 1 thread): {step_ms:.1f} ms")
    multi = ShapesConfig(max_objects=3)
    cases: list[tuple[str, Callable[[int], object], str]] = [
        ("images 32px, 1 object", ShapesImages(size=32).__getitem__, "images"),
        ("images 32px, 1-3 objects", ShapesImages(size=32, config=multi).__getitem__, "images"),
        ("images 64px, 1 object", ShapesImages(size=64).__getitem__, "images"),
        ("captions 32px", ShapesCaptions(size=32).__getitem__, "pairs"),
        ("questions 32px", ShapesVQA(size=32).__getitem__, "pairs"),
        ("videos 16x32px", ShapesVideos(size=32, num_frames=16).__getitem__, "clips"),
        ("videos 16x64px", ShapesVideos(size=64, num_frames=16).__getitem__, "clips"),
        ("stream 64x32px, 4 scenes", ShapesStream(size=32, num_frames=64).__getitem__, "streams"),
    ]
    with tempfile.TemporaryDirectory() as folder:
        export_shapesworld(folder, "cifar-binary", num_items=count, num_test=1)
        cifar = CIFAR10(folder, "train")
        cases.append(("CIFAR-10 binary items (peer)", lambda i: cifar[i % len(cifar)], "images"))
        print(
            f"{'case':32s} {'items/s':>10s} {'unit':8s} {'ms/batch':>10s}" + ("  gen/step" if step_ms else "")
        )
        rates = {}
        for name, get, unit in cases:
            rate = items_per_second(get, count, min_seconds)
            rates[name] = rate
            batch_ms = 1000.0 * args.batch_size / rate
            line = f"{name:32s} {rate:10.0f} {unit:8s} {batch_ms:10.2f}"
            if step_ms:
                line += f"  {batch_ms / step_ms:8.3f}"
            print(line, flush=True)
    ratio = rates["images 32px, 1 object"] / rates["CIFAR-10 binary items (peer)"]
    print(f"ShapesWorld 32px images / CIFAR-10 reads: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
