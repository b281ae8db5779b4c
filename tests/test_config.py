"""Typed configs: YAML loading, overrides, aliases, error messages, validation, save/reload."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import pytest

from mambajepa.config import (
    RunConfig,
    TrainConfig,
    config_from_dict,
    config_hash,
    config_to_dict,
    load_config,
    parse_overrides,
    resolve_recipe,
    save_config,
)
from mambajepa.core.errors import ConfigError
from mambajepa.methods.regression import RegressionConfig

TINY = {"method": "mlp_regression", "train": {"max_steps": 5, "batch_size": 8}}


@dataclass
class _Mixer:
    width: int = 64  # model width
    heads: int = 4  # attention heads
    headdim: int = 16  # per-head width

    def validate(self) -> None:
        if self.heads * self.headdim != self.width:
            raise ConfigError(f"heads * headdim = {self.heads * self.headdim} != width {self.width}")


@dataclass
class _Data:
    obs_frac: float = 0.25  # observed fraction
    sizes: list[int] = field(default_factory=lambda: [1, 2])  # a list
    crop: tuple[int, int] | None = None  # optional pair
    mode: Literal["pool", "token"] = "pool"  # a choice
    extra: dict[str, float] = field(default_factory=dict)  # a mapping


@dataclass
class _Cfg(RunConfig):
    ALIASES: ClassVar[dict[str, str]] = {"obs_frac": "data.obs_frac"}
    model: _Mixer = field(default_factory=_Mixer)
    data: _Data = field(default_factory=_Data)


def test_recipe_loads_with_types():
    cfg = load_config(resolve_recipe("debug_tiny"))
    assert isinstance(cfg, RegressionConfig)
    assert cfg.method == "mlp_regression" and isinstance(cfg.train, TrainConfig)
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == pytest.approx(3e-3)
    assert isinstance(cfg.train.betas, tuple)


def test_overrides_both_forms_aliases_and_scalar_parsing():
    cfg = load_config(
        TINY,
        [
            "--train.lr=3e-4",
            "--model.hidden",
            "64",
            "--noise",
            "0.1",
            "--train.grad_clip=null",
            "--model.norm",
            "false",
        ],
    )
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)  # "3e-4" is a YAML string
    assert cfg.model.hidden == 64
    assert cfg.data.noise == pytest.approx(0.1)  # alias noise -> data.noise
    assert cfg.train.grad_clip is None
    assert cfg.model.norm is False
    cfg = load_config(TINY, ["--train.lr", "1", "--train.betas=[0.8, 0.99]"])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # int accepted for a float field
    assert cfg.train.betas == (0.8, 0.99)


def test_overrides_index_into_lists_such_as_stages():
    recipe = resolve_recipe("debug_stages")
    cfg = load_config(recipe, ["--stages.1.lr=2e-3", "--stages.0.steps", "7", "--stages.1.data.noise=0.5"])
    assert cfg.stages[1].lr == pytest.approx(2e-3) and cfg.stages[0].steps == 7
    assert cfg.stages[1].data["noise"] == 0.5 and cfg.stages[0].warmup == 10
    untouched = load_config(recipe)
    assert untouched.stages[1].lr == pytest.approx(1e-3)  # the recipe file's lists are not mutated
    with pytest.raises(ConfigError, match="'stages.2' is not an index of a 2-element list"):
        load_config(recipe, ["--stages.2.lr=1e-3"])
    with pytest.raises(ConfigError, match="'stages.first' is not an index"):
        load_config(recipe, ["--stages.first.lr=1e-3"])
    with pytest.raises(ConfigError, match="'stages.0.steps' is not a section"):
        load_config(recipe, ["--stages.0.steps.x=1"])


def test_parse_overrides():
    assert parse_overrides(["--a.b=1", "--c", "x y", "--flag", "--d.e", "-2"]) == [
        ("a.b", 1),
        ("c", "x y"),
        ("flag", True),
        ("d.e", -2),
    ]
    with pytest.raises(ConfigError, match="'oops'"):
        parse_overrides(["oops"])


@pytest.mark.parametrize(
    ("data", "overrides", "fragments"),
    [
        ({**TINY, "train": {"max_step": 5}}, [], ["'train.max_step'", "'train.max_steps'"]),
        (TINY, ["--modle.hidden=3"], ["'modle.hidden'", "'model.hidden'"]),
        (TINY, ["--model.hiden=3"], ["'model.hiden'", "'model.hidden'"]),
        ({**TINY, "trian": {}}, [], ["'trian'", "'train'"]),
        (TINY, ["--train.learning_rate=1"], ["'train.learning_rate'", "did you mean 'train.lr'?"]),
        (TINY, ["--trian.lr=1"], ["'trian.lr'", "did you mean 'train.lr'?"]),
    ],
)
def test_unknown_keys_name_the_closest_valid_key(data, overrides, fragments):
    with pytest.raises(ConfigError) as err:
        load_config(data, overrides)
    for fragment in fragments:
        assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("--train.max_steps=abc", ["train.max_steps", "int", "'abc'"]),
        ("--train.batch_size=1.5", ["train.batch_size", "int"]),
        ("--model.norm=3", ["model.norm", "bool"]),
        ("--train.lr_schedule=cos", ["train.lr_schedule", "cosine"]),
        ("--train.betas=[0.9]", ["train.betas", "2 items"]),
        ("--train.lr=fast", ["train.lr", "float"]),
        ("--model=3", ["model", "mapping"]),
    ],
)
def test_wrong_types_name_the_field_path(override, fragments):
    with pytest.raises(ConfigError) as err:
        load_config(TINY, [override])
    for fragment in fragments:
        assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "prefix"),
    [
        (["--model.depth=1"], "model.depth"),
        (["--train.lr=0.1", "--train.min_lr=0.5"], "train."),
        (["--train.batch_size=10", "--train.grad_accum=4"], "train.batch_size"),
        (["--data.noise=-1"], "data.noise"),
    ],
)
def test_cross_field_checks_name_the_section(overrides, prefix):
    with pytest.raises(ConfigError) as err:
        load_config(TINY, overrides)
    assert str(err.value).startswith(prefix)


def test_generic_types_and_validate_on_a_custom_config():
    cfg = config_from_dict(_Cfg, {"data": {"sizes": [3], "crop": [8, 8], "mode": "token", "extra": {"a": 1}}})
    assert cfg.data.crop == (8, 8) and cfg.data.sizes == [3] and cfg.data.extra == {"a": 1.0}
    with pytest.raises(ConfigError, match=r"^model\.heads \* headdim = 48 != width 64"):
        config_from_dict(_Cfg, {"model": {"heads": 3}})
    with pytest.raises(ConfigError, match=r"data\.sizes\[1\]: expected int"):
        config_from_dict(_Cfg, {"data": {"sizes": [1, "x"]}})
    with pytest.raises(ConfigError, match=r"data\.mode: expected one of \['pool', 'token'\]"):
        config_from_dict(_Cfg, {"data": {"mode": "mean"}})
    with pytest.raises(ConfigError, match="'data.obs_fra'.*'data.obs_frac'"):
        config_from_dict(_Cfg, {"data": {"obs_fra": 0.1}})


def test_unknown_or_missing_method():
    with pytest.raises(ConfigError, match="mlp_regression"):
        load_config({"method": "mlp_regresion"})
    with pytest.raises(ConfigError, match="method"):
        load_config({"train": {}})


def test_save_reload_is_equal_and_hash_tracks_content(tmp_path):
    cfg = load_config(resolve_recipe("debug_tiny"), ["--train.betas=[0.8, 0.9]", "--model.hidden=40"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert config_to_dict(again) == config_to_dict(cfg)
    assert config_hash(again) == config_hash(cfg)
    changed = load_config(tmp_path / "config.yaml", ["--train.lr=0.001"])
    assert config_hash(changed) != config_hash(cfg)


def test_yaml_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="debug_tiny"):
        resolve_recipe("debug_tinny")
