"""The registry: datasets, evaluations, "did you mean" hints, and outside code through entry points."""

from __future__ import annotations

import sys
import textwrap

import pytest

from mambajepa import registry
from mambajepa.config import load_config
from mambajepa.core.errors import ConfigError
from mambajepa.registry import (
    EntryPointError,
    build_dataset,
    create_model,
    get_method,
    list_datasets,
    list_evaluations,
    load_all,
    register_dataset,
    register_evaluation,
)
from mambajepa.specs import DatasetSpec

_TABLES = (
    "_MODELS",
    "_MODEL_CONFIGS",
    "_MODEL_ALIASES",
    "_METHODS",
    "_DATASETS",
    "_EVALUATIONS",
    "_EVALUATION_SCOPES",
)


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry that rescans on the next lookup; every registration of the test is undone after it."""
    load_all()
    saved = {name: dict(getattr(registry, name)) for name in _TABLES}
    modules = set(sys.modules)
    monkeypatch.setattr(registry, "_loaded", False)
    yield
    for name, table in saved.items():
        getattr(registry, name).clear()
        getattr(registry, name).update(table)
    for name in set(sys.modules) - modules:
        if name.startswith("outside_"):
            del sys.modules[name]


def install_distribution(root, module: str, source: str, entry_points: str) -> None:
    """Write a module and an installed-distribution record (``*.dist-info``) of it under ``root``."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


# ----------------------------------------------------------------------------------------------
# datasets


def test_builtin_datasets_are_registered_and_built_by_split():
    assert {"shapes_images", "shapes_videos", "cifar10", "video_folder", "random_function"} <= set(
        list_datasets()
    )
    val = build_dataset("shapes_images", split="val", image_size=16, n_val=3)
    assert len(val) == 3 and val[0]["image"].shape == (3, 16, 16)
    clips = build_dataset("shapes_videos", split="test", image_size=16, num_frames=4, n_test=2)
    assert clips[1]["video"].shape == (3, 4, 16, 16)
    assert build_dataset("shapes_images", split="val", n_val=0) is None  # no held-out split
    train = build_dataset("shapes_images", split="train", image_size=16, n_train=5)
    assert train[0]["index"] != val[0]["index"]  # disjoint splits


def test_dataset_errors_name_the_dataset_and_the_closest_argument():
    with pytest.raises(ConfigError, match="did you mean 'shapes_images'"):
        build_dataset("shapes_imgs")
    with pytest.raises(ConfigError, match="did you mean 'image_size'"):
        build_dataset("shapes_images", image_sise=16)
    with pytest.raises(ConfigError, match="'cifar10' needs root"):
        build_dataset("cifar10", split="test")
    with pytest.raises(ConfigError, match="split='tset'"):
        build_dataset("shapes_images", split="tset")


def test_dataset_sections_check_types_and_fill_defaults():
    spec = DatasetSpec.from_mapping({"name": "shapes_videos", "image_size": 16}, "data")
    assert spec.arguments()["num_frames"] == 8 and spec.arguments()["image_size"] == 16
    assert spec.to_mapping() == {"name": "shapes_videos", "image_size": 16}
    with pytest.raises(ConfigError, match="data.image_size: expected int"):
        DatasetSpec.from_mapping({"name": "shapes_images", "image_size": "big"}, "data")
    with pytest.raises(ConfigError, match="data.root: dataset 'video_folder' needs root"):
        DatasetSpec.from_mapping({"name": "video_folder"}, "data")
    with pytest.raises(ConfigError, match="data.name: expected the name of a registered dataset"):
        DatasetSpec.from_mapping({"image_size": 16}, "data")


def test_a_name_is_registered_once(fresh_registry):
    @register_dataset("twice")
    def first(split):
        return [split]

    register_dataset("twice")(first)  # the same factory again is fine
    with pytest.raises(ValueError, match="registered twice"):
        register_dataset("twice")(lambda split: [])


# ----------------------------------------------------------------------------------------------
# methods, models and evaluations


def test_lookups_suggest_the_closest_name():
    with pytest.raises(ConfigError, match="did you mean 'jepa'"):
        get_method("jepaa")
    with pytest.raises(ConfigError, match="did you mean 'vit_tiny_patch4'"):
        create_model("vit_tiny_patch")
    with pytest.raises(ConfigError, match="did you mean 'probe'"):
        registry.get_evaluation("prob")


