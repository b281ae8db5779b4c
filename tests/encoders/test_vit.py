"""ViT: strict masked encoding, image/video equivalence, positions, checkpointing, presets, pretrained I/O."""

import json
import math

import pytest
import torch

from mambajepa.core.errors import CheckpointError, ConfigError, ShapeError
from mambajepa.encoders.vit import VisionTransformer, ViTConfig, vit_preset
from mambajepa.registry import create_model, load_pretrained

TINY = dict(img_size=16, num_frames=4, patch_size=4, tubelet_size=2, embed_dim=48, depth=2, num_heads=4)


def tiny(**overrides):
    torch.manual_seed(0)
    return VisionTransformer(ViTConfig(**{**TINY, **overrides})).eval()


def hide(x, keep, grid, value):
    """Set every pixel of the tubelets not in ``keep`` (per sample) to ``value``."""
    x = x.clone()
    gt, gh, gw = grid
    for b in range(x.shape[0]):
        kept = set(keep[b].tolist())
        for token in range(gt * gh * gw):
            if token not in kept:
                t, r, c = token // (gh * gw), (token // gw) % gh, token % gw
                x[b, :, 2 * t : 2 * t + 2, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = value
    return x


@pytest.mark.parametrize("pos_embed", ["rope", "sincos", "learned"])
def test_hidden_pixels_never_reach_the_output(pos_embed):
    model = tiny(pos_embed=pos_embed)
    x = torch.randn(2, 3, 4, 16, 16)
    grid = model.grid_size(x.shape)
    keep = torch.stack([torch.randperm(32)[:10], torch.randperm(32)[:10]])
    low, high = hide(x, keep, grid, 0.0), hide(x, keep, grid, 1000.0)
    assert torch.equal(model(low, keep), model(high, keep))
    # Control: encoding everything then selecting the kept tokens does leak the hidden pixels.
    full_low = model(low).gather(1, keep[..., None].expand(-1, -1, 48))
    full_high = model(high).gather(1, keep[..., None].expand(-1, -1, 48))
    assert (full_low - full_high).abs().max() > 1e-3


def test_keeping_every_token_equals_the_full_pass_and_order_is_equivariant():
    model = tiny()
    x = torch.randn(2, 3, 4, 16, 16)
    everything = torch.arange(32).expand(2, 32)
    torch.testing.assert_close(model(x, everything), model(x), rtol=1e-5, atol=1e-5)
    perm = torch.stack([torch.randperm(32), torch.randperm(32)])
    expected = model(x).gather(1, perm[..., None].expand(-1, -1, 48))
    torch.testing.assert_close(model(x, perm), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pos_embed", ["rope", "sincos", "none"])
def test_kept_tokens_keep_their_coordinates(pos_embed):
    """Same pixels, different grid ids: features change exactly when the model sees positions."""
    model = tiny(pos_embed=pos_embed)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight.mul_(20.0)  # sharp attention, so positions matter visibly
    x = torch.randn(1, 3, 4, 16, 16)
    moved = x.clone()
    moved[..., 4:8, 8:12] = x[..., 4:8, 4:8]  # tubelet 5 (row 1, col 1) copied to tubelet 6 (col 2)
    a, b = model(x, torch.tensor([[0, 5]])), model(moved, torch.tensor([[0, 6]]))
    if pos_embed == "none":
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    else:
        assert (a - b).abs().max() > 1e-2


def test_image_is_a_repeated_one_frame_clip():
    model = tiny()
    img = torch.randn(2, 3, 16, 16)
    clip = img[:, :, None].repeat(1, 1, 2, 1, 1)
    assert model.grid_size(img.shape) == (1, 4, 4)
    torch.testing.assert_close(model(img), model(clip))
    torch.testing.assert_close(model(img[:, :, None]), model(clip))
    keep = torch.tensor([[3, 1], [0, 15]])
    torch.testing.assert_close(model(img, keep), model(clip, keep))


def test_grid_helpers_and_shape_errors():
    model = tiny()
    assert model.grid_size((1, 3, 8, 16, 12)) == (4, 4, 3)
    assert model.num_tokens((1, 3, 8, 16, 12)) == 48
    coords = model.token_coords(torch.tensor([[0, 47, 13]]), (4, 4, 3))
    assert coords.tolist() == [[[0, 0, 0], [3, 3, 2], [1, 0, 1]]]
    with pytest.raises(ShapeError, match="tubelets"):
        model(torch.randn(1, 3, 3, 16, 16))
    with pytest.raises(ShapeError, match="image"):
        model(torch.randn(3, 16, 16))
    with pytest.raises(ShapeError, match=r"\[0, 32\)"):
        model(torch.randn(1, 3, 4, 16, 16), torch.tensor([[0, 32]]))
    with pytest.raises(ShapeError, match="keep_indices"):
        model(torch.randn(2, 3, 4, 16, 16), torch.tensor([[0, 1]]))
    with pytest.raises(ShapeError, match="learned"):
        tiny(pos_embed="learned")(torch.randn(1, 3, 4, 16, 20))
    assert tiny(pos_embed="learned")(torch.randn(1, 3, 2, 8, 12)).shape == (1, 6, 48)
    assert tiny(pos_embed="learned").pos_embed._no_weight_decay


def test_gradient_checkpointing_gives_the_same_values_and_gradients():
    x = torch.randn(2, 3, 4, 16, 16)
    keep = torch.tensor([[0, 3, 9, 31], [2, 4, 8, 16]])
    results = []
    for flag in (False, True):
        model = tiny(grad_checkpointing=flag, drop_path_rate=0.0).train()
        out = model(x, keep)
        out.square().mean().backward()
        results.append((out.detach(), {n: p.grad for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[0][0], results[1][0])
    for name, grad in results[0][1].items():
        torch.testing.assert_close(grad, results[1][1][name], rtol=1e-5, atol=1e-6)


def test_drop_path_is_active_in_training_only():
    model = tiny(drop_path_rate=0.5)
    x = torch.randn(8, 3, 4, 16, 16)
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert (a - model(x)).abs().max() > 1e-3


@pytest.mark.parametrize("std", [0.02, 0.05])
def test_init_std_sets_the_weight_scale_and_residual_projections_shrink_with_depth(std):
    model = tiny(init_std=std, embed_dim=96, depth=3, num_heads=4)
    qkv = torch.cat([b.attn.qkv.weight.flatten() for b in model.blocks])
    assert abs(qkv.std().item() - std) < 0.05 * std
    assert model.blocks[0].attn.qkv.bias.abs().max() == 0
    for layer, block in enumerate(model.blocks, start=1):
        expected = std / math.sqrt(2.0 * layer)
        assert abs(block.mlp.fc2.weight.std().item() - expected) < 0.1 * expected


def test_config_validation():
    with pytest.raises(ConfigError, match="divisible"):
        ViTConfig(embed_dim=50, num_heads=4)
    with pytest.raises(ConfigError, match="head width"):
        ViTConfig(embed_dim=8, num_heads=2)
    with pytest.raises(ConfigError, match="pos_embed"):
        ViTConfig(pos_embed="alibi")


def _expected_params(D, depth, hidden, chans=3, t=2, p=16):
    block = 2 * 2 * D + (3 * D * D + 3 * D) + (D * D + D) + (D * hidden + hidden) + (hidden * D + D)
    return chans * t * p * p * D + D + depth * block + 2 * D


@pytest.mark.parametrize(
    "name,D,depth,heads,hidden",
    [
        ("vit_l16_vjepa2", 1024, 24, 16, 4096),
        ("vit_h16_vjepa2", 1280, 32, 16, 5120),
        ("vit_g16_vjepa2", 1408, 40, 22, 6144),
    ],
)
def test_vjepa2_presets_match_the_released_sizes(name, D, depth, heads, hidden):
    config = ViTConfig(**vit_preset(name))
    assert (config.embed_dim, config.depth, config.num_heads) == (D, depth, heads)
    model = VisionTransformer(config, device="meta")
    assert model.blocks[0].mlp.fc1.out_features == hidden
    assert model.blocks[0].attn.head_dim == D // heads
    assert sum(p.numel() for p in model.parameters()) == _expected_params(D, depth, hidden)


def test_tiny_preset_for_shapesworld():
    model = create_model("vit_tiny_patch4").eval()
    assert 96 <= model.embed_dim <= 192 and 4 <= model.config.depth <= 6
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 64, model.embed_dim)
    assert create_model("vit_tiny_patch4", depth=4).config.depth == 4


@pytest.mark.parametrize("pos_embed", ["rope", "learned"])
def test_save_and_load_pretrained(tmp_path, pos_embed):
    model = tiny(pos_embed=pos_embed, drop_path_rate=0.1)
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["architecture"] == "VisionTransformer" and config["embed_dim"] == 48
    x = torch.randn(1, 3, 16, 16)
    for loaded in (VisionTransformer.from_pretrained(tmp_path / "m"), load_pretrained(tmp_path / "m")):
        assert isinstance(loaded, VisionTransformer) and loaded.config == model.config
        assert torch.equal(loaded(x), model(x))


def test_from_pretrained_reports_mismatches(tmp_path):
    tiny().save_pretrained(tmp_path / "m")
    with pytest.raises(CheckpointError, match=r"wrong shape.*patch_embed.proj.weight"):
        VisionTransformer.from_pretrained(tmp_path / "m", patch_size=2)
    with pytest.raises(CheckpointError, match=r"missing: blocks\.2\."):
        VisionTransformer.from_pretrained(tmp_path / "m", depth=3)
    with pytest.raises(ConfigError, match="did you mean 'embed_dim'"):
        VisionTransformer.from_pretrained(tmp_path / "m", embed_dims=3)
    with pytest.raises(CheckpointError, match="config.json"):
        VisionTransformer.from_pretrained(tmp_path / "nothing")
    assert math.prod(tiny().default_grid) == 32
