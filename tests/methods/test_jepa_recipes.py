"""The JEPA recipes load, build, and (shrunk) take training steps on data in their real formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mambajepa.config import load_config, resolve_recipe
from mambajepa.data.cifar10 import write_cifar_python
from mambajepa.data.video import write_video
from mambajepa.methods.jepa import JEPA
from mambajepa.train.trainer import run_training, seed_everything

RECIPES = [
    "ijepa_shapes",
    "ijepa_shapes_pooled",
    "ijepa_shapes_32px",
    "ijepa_shapes_pooled_32px",
    "vjepa_shapes",
    "ijepa_cifar10",
    "vjepa_video",
]

# shrink any recipe to a one-block model and a few steps
SHRINK = [
    "--encoder.embed_dim=32",
    "--encoder.depth=1",
    "--predictor.embed_dim=16",
    "--predictor.depth=1",
    "--train.max_steps=2",
    "--train.batch_size=4",
    "--train.warmup_steps=0",
    "--train.eval_every=0",
    "--train.checkpoint_every=0",
    "--train.num_workers=0",
    "--train.progress=false",
    "--train.plots=false",
]


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_loads_and_names_a_registered_backbone(recipe):
    cfg = load_config(resolve_recipe(recipe))
    assert cfg.method == "jepa" and cfg.name == recipe
    if cfg.data.name.startswith("shapes"):
        seed_everything(0)
        method = JEPA.from_config(cfg)
        assert method.predictor.num_mask_tokens == cfg.mask.num_generators
        assert len(method.mask_strategies()) == cfg.mask.num_generators


@pytest.mark.parametrize("recipe", ["ijepa_shapes", "ijepa_shapes_32px"])
def test_recipes_named_after_i_jepa_run_the_papers_method(recipe):
    cfg = load_config(resolve_recipe(recipe))
    assert cfg.predictor.context_pool == "none"  # the predictor reads every context token
    assert cfg.loss.regularizer == "none" and cfg.loss.energy == "l2" and cfg.mask.kind == "multiblock2d"
    for name in ("ijepa_shapes_pooled", "ijepa_shapes_pooled_32px"):  # the variants say so in their names
        variant = load_config(resolve_recipe(name))
        assert variant.predictor.context_pool == "mean" and variant.loss.regularizer == "barlow_twins"


@pytest.mark.parametrize("recipe", ["ijepa_shapes_32px", "ijepa_shapes_pooled_32px"])
def test_the_32px_recipes_build_the_x_encoder_of_the_vl_recipe(recipe):
    x_encoder = load_config(resolve_recipe(recipe)).encoder
    vl = load_config(resolve_recipe("vljepa_shapes"))
    assert vl.x_encoder == x_encoder
    assert vl.data.arguments()["image_size"] == x_encoder.kwargs["img_size"]


def test_video_recipe_on_videomamba_trains_two_steps(tmp_path):
    cfg = load_config(resolve_recipe("vjepa_shapes"), SHRINK + ["--data.n_train=8", "--data.n_val=0"])
    summary = run_training(cfg, tmp_path / "run")
    assert summary["step"] == 2 and np.isfinite(summary["loss"])


def test_cifar10_recipe_reads_the_python_archive_layout(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 20)
    write_cifar_python(tmp_path / "cifar", (images, labels), (images[:10], labels[:10]))
    cfg = load_config(
        resolve_recipe("ijepa_cifar10"),
        SHRINK + [f"--data.root={tmp_path / 'cifar'}", "--encoder.num_heads=2", "--predictor.num_heads=2"],
    )
    summary = run_training(cfg, tmp_path / "run")
    assert summary["step"] == 2 and np.isfinite(summary["loss"])


def test_video_file_recipe_reads_encoded_videos(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(3):
        clip = torch.rand(3, 12, 32, 32, generator=torch.Generator().manual_seed(i))
        write_video(folder / f"clip{i}.mp4", clip)
    overrides = [
        f"--data.root={folder}",
        "--data.image_size=32",
        "--data.num_frames=4",
        "--data.frame_stride=2",
        "--encoder.img_size=32",
        "--encoder.num_frames=4",
        "--encoder.num_heads=2",
        "--encoder.patch_size=8",
        "--mask.min_keep=1",
        "--predictor.num_heads=2",
        "--train.batch_size=3",
    ]
    cfg = load_config(resolve_recipe("vjepa_video"), SHRINK + overrides)
    summary = run_training(cfg, tmp_path / "run")
    assert summary["step"] == 2 and np.isfinite(summary["loss"])


@pytest.mark.parametrize("dataset", ["shapes_images", "shapes_videos"])
def test_shapesworld_normalize_applies_the_imagenet_statistics(dataset):
    from mambajepa.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from mambajepa.registry import build_dataset

    key = "video" if dataset == "shapes_videos" else "image"
    frames = {"num_frames": 2} if dataset == "shapes_videos" else {}
    raw = build_dataset(dataset, split="test", image_size=16, n_test=3, **frames)[2][key]
    item = build_dataset(dataset, split="test", image_size=16, n_test=3, normalize=True, **frames)[2]
    view = (3,) + (1,) * (raw.dim() - 1)
    mean, std = torch.tensor(IMAGENET_MEAN).view(view), torch.tensor(IMAGENET_STD).view(view)
    torch.testing.assert_close(item[key], (raw - mean) / std)
    assert item["shape"] == build_dataset(dataset, split="test", image_size=16, n_test=3)[2]["shape"]
