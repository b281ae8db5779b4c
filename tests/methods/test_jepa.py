"""The JEPA method end to end: mask checks, gradient flow, strict encoding, learning, resume."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch

from mambajepa.config import load_config
from mambajepa.core.checkpoint import list_checkpoints, load_checkpoint_weights
from mambajepa.masks import (
    DuplicateIndex,
    EmptyContext,
    IndexOutOfBounds,
    MaskedBatch,
    MaskError,
    OverlappingMasks,
)
from mambajepa.methods.jepa import JEPA, JEPAOutput
from mambajepa.train.trainer import run_training, seed_everything

# 16 px images, 4 px patches: a 4x4 token grid; one-block encoder and predictor.
TINY = {
    "method": "jepa",
    "name": "jepa_tiny",
    "encoder": {
        "name": "vit_tiny_patch4",
        "img_size": 16,
        "num_frames": 2,
        "tubelet_size": 1,
        "embed_dim": 32,
        "depth": 1,
        "num_heads": 2,
    },
    "predictor": {"embed_dim": 16, "depth": 1, "num_heads": 2, "headdim": 8, "d_state": 8},
    "data": {"name": "shapes_images", "image_size": 16, "n_train": 64, "n_val": 16},
    "mask": {"kind": "multiblock2d", "num_targets": 2, "min_keep": 2},
    "probe": {"n_train": 64, "n_eval": 32, "attentive_steps": 5, "linear_steps": 10},
    "train": {
        "max_steps": 6,
        "batch_size": 8,
        "lr": 1e-3,
        "warmup_steps": 0,
        "checkpoint_every": 3,
        "keep_last": 5,
        "eval_every": 0,
        "progress": False,
        "plots": False,
        "log_every": 1,
    },
}


def tiny_config(*overrides: str):
    return load_config(copy.deepcopy(TINY), list(overrides))


def build(*overrides: str) -> tuple[JEPA, MaskedBatch]:
    cfg = tiny_config(*overrides)
    seed_everything(0)
    method = JEPA.from_config(cfg)
    data = method.build_data(cfg)
    batch = data.collate_fn([data.train[i] for i in range(4)], torch.Generator().manual_seed(0))
    return method, batch


def with_mask(batch: MaskedBatch, **changes) -> MaskedBatch:
    masks = [copy.copy(m) for m in batch.masks]
    for key, value in changes.items():
        setattr(masks[0], key, value)
    return MaskedBatch(batch.inputs, masks, batch.extras)


# ----------------------------------------------------------------------------------------------
# masks are checked where they are drawn, and at the method's door on request


def test_invalid_masks_come_back_typed_from_try_training_step():
    method, batch = build("--debug=true")
    ctx, tgt = batch.masks[0].context, batch.masks[0].target
    overlapping = ctx.clone()
    overlapping[:, 0] = tgt[:, 0]
    duplicated = ctx.clone()
    duplicated[:, 1] = duplicated[:, 0]
    cases = {
        EmptyContext: with_mask(batch, context=ctx[:, :0]),
        OverlappingMasks: with_mask(batch, context=overlapping),
        IndexOutOfBounds: with_mask(batch, target=tgt + 16),
        DuplicateIndex: with_mask(batch, context=duplicated),
    }
    for error_type, bad in cases.items():
        err = method.try_training_step(bad, 0)
        assert type(err) is error_type, (error_type, err)
        with pytest.raises(error_type):
            method.training_step(bad, 0)
    too_many = MaskedBatch(batch.inputs, batch.masks * 2, batch.extras)
    assert isinstance(method.try_training_step(too_many, 0), MaskError)
    assert isinstance(method.try_training_step(batch, 0), JEPAOutput)


def test_masks_are_validated_by_the_collator_and_not_in_the_training_step(monkeypatch):
    method, batch = build()
    assert not method.debug and method.build_data(tiny_config()).collate_fn.validate

    def refuse(*args):
        raise AssertionError("training_step checked the masks without debug")

    monkeypatch.setattr(method, "check_masks", refuse)
    assert isinstance(method.training_step(batch, 0), JEPAOutput)
    # try_training_step checks whatever debug says (its masks may come from anywhere)
    with pytest.raises(AssertionError, match="without debug"):
        method.try_training_step(batch, 0)
    method.debug = True
    with pytest.raises(AssertionError, match="without debug"):
        method.training_step(batch, 0)


def test_encode_returns_the_chosen_encoders_token_features():
    method, batch = build("--probe.encoder=context")
    with torch.no_grad():
        tokens = method.encode(batch.inputs)
        torch.testing.assert_close(method.encode(batch), tokens)  # a MaskedBatch is read whole
        torch.testing.assert_close(tokens, method.encoder(batch.inputs))
    assert tokens.shape == (4, 16, 32) and method.feature_encoder == "context"


# ----------------------------------------------------------------------------------------------
# gradients and the EMA target


def test_target_gets_no_gradient_and_follows_ema():
    method, batch = build()
    out = method.training_step(batch, 0)
    out.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in method.target_encoder.parameters())
    assert not out.target.requires_grad
    assert all(p.grad is not None for p in method.encoder.parameters() if p.requires_grad)
    assert all(p.grad is not None for p in method.predictor.parameters())

    before = {k: v.clone() for k, v in method.target_encoder.target.state_dict().items()}
    with torch.no_grad():
        for p in method.encoder.parameters():
            p.add_(0.1)
    method.after_optimizer_step(0, 6)
    m = method.target_encoder.momentum(0)
    online = method.encoder.state_dict()
    for key, value in method.target_encoder.target.state_dict().items():
        torch.testing.assert_close(value, m * before[key] + (1 - m) * online[key])


# ----------------------------------------------------------------------------------------------
# strict encoding: hidden pixels cannot reach the prediction


@pytest.mark.parametrize("predictor", ["transformer", "mamba"])
def test_hidden_pixels_do_not_change_predictions(predictor):
    method, batch = build(f"--predictor.kind={predictor}")
    method.eval()
    masks = batch.masks[0]
    x = batch.inputs  # (B, 3, 16, 16), 4x4 patches of 4 px
    noisy = x.clone()
    for b in range(x.shape[0]):
        hidden = set(range(16)) - set(masks.context[b].tolist())
        for idx in hidden:
            r, c = divmod(idx, 4)
            noisy[b, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = torch.rand(3, 4, 4)
    with torch.no_grad():
        clean_out = method.training_step(batch, 0)
        noisy_out = method.training_step(MaskedBatch(noisy, batch.masks, batch.extras), 0)
    torch.testing.assert_close(noisy_out.predicted, clean_out.predicted, rtol=0, atol=1e-6)
    assert not torch.allclose(noisy_out.target, clean_out.target)  # the target encoder does see them


# ----------------------------------------------------------------------------------------------
# learning


@pytest.mark.parametrize("predictor", ["transformer", "mamba"])
def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(predictor):
    method, batch = build(f"--predictor.kind={predictor}")
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(25):
        out = method.training_step(batch, step)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.after_optimizer_step(step, 25)
        losses.append(float(out.loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def test_video_clips_with_two_mask_generators():
    method, batch = build(
        "--data.name=shapes_videos",
        "--data.num_frames=4",
        "--encoder.num_frames=4",
        "--encoder.tubelet_size=2",
        "--mask.kind=vjepa",
        "--mask.min_keep=1",
        "--loss.energy=l1",
    )
    assert batch.inputs.shape == (4, 3, 4, 16, 16) and len(batch.masks) == 2
    assert method.grid == (2, 4, 4) and method.predictor.num_mask_tokens == 2
    out = method.training_step(batch, 0)
    assert torch.isfinite(out.loss) and out.predicted.shape == out.target.shape
    # each generator's predictions use that generator's mask token
    ctx = method.encoder(batch.inputs, keep_indices=batch.masks[0].context)
    ids = batch.masks[0].target
    p0 = method.predictor(ctx, batch.masks[0].context, ids, method.grid, 0)
    p1 = method.predictor(ctx, batch.masks[0].context, ids, method.grid, 1)
    assert not torch.allclose(p0, p1)


def test_regularizer_is_weighted_into_the_loss():
    method, batch = build("--loss.regularizer=vicreg", "--loss.reg_weight=0.5")
    out = method.training_step(batch, 0)
    torch.testing.assert_close(out.loss, out.energy + 0.5 * out.regularization)
    assert float(out.regularization.detach()) > 0


# ----------------------------------------------------------------------------------------------
# resume through the trainer


def test_resume_mid_run_matches_uninterrupted(tmp_path):
    cfg = tiny_config()
    full = tmp_path / "full"
    run_training(cfg, full)
    interrupted = tmp_path / "interrupted"
    shutil.copytree(full, interrupted)
    last = list_checkpoints(interrupted / "checkpoints")[-1]
    assert last.name == "step_6"
    shutil.rmtree(last)  # as if the run had stopped after the step-3 checkpoint
    summary = run_training(tiny_config(), interrupted, resume="auto")
    assert summary["step"] == 6
    resumed, reference = load_checkpoint_weights(interrupted), load_checkpoint_weights(full)
    assert resumed.keys() == reference.keys()
    assert any(k.startswith("target_encoder.") for k in resumed)
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), key
