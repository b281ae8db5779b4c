"""``mambajepa data ...``: export ShapesWorld, train a tokenizer, download CIFAR-10.

The top-level CLI hands its ``data`` sub-parser to :func:`configure` and the parsed arguments to
:func:`run`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from mambajepa.data.cifar10 import ARCHIVES, download_cifar10
from mambajepa.data.export import FORMATS, export_shapesworld
from mambajepa.data.shapes_render import MAX_OBJECTS, ShapesConfig
from mambajepa.data.text import read_documents, shapesworld_documents
from mambajepa.data.tokenizers import HFTokenizer


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``export``, ``train-tokenizer`` and ``download`` sub-commands to ``parser``."""
    commands = parser.add_subparsers(
        dest="data_command", required=True, metavar="{export,train-tokenizer,download}"
    )

    export = commands.add_parser("export", help="write a built-in dataset in a real on-disk format")
    datasets = export.add_subparsers(dest="dataset", required=True)
    shapes = datasets.add_parser("shapesworld", help="export ShapesWorld scenes")
    shapes.add_argument("--format", required=True, choices=FORMATS, dest="format")
    shapes.add_argument("--out", required=True, type=Path, help="output folder")
    shapes.add_argument("--n", type=int, default=1000, help="scenes to write (CIFAR: train images)")
    shapes.add_argument("--n-test", type=int, default=None, help="CIFAR layouts: test images (default n/5)")
    shapes.add_argument("--split", default="train", choices=("train", "val", "test"))
    shapes.add_argument("--size", type=int, default=32, help="image side in pixels")
    shapes.add_argument("--seed", type=int, default=0)
    shapes.add_argument("--max-objects", type=int, default=1, choices=range(1, MAX_OBJECTS + 1))
    shapes.add_argument("--shard-size", type=int, default=1000, help="webdataset: samples per shard")

    tokenizer = commands.add_parser("train-tokenizer", help="train a BPE tokenizer.json")
    tokenizer.add_argument(
        "--corpus",
        nargs="+",
        default=["shapesworld"],
        help="text files (one document per line) or 'shapesworld'",
    )
    tokenizer.add_argument("--out", required=True, type=Path, help="tokenizer.json to write")
    tokenizer.add_argument("--vocab-size", type=int, default=1000)
    tokenizer.add_argument("--min-frequency", type=int, default=2)
    tokenizer.add_argument(
        "--n", type=int, default=20000, help="ShapesWorld captions when --corpus shapesworld"
    )

    download = commands.add_parser("download", help="download a public dataset (needs the internet)")
    targets = download.add_subparsers(dest="dataset", required=True)
    cifar = targets.add_parser("cifar10", help="official CIFAR-10 archive, MD5-checked")
    cifar.add_argument("--root", required=True, type=Path)
    cifar.add_argument("--layout", default="python", choices=sorted(ARCHIVES))
    cifar.add_argument("--url", default=None, help="mirror address (default: the official one)")


def _corpus(args: argparse.Namespace) -> Iterator[str]:
    for source in args.corpus:
        if source == "shapesworld":
            yield from shapesworld_documents(num_items=args.n)
        else:
            yield from read_documents([source])


def run(args: argparse.Namespace) -> int:
    """Execute a parsed ``mambajepa data`` command.

    Args:
        args: the namespace produced by a parser set up with :func:`configure`.

    Returns:
        The process exit status (0 on success).

    Raises:
        DataError: on a missing corpus file or a failed download.
        ConfigError: on inconsistent export options.
    """
    if args.data_command == "export":
        config = ShapesConfig(max_objects=args.max_objects)
        written = export_shapesworld(
            args.out,
            args.format,
            num_items=args.n,
            num_test=args.n_test,
            split=args.split,
            size=args.size,
            seed=args.seed,
            config=config,
            shard_size=args.shard_size,
        )
        print(f"wrote ShapesWorld ({args.format}, {args.n} scenes) to " + ", ".join(map(str, written)))
        return 0
    if args.data_command == "train-tokenizer":
        tokenizer = HFTokenizer.train_bpe(_corpus(args), args.vocab_size, args.min_frequency)
        tokenizer.save(args.out)
        print(f"wrote {args.out} (vocabulary {tokenizer.vocab_size})")
        return 0
    path = download_cifar10(args.root, args.layout, url=args.url)
    print(f"CIFAR-10 ready at {path}")
    return 0
