"""Neural-field set encoder: Fourier features, Mamba vs Transformer blocks, interleaved latents."""

import math

import pytest
import torch

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.encoders.field import NeuralFieldConfig, NeuralFieldEncoder, fourier_features
from mambajepa.registry import load_pretrained

SMALL = dict(d_model=32, depth=2, num_heads=4)


def make(seed=0, **overrides):
    torch.manual_seed(seed)
    return NeuralFieldEncoder(NeuralFieldConfig(**{**SMALL, **overrides})).eval()


def observations(B=2, N=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, N, 2, generator=g) * 2 - 1, torch.rand(B, N, 3, generator=g)


def test_fourier_features_formula():
    coords = torch.tensor([[0.25, -0.5]])
    feats = fourier_features(coords, num_freqs=32)
    assert feats.shape == (1, 2 + 2 * 2 * 32)
    k, axis = 3, 1  # sin block: axis-major, frequency-minor
    assert math.isclose(feats[0, 2 + axis * 32 + k].item(), math.sin(2**k * math.pi * -0.5), abs_tol=1e-6)
    assert math.isclose(feats[0, 2 + 64 + k].item(), math.cos(2**k * math.pi * 0.25), abs_tol=1e-6)
    torch.testing.assert_close(feats[0, :2], coords[0])


def test_mamba_encoder_scans_in_order():
    model = make()
    coords, values = observations()
    out = model(coords, values)
    assert out.tokens.shape == (2, 12, 32) and out.latents is None
    torch.testing.assert_close(out.z_global, out.tokens.mean(1))
    # causal scan: the first 5 tokens do not depend on later observations ...
    values2 = values.clone()
    values2[:, 5:] += 1.0
    changed = model(coords, values2)
    torch.testing.assert_close(changed.tokens[:, :5], out.tokens[:, :5])
    # ... and do depend on earlier ones
    values3 = values.clone()
    values3[:, 0] += 1.0
    assert (model(coords, values3).tokens[:, 4] - out.tokens[:, 4]).abs().max() > 1e-4


def test_transformer_encoder_is_permutation_equivariant():
    model = make(use_mamba=False)
    assert not any("mixer" in n for n, _ in model.named_parameters())
    coords, values = observations()
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    out = model(coords, values)
    shuffled = model(coords[:, perm], values[:, perm])
    torch.testing.assert_close(shuffled.tokens, out.tokens[:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shuffled.z_global, out.z_global, atol=1e-5, rtol=1e-5)
    # a Mamba scan is not: the order of observations matters
    mamba = make()
    assert (
        mamba(coords[:, perm], values[:, perm]).z_global - mamba(coords, values).z_global
    ).abs().max() > 1e-4


def test_interleaved_latents_summarise_what_precedes_them():
    model = make(num_latents=3)
    assert model.latent_slots(12).tolist() == [4, 9, 14]  # after observations 3, 7, 11
    coords, values = observations()
    out = model(coords, values)
    assert out.latents.shape == (2, 3, 32) and out.tokens.shape == (2, 12, 32)
    torch.testing.assert_close(out.z_global, out.latents.mean(1))
    values2 = values.clone()
    values2[:, 8:] += 1.0  # observations after the second latent
    changed = model(coords, values2)
    torch.testing.assert_close(changed.latents[:, :2], out.latents[:, :2])
    assert (changed.latents[:, 2] - out.latents[:, 2]).abs().max() > 1e-4
    # latents are learned: they receive gradients and are excluded from weight decay
    model(coords, values).z_global.square().sum().backward()  # a plain sum is flat through the LayerNorm
    assert model.latent_tokens.grad.abs().sum() > 0 and model.latent_tokens._no_weight_decay
    # more latents than observations: o0 L0 o1 L1 L2 o2 L3 L4
    assert make(num_latents=5).latent_slots(3).tolist() == [1, 3, 4, 6, 7]


def test_input_checks():
    model = make()
    coords, values = observations()
    with pytest.raises(ShapeError, match="values"):
        model(coords, values[:, :5])
    with pytest.raises(ShapeError, match="coords"):
        model(coords[..., :1], values)
    with pytest.raises(ConfigError, match="num_heads"):
        NeuralFieldConfig(d_model=30, num_heads=4, use_mamba=False)


@pytest.mark.parametrize("overrides", [{}, {"use_mamba": False}, {"num_latents": 2}])
def test_save_and_load_pretrained_round_trip(tmp_path, overrides):
    model = make(**overrides)
    model.save_pretrained(tmp_path)
    coords, values = observations()
    for loaded in (NeuralFieldEncoder.from_pretrained(tmp_path), load_pretrained(tmp_path)):
        assert loaded.config == model.config
        torch.testing.assert_close(
            loaded(coords, values).z_global, model(coords, values).z_global, rtol=0, atol=0
        )
