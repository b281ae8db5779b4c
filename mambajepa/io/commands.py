"""``mambajepa export``: write a model's weights as safetensors or in the C++ layout.

The source is a run directory (or one of its checkpoints: the latest valid ``model.safetensors``
is used), a folder written by ``save_pretrained``, a ``.safetensors`` file, a V-JEPA 2 checkpoint
(an official ``.pt``/``.pth`` file or a Hugging Face ``vjepa2`` folder, converted to our ViT), or
the name of a registered preset (freshly initialised weights, e.g. to test a C++ loader).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from mambajepa.core.errors import CheckpointError, MambaJepaError
from mambajepa.core.files import load_state_dict, read_json
from mambajepa.core.pretrained import CONFIG_NAME, PretrainedMixin
from mambajepa.io.export import export_cpp, export_safetensors
from mambajepa.io.vjepa2 import load_vjepa2
from mambajepa.registry import load_pretrained


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``export`` arguments to ``parser``."""
    parser.add_argument(
        "source",
        help="run directory, checkpoint directory, pretrained folder, .safetensors file or preset name",
    )
    parser.add_argument(
        "--out", required=True, help="output folder (or .safetensors file with --format safetensors)"
    )
    parser.add_argument(
        "--format",
        choices=("safetensors", "cpp"),
        default="safetensors",
        help="safetensors (a from_pretrained folder when the source has a config) or the C++ layout "
        "(one float32 .bin per tensor + metadata.json)",
    )
    parser.add_argument(
        "--which",
        choices=("target_encoder", "encoder"),
        default="target_encoder",
        help="entry of an official V-JEPA 2 .pt file to convert",
    )
    parser.add_argument(
        "--num-heads",
        type=int,
        default=None,
        help="attention heads of an official V-JEPA 2 file of an unreleased size (not stored in it)",
    )
    parser.add_argument(
        "--prefix",
        default=None,
        help="export only the entries under this prefix, with the prefix removed (e.g. 'encoder.')",
    )


def _resolve(args: argparse.Namespace) -> tuple[dict[str, torch.Tensor], PretrainedMixin | None]:
    source = args.source
    path = Path(source)
    overrides = {} if args.num_heads is None else {"num_heads": args.num_heads}
    if path.is_dir() and (path / CONFIG_NAME).is_file():
        if _is_vjepa2_folder(path):
            model = load_vjepa2(path, **overrides)
        else:
            model = load_pretrained(path)
        return model.state_dict(), model
    if path.is_dir():
        from mambajepa.core.checkpoint import load_checkpoint_weights

        return load_checkpoint_weights(path), None
    if path.is_file() and path.suffix in (".pt", ".pth"):
        model = load_vjepa2(path, which=args.which, **overrides)
        return model.state_dict(), model
    if path.is_file():
        return load_state_dict(path), None
    if os.sep in source or "/" in source or path.suffix:
        raise CheckpointError(f"export source {source} does not exist")
    from mambajepa.registry import create_model

    model = create_model(source)
    return model.state_dict(), model if isinstance(model, PretrainedMixin) else None


def _is_vjepa2_folder(path: Path) -> bool:
    config = read_json(path / CONFIG_NAME)
    return isinstance(config, dict) and config.get("model_type") == "vjepa2"


def run(args: argparse.Namespace) -> int:
    """Export ``args.source`` to ``args.out``; returns 0 on success, 1 with a message on a typed error."""
    try:
        state, model = _resolve(args)
        if args.prefix:
            state = {k[len(args.prefix) :]: v for k, v in state.items() if k.startswith(args.prefix)}
            if not state:
                raise MambaJepaError(f"no entry of {args.source} starts with prefix {args.prefix!r}")
            model = None
        out = Path(args.out)
        if args.format == "cpp":
            written = export_cpp(state, out)
        elif out.suffix == ".safetensors":
            written = export_safetensors(state, out)
        elif model is not None:
            written = model.save_pretrained(out)
        else:
            written = export_safetensors(state, out / "model.safetensors")
    except MambaJepaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    n_params = sum(t.numel() for t in state.values())
    print(f"exported {len(state)} tensors ({n_params:,} values) as {args.format} to {written}")
    return 0