def test_evaluations_say_which_methods_offer_them(fresh_registry):
    assert "probe" in list_evaluations("jepa") and list_evaluations("mlp_regression") == []
    assert get_method("jepa").evaluations() == list_evaluations("jepa")

    @register_evaluation("tiny_only", applies_to=["mlp_regression"])
    class TinyOnly:
        help = "a test evaluation"

        def configure(self, parser):
            pass

        def run(self, args):
            return 0

    assert list_evaluations("mlp_regression") == ["tiny_only"] and "tiny_only" not in list_evaluations("jepa")
    with pytest.raises(TypeError, match="no run"):
        register_evaluation("broken")(type("Broken", (), {"configure": lambda self, p: None}))


# ----------------------------------------------------------------------------------------------
# outside code through entry points

OUTSIDE = """
    from dataclasses import dataclass, field

    import torch
    import torch.nn.functional as F
    from torch import nn

    from mambajepa.config import RunConfig
    from mambajepa.methods.base import DataSpec, Method, TrainOutput
    from mambajepa.specs import DatasetSpec


    def outside_data(split: str = "train", *, n: int = 32, dim: int = 4, seed: int = 0):
        g = torch.Generator().manual_seed(seed + (split == "train"))
        x = torch.randn(n, dim, generator=g)
        return [{"x": x[i], "y": x[i].sum(-1, keepdim=True)} for i in range(n)]


    @dataclass
    class OutsideConfig(RunConfig):
        method: str = "outside_method"
        data: DatasetSpec = field(default_factory=lambda: DatasetSpec("outside_data"))


    class OutsideMethod(Method):
        config_cls = OutsideConfig

        def __init__(self, dim):
            super().__init__()
            self.linear = nn.Linear(dim, 1)

        @classmethod
        def from_config(cls, config):
            return cls(config.data.arguments()["dim"])

        def build_data(self, config):
            return DataSpec(train=config.data.build("train"), val=config.data.build("val"))

        def training_step(self, batch, step):
            return TrainOutput(loss=F.mse_loss(self.linear(batch["x"]), batch["y"]))
"""

OUTSIDE_ENTRY_POINTS = """
    [mambajepa.methods]
    outside_method = outside_plugin:OutsideMethod

    [mambajepa.datasets]
    outside_data = outside_plugin:outside_data
"""


def test_outside_method_and_dataset_register_through_entry_points_and_train(
    tmp_path, monkeypatch, fresh_registry
):
    from mambajepa.eval.runs import load_run
    from mambajepa.train.trainer import run_training

    install_distribution(tmp_path, "outside_plugin", OUTSIDE, OUTSIDE_ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))

    method_cls = get_method("outside_method")
    assert method_cls.__module__ == "outside_plugin" and method_cls.name == "outside_method"
    assert len(build_dataset("outside_data", split="val", n=5)) == 5
    assert list_evaluations(method_cls) == []  # no encode(): no probe

    cfg = load_config(
        {
            "method": "outside_method",
            "name": "outside",
            "data": {"name": "outside_data", "n": 16, "dim": 3},
            "train": {
                "max_steps": 2,
                "batch_size": 4,
                "warmup_steps": 0,
                "eval_every": 0,
                "checkpoint_every": 0,
                "progress": False,
                "plots": False,
            },
        }
    )
    summary = run_training(cfg, tmp_path / "run")
    assert summary["step"] == 2
    run = load_run(tmp_path / "run")
    assert type(run.method) is method_cls and run.method.linear.in_features == 3


def test_an_entry_point_that_fails_to_load_is_named(tmp_path, monkeypatch, fresh_registry):
    entry_points = """
        [mambajepa.datasets]
        outside_broken = outside_missing_module:factory
    """
    install_distribution(tmp_path, "outside_broken", "", entry_points)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EntryPointError, match="'outside_broken' = 'outside_missing_module:factory'"):
        load_all()
    assert not registry._loaded  # the next lookup tries again (and fails again)
    with pytest.raises(EntryPointError, match="outside_broken"):
        list_datasets()
