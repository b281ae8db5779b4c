"""NF-JEPA: pixel sets, the EMA target, every flag of the design input, predictors, the INR, recipes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mambajepa.cli import main
from mambajepa.config import load_config, resolve_recipe
from mambajepa.core.errors import ConfigError, DataError, ShapeError
from mambajepa.data.cifar10 import write_cifar10
from mambajepa.encoders.field import MambaFieldBlock, pixel_grid
from mambajepa.methods.nf_jepa import (
    NFJEPA,
    NFBatch,
    NFCollator,
    fraction_count,
    sample_disjoint_sets,
    scan_rank,
)
from mambajepa.nn.block import TransformerBlock
from mambajepa.predictors.coord import CoordPredictor, CoordPredictorConfig, INRDecoder, INRDecoderConfig
from mambajepa.train.trainer import run_training, seed_everything

TINY = {
    "method": "nf_jepa",
    "name": "nf_tiny",
    "image_size": 8,
    "encoder": {"name": "neural_field_cifar10", "d_model": 16, "depth": 1, "num_freqs": 4, "d_state": 4},
    "predictor": {"width": 16, "depth": 1, "num_heads": 2, "num_freqs": 4},
    "decoder": {"hidden": 32, "depth": 2, "num_freqs": 4},
    "data": {"name": "shapes_images", "image_size": 8, "n_train": 64, "n_val": 8, "n_test": 32},
    "mask": {"obs_frac": 0.25, "target_frac": 0.25},
    "probe": {"n_train": 32, "n_eval": 16, "batch_size": 16, "linear_steps": 10, "attentive": False},
    "train": {"max_steps": 10, "batch_size": 8, "warmup_steps": 0, "eval_every": 0, "progress": False,
              "plots": False, "checkpoint_every": 0},
}  # fmt: skip


def tiny(*overrides: str):
    return load_config(TINY, list(overrides))


def batch_of(method: NFJEPA, config, n: int = 4, seed: int = 0) -> NFBatch:
    data = method.build_data(config)
    return data.collate_fn([data.train[i] for i in range(n)], torch.Generator().manual_seed(seed))


# -- pixel sets ----------------------------------------------------------------------------------


def test_context_and_target_sets_are_sorted_disjoint_and_reproducible():
    g = torch.Generator().manual_seed(3)
    ctx, tgt = sample_disjoint_sets(16, 1024, [102, 205], g)
    assert ctx.shape == (16, 102) and tgt.shape == (16, 205)
    for b in range(16):
        assert torch.all(ctx[b, 1:] > ctx[b, :-1]) and torch.all(tgt[b, 1:] > tgt[b, :-1])
        assert not set(ctx[b].tolist()) & set(tgt[b].tolist())
        assert 0 <= int(ctx[b].min()) and int(tgt[b].max()) < 1024
    again = sample_disjoint_sets(16, 1024, [102, 205], torch.Generator().manual_seed(3))
    assert torch.equal(again[0], ctx) and torch.equal(again[1], tgt)
    assert fraction_count(0.1, 1024) == 102 and fraction_count(0.2, 1024) == 205
    assert fraction_count(0.001, 1024) == 1 and fraction_count(1.0, 1024) == 1024


@pytest.mark.parametrize("frac", [0.0, -0.1, 1.5, float("nan")])
def test_fractions_outside_the_unit_interval_are_config_errors(frac):
    with pytest.raises(ConfigError, match="fraction"):
        fraction_count(frac, 1024)
    with pytest.raises(ConfigError, match="obs_frac"):
        tiny(f"--obs_frac={frac}")


def test_obs_plus_target_beyond_one_is_a_config_error():
    with pytest.raises(ConfigError, match=r"obs_frac \+ mask.target_frac = 0.6 \+ 0.5 > 1"):
        tiny("--obs_frac=0.6", "--target_frac=0.5")
    with pytest.raises(ConfigError, match="sum to at most 10"):
        sample_disjoint_sets(2, 10, [6, 5])


def test_the_cifar_recipe_refuses_images_that_are_not_32_px(tmp_path):
    with pytest.raises(ConfigError, match=r"data.image_size=64 but the recipe encodes 32 x 32"):
        load_config(resolve_recipe("nf_cifar10"), ["--data.image_size=64"])
    collate = NFCollator(32, 0.1, 0.2)
    with pytest.raises(ShapeError, match=r"\(3, 32, 32\) RGB images, got items of shape \(3, 16, 16\)"):
        collate([torch.rand(3, 16, 16)] * 2)
    with pytest.raises(ConfigError, match="normalize"):
        load_config(resolve_recipe("nf_cifar10"), ["--data.normalize=true"])


def test_pixel_grid_and_scan_orders():
    grid = pixel_grid(3, 4)
    assert grid.shape == (12, 2)
    assert (
        grid[0].tolist() == [-1.0, -1.0]
        and grid[3].tolist() == [1.0, -1.0]
        and grid[11].tolist() == [1.0, 1.0]
    )
    assert torch.allclose(grid[5], torch.tensor([-1 / 3, 0.0]))  # row 1, column 1
    assert scan_rank(2, 3, "raster").tolist() == [0, 1, 2, 3, 4, 5]
    assert scan_rank(2, 3, "snake").tolist() == [0, 1, 2, 5, 4, 3]
    with pytest.raises(ConfigError, match="spiral"):
        scan_rank(2, 3, "spiral")


# -- the target encoder ----------------------------------------------------------------------------


def test_target_encoder_gets_no_gradient_and_follows_the_ema():
    cfg = tiny()
    seed_everything(0)
    method = NFJEPA.from_config(cfg)
    batch = batch_of(method, cfg)
    out = method.training_step(batch, 0)
    out.loss.backward()
    target_params = list(method.target_encoder.parameters())
    assert target_params and all(not p.requires_grad and p.grad is None for p in target_params)
    assert all(p.grad is not None for p in method.encoder.parameters())

    before = [p.detach().clone() for p in target_params]
    with torch.no_grad():
        for p in method.encoder.parameters():
            p.add_(0.1)
    momentum = method.target_encoder.momentum(1)
    method.after_optimizer_step(1, cfg.train.max_steps)
    for old, new, online in zip(before, target_params, method.encoder.parameters(), strict=True):
        torch.testing.assert_close(new, momentum * old + (1 - momentum) * online.detach())
    assert 0.996 < momentum < 1.0 and method.last_momentum == momentum


def test_targets_are_the_layer_normed_ema_tokens_at_the_target_pixels():
    cfg = tiny("--recon_weight=0", "--loss.monitor_decoder=false")
    method = NFJEPA.from_config(cfg)
    batch = batch_of(method, cfg)
    values = batch.images.flatten(2).transpose(1, 2)
    tokens = method.target_encoder(method.coords.expand(4, -1, -1), values).tokens  # every pixel, raster
    expected_targets = F.layer_norm(tokens, tokens.shape[-1:]).gather(
        1, batch.target[..., None].expand(-1, -1, tokens.shape[-1])
    )
    ctx = method.encoder(
        method.coords[batch.context], values.gather(1, batch.context[..., None].expand(-1, -1, 3))
    )
    predicted = method.predictor(ctx.tokens, ctx.z_global, method.coords[batch.target])
    out = method.training_step(batch, 0)
    torch.testing.assert_close(out.loss, F.mse_loss(predicted, expected_targets))


# -- every flag of the design input ----------------------------------------------------------------


def test_every_flag_lands_in_its_field():
    cfg = load_config(
        resolve_recipe("nf_cifar10"),
        ["--obs_frac", "0.05", "--pred_mode", "pool", "--use_mamba", "false", "--recon_weight", "0.0",
         "--jepa_loss_type", "cosine", "--target_frac", "0.3", "--scan_order", "snake"],
    )  # fmt: skip
    assert cfg.mask.obs_frac == 0.05 and cfg.mask.target_frac == 0.3 and cfg.mask.scan_order == "snake"
    assert cfg.predictor.mode == "pool" and cfg.encoder.kwargs["use_mamba"] is False
    assert cfg.loss.recon_weight == 0.0 and cfg.loss.jepa_loss_type == "cosine"
    dotted = load_config(resolve_recipe("nf_cifar10"), ["--mask.obs_frac=0.05", "--predictor.mode=pool"])
    assert dotted.mask.obs_frac == 0.05 and dotted.predictor.mode == "pool"


def test_obs_frac_and_target_frac_set_the_set_sizes():
    cfg = tiny("--obs_frac=0.125", "--target_frac=0.5")
    batch = batch_of(NFJEPA.from_config(cfg), cfg)
    assert batch.context.shape == (4, 8) and batch.target.shape == (4, 32)


def test_use_mamba_switches_the_encoder_blocks():
    mamba = NFJEPA.from_config(tiny())
    transformer = NFJEPA.from_config(tiny("--use_mamba=false", "--encoder.num_heads=2"))
    assert all(isinstance(b, MambaFieldBlock) for b in mamba.encoder.blocks)
    assert all(isinstance(b, TransformerBlock) for b in transformer.encoder.blocks)
    cfg = tiny("--use_mamba=false", "--encoder.num_heads=2")
    assert torch.isfinite(transformer.training_step(batch_of(transformer, cfg), 0).loss)


def test_jepa_loss_type_cosine_is_one_minus_cosine():
    torch.manual_seed(0)
    cfg = tiny("--jepa_loss_type=cosine", "--recon_weight=0", "--loss.monitor_decoder=false")
    method = NFJEPA.from_config(cfg)
    p, t = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    expected = (1 - (p * t).sum(-1) / (p.norm(dim=-1) * t.norm(dim=-1))).mean()
    torch.testing.assert_close(method.jepa_distance(p, t), expected)
    mse = NFJEPA.from_config(tiny())
    torch.testing.assert_close(mse.jepa_distance(p, t), ((p - t) ** 2).mean())
    assert 0 <= float(method.training_step(batch_of(method, cfg), 0).loss.detach()) <= 2


def _grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]


def test_recon_weight_zero_trains_the_encoder_by_jepa_alone_and_the_decoder_on_the_detached_code():
    cfg = tiny("--recon_weight=0")
    method = NFJEPA.from_config(cfg)
    batch = batch_of(method, cfg)
    out = method.training_step(batch, 0)
    out.loss.backward()
    encoder_grads, decoder_grads = _grads(method.encoder), _grads(method.decoder)
    method.zero_grad()
    method.loss_cfg.monitor_decoder = False  # the same step without the decoder's monitor term
    method.training_step(batch, 0).loss.backward()
    for a, b in zip(encoder_grads, _grads(method.encoder), strict=True):
        torch.testing.assert_close(a, b)
    assert any(g.abs().sum() > 0 for g in decoder_grads)
    assert all(g.abs().sum() == 0 for g in _grads(method.decoder))

    # recon_weight > 0: the reconstruction reaches the encoder, weighted
    weighted = NFJEPA.from_config(tiny("--recon_weight=0.5"))
    weighted.load_state_dict(method.state_dict())
    out = weighted.training_step(batch, 0)
    torch.testing.assert_close(out.loss, out.metrics["jepa_loss"] + 0.5 * out.metrics["recon_loss"])
    weighted.training_step(batch, 0).loss.backward()
    assert any((a - b).abs().sum() > 0 for a, b in zip(encoder_grads, _grads(weighted.encoder), strict=True))


def test_snake_scan_order_feeds_the_encoder_in_snake_order():
    cfg = tiny("--scan_order=snake")
    method = NFJEPA.from_config(cfg)
    index = torch.tensor([[0, 8, 9, 15, 16]])  # row 0 col 0; row 1 cols 0, 1, 7; row 2 col 0
    assert method.scan_sorted(index).tolist() == [[0, 15, 9, 8, 16]]
    raster = NFJEPA.from_config(tiny())
    assert raster.scan_sorted(index).tolist() == index.tolist()
    # the step still predicts the right targets: loss finite, encoder order differs from raster
    batch = batch_of(method, cfg)
    assert torch.isfinite(method.training_step(batch, 0).loss)


# -- predictors and the INR --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["cross_attn", "pool"])
def test_coord_predictors_shapes_and_what_they_read(mode):
    torch.manual_seed(0)
    pred = CoordPredictor(24, CoordPredictorConfig(mode=mode, width=16, depth=2, num_heads=4, num_freqs=4))
    tokens, z, coords = torch.randn(3, 7, 24), torch.randn(3, 24), torch.rand(3, 5, 2) * 2 - 1
    out = pred(tokens, z, coords)
    assert out.shape == (3, 5, 24)
    # queries do not see each other: permuting them permutes the outputs
    perm = torch.tensor([4, 2, 0, 1, 3])
    torch.testing.assert_close(pred(tokens, z, coords[:, perm]), out[:, perm])
    other_tokens = pred(torch.randn(3, 7, 24), z, coords)
    if mode == "cross_attn":
        assert not torch.allclose(other_tokens, out)  # reads the context tokens
    else:
        torch.testing.assert_close(other_tokens, out)  # reads z_global only
        assert not torch.allclose(pred(tokens, torch.randn(3, 24), coords), out)
    with pytest.raises(ShapeError, match="coords must be"):
        pred(tokens, z, torch.rand(3, 5, 3))
    with pytest.raises(ConfigError, match="mode"):
        CoordPredictorConfig(mode="mlp").validate()


def test_pool_mode_trains_through_the_method():
    cfg = tiny("--pred_mode=pool")
    method = NFJEPA.from_config(cfg)
    assert method.predictor.mode == "pool"
    assert torch.isfinite(method.training_step(batch_of(method, cfg), 0).loss)


def test_inr_decodes_a_constant_image_exactly_after_training_on_it():
    torch.manual_seed(0)
    cfg = tiny()
    method = NFJEPA.from_config(cfg)
    images = torch.full((4, 3, 8, 8), 0.3)
    images[:, 1] = 0.7
    observed = sample_disjoint_sets(4, 64, [16], torch.Generator().manual_seed(0))[0]
    params = [*method.encoder.parameters(), *method.decoder.parameters()]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=100, line_search_fn="strong_wolfe")
    target = images.flatten(2).transpose(1, 2)  # (B, N, 3)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        enc = method.encode_pixels(images, observed)
        loss = F.mse_loss(method.decoder(enc.z_global, method.coords), target)
        loss.backward()
        return loss

    for _ in range(2):
        opt.step(closure)
    recon = method.reconstruct(images, observed)
    assert recon.shape == images.shape
    assert (recon - images).abs().max() < 1 / 512  # exact at 8-bit precision


def test_inr_decoder_shapes_and_bad_inputs():
    dec = INRDecoder(12, INRDecoderConfig(hidden=16, depth=2, num_freqs=3))
    assert dec(torch.randn(2, 12), pixel_grid(4, 4)).shape == (2, 16, 3)
    assert dec(torch.randn(2, 12), torch.rand(2, 5, 2)).shape == (2, 5, 3)
    with pytest.raises(ShapeError, match=r"z must be \(B, 12\)"):
        dec(torch.randn(2, 11), pixel_grid(4, 4))


def test_reconstruct_and_encode_check_their_inputs_and_are_deterministic():
    cfg = tiny()
    method = NFJEPA.from_config(cfg)
    images = torch.rand(2, 3, 8, 8)
    observed = torch.tensor([[0, 5, 9], [1, 2, 63]])
    recon = method.reconstruct(images, observed)
    assert recon.shape == (2, 3, 8, 8) and 0 <= float(recon.min()) and float(recon.max()) <= 1
    with pytest.raises(ShapeError, match=r"lie in \[0, 64\), got \[0, 64\]"):
        method.reconstruct(images, torch.tensor([[0, 5, 64], [1, 2, 3]]))
    with pytest.raises(ShapeError, match=r"expected images \(B, 3, 8, 8\)"):
        method.reconstruct(torch.rand(2, 3, 16, 16), observed)
    features = method.encode(images)
    assert features.shape == (2, fraction_count(cfg.probe.obs_frac, 64), 16)
    torch.testing.assert_close(method.encode(images), features)


# -- training, evaluation and recipes ----------------------------------------------------------------


def test_train_then_recon_and_probe_commands(tmp_path, capsys):
    run_dir = tmp_path / "run"
    summary = run_training(tiny("--image_size=12", "--data.image_size=12"), run_dir)  # SSIM needs >= 11 px
    assert summary["step"] == 10
    assert main(["eval", "recon", "--checkpoint", str(run_dir), "--obs_fracs", "0.1", "0.5", "--n-images", "16",
                 "--no-pictures"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "idw" in out and (run_dir / "recon.json").exists()
    assert main(["eval", "probe", "--checkpoint", str(run_dir), "--obs_frac", "0.5", "--no-attentive"]) == 0
    out = capsys.readouterr().out
    assert "random-init" in out and "shape" in out


def _cifar_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n)


@pytest.mark.parametrize("layout", ["python", "binary"])
def test_cifar10_recipe_loads_and_trains_two_steps_on_generated_archives(tmp_path, layout):
    write_cifar10(tmp_path / "cifar", _cifar_arrays(20, 0), _cifar_arrays(10, 1), layout)
    cfg = load_config(
        resolve_recipe("nf_cifar10"),
        [f"--data.root={tmp_path / 'cifar'}", "--train.max_steps=2", "--train.batch_size=2", "--train.warmup_steps=0",
         "--train.eval_every=0", "--train.checkpoint_every=0", "--train.num_workers=0", "--train.progress=false",
         "--train.plots=false"],
    )  # fmt: skip
    assert cfg.encoder.kwargs["d_model"] == 192 and cfg.encoder.kwargs["depth"] == 4
    assert cfg.predictor.width == 96 and cfg.predictor.depth == 3 and cfg.decoder.hidden == 256
    assert cfg.train.batch_size == 2 and cfg.ema.start == 0.996
    summary = run_training(cfg, tmp_path / "run")
    assert summary["step"] == 2 and np.isfinite(summary["loss"])


def test_cifar10_recipe_without_data_names_the_download_command(tmp_path):
    cfg = load_config(resolve_recipe("nf_cifar10"), [f"--data.root={tmp_path / 'none'}"])
    with pytest.raises(DataError, match="mambajepa data download cifar10"):
        NFJEPA.from_config(cfg).build_data(cfg)


def test_shapes_recipe_loads():
    cfg = load_config(resolve_recipe("nf_shapes"))
    assert cfg.method == "nf_jepa" and cfg.image_size == 32 and cfg.data.name == "shapes_images"
    assert cfg.data.arguments()["normalize"] is False
