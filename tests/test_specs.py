"""Encoder sections: any field of the preset's own config, from YAML and the command line, checked."""

from __future__ import annotations

import pytest

from mambajepa.config import config_to_dict, load_config, resolve_recipe, save_config
from mambajepa.core.errors import ConfigError
from mambajepa.specs import EncoderSpec


def test_videomamba_fields_are_settable_from_the_command_line():
    cfg = load_config(resolve_recipe("vjepa_shapes"), ["--encoder.bimamba=false", "--encoder.depth=1"])
    assert cfg.encoder.kwargs["bimamba"] is False
    model = cfg.encoder.build()
    assert model.config.bimamba is False and model.config.depth == 1
    assert model.config.kernel_size == 2  # the recipe's ViT-style alias tubelet_size
    assert config_to_dict(cfg)["encoder"]["bimamba"] is False  # written back flat


def test_vit_fields_beyond_the_old_fixed_list_are_settable():
    cfg = load_config(resolve_recipe("ijepa_shapes"), ["--encoder.qkv_bias=false", "--encoder.act=silu"])
    model = cfg.encoder.build(depth=1)
    assert (
        model.config.qkv_bias is False and model.config.act == "silu" and model.config.pos_embed == "sincos"
    )


def test_unknown_fields_name_the_closest_one():
    with pytest.raises(
        ConfigError, match="encoder.bimamb: unknown config key of model 'videomamba_tiny_cpu'"
    ):
        load_config(resolve_recipe("vjepa_shapes"), ["--encoder.bimamb=false"])
    with pytest.raises(ConfigError, match="did you mean 'encoder.bimamba'"):
        load_config(resolve_recipe("vjepa_shapes"), ["--encoder.bimamb=false"])
    with pytest.raises(ConfigError, match="did you mean 'encoder.num_heads'"):
        load_config(resolve_recipe("ijepa_shapes"), ["--encoder.num_head=2"])
    with pytest.raises(ConfigError, match="encoder.name: unknown model 'vit_tiny'"):
        load_config(resolve_recipe("ijepa_shapes"), ["--encoder=vit_tiny"])


def test_wrong_types_name_the_path():
    with pytest.raises(ConfigError, match="encoder.bimamba: expected bool"):
        load_config(resolve_recipe("vjepa_shapes"), ["--encoder.bimamba=sometimes"])
    with pytest.raises(ConfigError, match="encoder.pos_embed: expected one of"):
        load_config(resolve_recipe("ijepa_shapes"), ["--encoder.pos_embed=alibi"])
    with pytest.raises(ConfigError, match="encoder.kernel_size: sets 'kernel_size'"):
        load_config(resolve_recipe("vjepa_shapes"), ["--encoder.kernel_size=2"])  # tubelet_size is set


def test_a_saved_config_reloads_equal(tmp_path):
    cfg = load_config(resolve_recipe("vjepa_shapes"), ["--encoder.bimamba=false"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    spec = EncoderSpec("vit_tiny_patch4", {"depth": "two"})
    with pytest.raises(ConfigError, match="depth: expected int"):
        spec.validate()
