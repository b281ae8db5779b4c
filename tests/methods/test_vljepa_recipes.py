"""The ``vljepa_small`` recipe: as written it is the ``small`` preset; shrunk, it trains both stages
(WebDataset shards, then VQAv2 JSON) from a V-JEPA 2 folder through the real trainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mambajepa.config import load_config, resolve_recipe
from mambajepa.core.files import atomic_write_json, save_state_dict
from mambajepa.data.export import COCO_IMAGE_TEMPLATE, export_shapesworld
from mambajepa.data.image_text import WebDatasetShards
from mambajepa.data.tokenizers import ByteTokenizer
from mambajepa.data.vqa import VQADataset
from mambajepa.encoders.vit import VisionTransformer, ViTConfig
from mambajepa.methods.vljepa.method import VLJEPA, load_x_encoder, model_config
from mambajepa.methods.vljepa.model import Mamba3Jepa, Mamba3JepaConfig
from mambajepa.train.stages import resolve_stages
from mambajepa.train.trainer import run_training

# a 1-block ViT on 16 px images (2x2 patches of 8 px) and 1-layer Mamba-3 parts of width 32
VIT = dict(img_size=16, patch_size=8, embed_dim=24, depth=1, num_heads=2)
SHRINK = [f"--x_encoder.{k}={v}" for k, v in VIT.items()] + [
    *(f"--{part}.{k}={v}" for part in ("predictor", "y_encoder", "y_decoder")
      for k, v in dict(d_model=32, n_layers=1, d_state=8, headdim=16, embed_dim=16).items()),
    "--y_decoder.prefix_len=2",
    "--tokenizer.vocab_size=300",
    "--tokenizer.corpus_items=24",
    "--data.image_size=16",
    "--data.shuffle_buffer=4",
    "--stages.1.data.image_size=16",
    *(f"--stages.{i}.{k}={v}" for i in (0, 1) for k, v in dict(steps=2, batch_size=4, warmup=0).items()),
    "--train.batch_size=4",
    "--train.num_workers=0",
    "--train.log_every=1",
    "--train.checkpoint_every=0",
    "--train.progress=false",
    "--train.plots=false",
]  # fmt: skip


def write_vjepa2_folder(folder: Path, vit: VisionTransformer) -> None:
    """A Hugging Face ``VJEPA2Model`` folder holding ``vit``'s weights under the HF names."""
    state = {}
    for key, value in vit.state_dict().items():
        name = (
            key.replace("patch_embed.", "encoder.embeddings.patch_embeddings.")
            .replace("blocks.", "encoder.layer.")
            .replace(".attn.", ".attention.")
        )
        name = "encoder.layernorm." + name[len("norm.") :] if name.startswith("norm.") else name
        if ".attention.qkv." in name:
            for part, chunk in zip(("query", "key", "value"), value.chunk(3)):
                state[name.replace(".qkv.", f".{part}.")] = chunk.clone()
        else:
            state[name] = value
    state["predictor.embeddings.mask_tokens"] = torch.zeros(1, 1, 4)  # set aside by the mapping
    folder.mkdir(parents=True)
    save_state_dict(state, folder / "model.safetensors")
    c = vit.config
    atomic_write_json(
        folder / "config.json",
        {
            "model_type": "vjepa2",
            "hidden_size": c.embed_dim,
            "num_hidden_layers": c.depth,
            "num_attention_heads": c.num_heads,
            "crop_size": c.img_size,
            "patch_size": c.patch_size,
            "frames_per_clip": c.num_frames,
            "tubelet_size": c.tubelet_size,
            "mlp_ratio": c.mlp_ratio,
        },
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Stage 1 shards, stage 2 VQAv2 files (ShapesWorld exports, 24 scenes) and a V-JEPA 2 folder."""
    root = tmp_path_factory.mktemp("vl")
    export_shapesworld(root / "shards", "webdataset", num_items=24, size=16, shard_size=12)
    export_shapesworld(root / "vqa", "coco", num_items=12, size=16, questions_per_image=2)
    torch.manual_seed(0)
    vit = VisionTransformer(ViTConfig(**VIT, num_frames=64))  # the preset's clip length, as in V-JEPA 2
    write_vjepa2_folder(root / "vjepa2", vit)
    return {"root": root, "vit": vit}


def _overrides(files: dict) -> list[str]:
    root = files["root"]
    return SHRINK + [
        f"--x_encoder_weights={root / 'vjepa2'}",
        f"--data.root={root / 'shards'}",
        f"--stages.1.data.root={root / 'vqa'}",
        "--stages.1.data.questions=annotations/questions_train.json",
        "--stages.1.data.annotations=annotations/answers_train.json",
        "--stages.1.data.images=images",
        f"--stages.1.data.image_template={COCO_IMAGE_TEMPLATE}",
    ]


def test_small_recipe_as_written_is_the_small_preset():
    cfg = load_config(resolve_recipe("vljepa_small"))
    assert cfg.method == "vljepa" and cfg.name == "vljepa_small"
    assert model_config(cfg, cfg.tokenizer.vocab_size) == Mamba3JepaConfig.small()
    assert cfg.tokenizer.vocab_size == 32000
    assert cfg.x_encoder.name == "vit_l16_vjepa2" and cfg.x_encoder.kwargs == {"img_size": 224}
    assert cfg.y_encoder_lr_mult == 0.05 and cfg.caption_query == "empty"
    assert cfg.train.betas == (0.9, 0.95) and cfg.train.lr_schedule == "cosine"
    got = [(s.name, s.length, s.batch_size, s.lr, s.warmup, s.weight_decay) for s in resolve_stages(cfg)]
    assert got == [("captioning", 50_000, 2048, 1e-4, 2000, 0.05), ("sft", 30_000, 512, 5e-5, 2000, 0.05)]
    stage1, stage2 = cfg.stage_config(0).data, cfg.stage_config(1).data
    assert (stage1.name, stage2.name) == ("webdataset", "vqa")
    assert stage1.arguments()["image_size"] == stage2.arguments()["image_size"] == 224
    placeholders = [cfg.x_encoder_weights, stage1.kwargs["root"], stage2.kwargs["root"]]
    assert not any(Path(p).is_absolute() for p in placeholders)  # the user sets them


def test_small_preset_parameter_count_on_the_meta_device():
    with torch.device("meta"):
        model = Mamba3Jepa(Mamba3JepaConfig.small(), ByteTokenizer())
    frozen = sum(p.numel() for p in model.x_encoder.parameters())
    assert round(frozen / 1e6, 1) == 303.9  # V-JEPA 2 ViT-L/16
    assert round(model.num_trainable_parameters() / 1e6, 1) == 188.6  # predictor + Y-encoder + Y-decoder


def test_shrunk_small_recipe_reads_each_stage_in_its_own_format(files):
    cfg = load_config(resolve_recipe("vljepa_small"), _overrides(files))
    method = VLJEPA.from_config(cfg)
    assert isinstance(method.build_data(cfg.stage_config(0)).train, WebDatasetShards)
    sft = method.build_data(cfg.stage_config(1)).train
    assert isinstance(sft, VQADataset) and len(sft) == 24 and sft[0]["image"].shape == (3, 16, 16)
    loaded = load_x_encoder(cfg.x_encoder, cfg.x_encoder_weights)
    for key, value in files["vit"].state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_shrunk_small_recipe_trains_two_steps_of_each_stage(files, tmp_path):
    cfg = load_config(resolve_recipe("vljepa_small"), _overrides(files))
    summary = run_training(cfg, tmp_path / "run")
    assert summary["step"] == 4 and summary["stage"] == "sft" and np.isfinite(summary["loss"])
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if "stage" in r and "loss" in r]
    assert [(r["stage"], r["step_in_stage"]) for r in records] == [
        ("captioning", 1), ("captioning", 2), ("sft", 1), ("sft", 2)
    ]  # fmt: skip
    assert all(np.isfinite(r["loss"]) for r in records)
