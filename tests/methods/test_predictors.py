"""Mask-token predictors: input order does not matter; grid positions and mask tokens do."""

from __future__ import annotations

import pytest
import torch

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.predictors import PredictorConfig, build_predictor

GRID = (1, 4, 4)


def make(kind: str, context_pool: str = "none"):
    torch.manual_seed(0)
    cfg = PredictorConfig(
        kind=kind, embed_dim=16, depth=2, num_heads=2, headdim=8, d_state=8, context_pool=context_pool
    )
    return build_predictor(cfg, embed_dim=24, num_mask_tokens=2).eval()


def inputs():
    g = torch.Generator().manual_seed(1)
    context_ids = torch.stack([torch.randperm(16, generator=g)[:6] for _ in range(3)])  # (3, 6)
    target_ids = torch.tensor([[c for c in range(16) if c not in row][:4] for row in context_ids.tolist()])
    return torch.randn(3, 6, 24, generator=g), context_ids, target_ids


@pytest.mark.parametrize("kind", ["transformer", "mamba"])
def test_context_order_does_not_change_predictions(kind):
    """The Mamba predictor scans in grid order, the transformer has no order: both ignore input order."""
    predictor = make(kind)
    ctx, ctx_ids, tgt_ids = inputs()
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(2))
    out = predictor(ctx, ctx_ids, tgt_ids, GRID)
    shuffled = predictor(ctx[:, perm], ctx_ids[:, perm], tgt_ids, GRID)
    torch.testing.assert_close(shuffled, out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["transformer", "mamba"])
def test_positions_and_mask_tokens_matter_and_get_gradients(kind):
    predictor = make(kind)
    ctx, ctx_ids, tgt_ids = inputs()
    out = predictor(ctx, ctx_ids, tgt_ids, GRID, mask_index=0)
    assert out.shape == (3, 4, 24)
    # predictions follow their targets when the targets are listed in another order ...
    reordered = predictor(ctx, ctx_ids, tgt_ids.flip(1), GRID, mask_index=0)
    torch.testing.assert_close(reordered.flip(1), out, rtol=1e-5, atol=1e-5)
    # ... and the same mask token at another grid position gives another prediction
    here = predictor(ctx, ctx_ids, tgt_ids[:, :1], GRID)
    there = predictor(ctx, ctx_ids, tgt_ids[:, 1:2], GRID)
    assert not torch.allclose(here, there, atol=1e-4)
    assert not torch.allclose(predictor(ctx, ctx_ids, tgt_ids, GRID, mask_index=1), out, atol=1e-4)
    out.square().sum().backward()
    assert predictor.mask_tokens.grad[0].abs().sum() > 0 and predictor.mask_tokens.grad[1].abs().sum() == 0
    assert predictor.mask_tokens._no_weight_decay


@pytest.mark.parametrize("kind", ["transformer", "mamba"])
def test_mean_context_pool_sees_only_the_context_mean(kind):
    """With context_pool='mean' two contexts with the same mean token give the same predictions,
    wherever their tokens lie; a different mean gives different ones, and gradients reach every token."""
    predictor = make(kind, context_pool="mean")
    ctx, ctx_ids, tgt_ids = inputs()
    out = predictor(ctx, ctx_ids, tgt_ids, GRID)
    centred = ctx - ctx.mean(dim=1, keepdim=True)
    moved = ctx.mean(dim=1, keepdim=True) + centred.roll(1, dims=1) * 3.0  # same mean, other tokens
    other_ids = (ctx_ids + 5) % 16
    torch.testing.assert_close(predictor(moved, other_ids, tgt_ids, GRID), out, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(predictor(ctx + 0.5, ctx_ids, tgt_ids, GRID), out, atol=1e-4)
    # the full-context predictor does see where the tokens lie
    full = make(kind)
    assert not torch.allclose(
        full(ctx, other_ids, tgt_ids, GRID), full(ctx, ctx_ids, tgt_ids, GRID), atol=1e-4
    )
    ctx.requires_grad_(True)
    predictor(ctx, ctx_ids, tgt_ids, GRID).square().sum().backward()
    assert (ctx.grad.abs().sum(-1) > 0).all()


def test_predictor_inputs_are_checked():
    predictor = make("transformer")
    ctx, ctx_ids, tgt_ids = inputs()
    with pytest.raises(ShapeError, match="mask_index"):
        predictor(ctx, ctx_ids, tgt_ids, GRID, mask_index=2)
    with pytest.raises(ShapeError, match="width"):
        predictor(ctx[..., :8], ctx_ids, tgt_ids, GRID)
    with pytest.raises(ShapeError):
        predictor(ctx, ctx_ids[:, :3], tgt_ids, GRID)
    with pytest.raises(ConfigError, match="headdim"):
        build_predictor(PredictorConfig(kind="mamba", embed_dim=20, headdim=16), 24)
    with pytest.raises(ConfigError, match="context_pool"):
        build_predictor(PredictorConfig(context_pool="max"), 24)
