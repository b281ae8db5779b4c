"""VideoMamba: streaming equals whole-clip encoding, strict masking, pooling, configs, round trip."""

from types import SimpleNamespace

import pytest
import torch

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.encoders.videomamba import (
    VideoMamba,
    VideoMambaConfig,
    videomamba_preset,
)
from mambajepa.io.videomamba import build_videomamba
from mambajepa.registry import create_model, load_pretrained

SMALL = dict(img_size=8, patch_size=4, depth=2, embed_dim=16, num_frames=4, ssm_cfg={"d_state": 4})


def make(seed=0, **overrides):
    """A small model with weights far from the init (so every path visibly matters), in eval mode."""
    torch.manual_seed(seed)
    model = VideoMamba(VideoMambaConfig(**{**SMALL, **overrides}))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "A_log" not in name and "A_b_log" not in name:
                p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


def clip(T=6, B=2, size=8, seed=1):
    return torch.randn(B, 3, T, size, size, generator=torch.Generator().manual_seed(seed))


def chunks(x, lengths):
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    return [x[:, :, s : s + n] for s, n in zip(starts, lengths)]


@pytest.mark.parametrize("kernel_size, lengths", [(1, [2, 1, 3]), (2, [2, 4])])
def test_streamed_chunks_equal_whole_clip_values_and_gradients(kernel_size, lengths):
    # 6 frames while the temporal table covers 4: positions past it are shared by both paths
    model = make(kernel_size=kernel_size, bimamba=False)
    x = clip().requires_grad_(True)
    whole = model.encode(x)
    weights = torch.randn_like(whole.tokens)
    loss_whole = (whole.tokens * weights).sum() + whole.pooled.square().sum()
    grads_whole = torch.autograd.grad(loss_whole, [x, *model.parameters()])

    state = model.init_state(2)
    outs = []
    for i, piece in enumerate(chunks(x, lengths)):
        out = model.encode(piece, ssm_state=state, pool=i == 0)
        outs.append(out)
        state = out.state
    tokens = torch.cat([o.tokens for o in outs], dim=1)
    assert state.temporal_offset == 6 // kernel_size
    torch.testing.assert_close(tokens, whole.tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[0].cls, whole.cls, atol=1e-5, rtol=1e-5)
    # the first chunk's cls+avg pools over its own tokens only
    assert outs[1].cls is None and outs[1].pooled is None
    pooled_whole = model.pool(tokens, outs[0].cls)
    loss_chunks = (tokens * weights).sum() + pooled_whole.square().sum()
    grads_chunks = torch.autograd.grad(loss_chunks, [x, *model.parameters()])
    for got, want in zip(grads_chunks, grads_whole):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_forward_returns_new_state_and_explicit_offset_matches():
    model = make(bimamba=False)
    x = clip(T=4)
    whole = model(x)
    first, state = model(x[:, :, :2], ssm_state=model.init_state(2))
    second, state = model(x[:, :, 2:], ssm_state=state, temporal_pos_offset=2)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-5, rtol=1e-5)
    # a detached state (truncated backpropagation) continues with the same values, without a graph
    _, carried = model(x[:, :, :2], ssm_state=model.init_state(2))
    cut = carried.detach()
    assert all(not s.ssm.requires_grad and not s.conv.requires_grad for s in cut.layers)
    torch.testing.assert_close(model(x[:, :, 2:], ssm_state=cut)[0], second)
    # without the carried state the continuation is different: the state really carries the past
    fresh = model.init_state(2)
    fresh.started = True
    alone, _ = model(x[:, :, 2:], ssm_state=fresh, temporal_pos_offset=2)
    assert (alone - second).abs().max() > 1e-2


def test_continuation_chunk_refuses_pooling_that_needs_cls():
    model = make(bimamba=False, pool_type="cls+avg")
    x = clip(T=4)
    first = model.encode(x[:, :, :2], ssm_state=model.init_state(2))
    with pytest.raises(ConfigError, match="needs the CLS token"):
        model.encode(x[:, :, 2:], ssm_state=first.state)
    avg = make(bimamba=False, pool_type="avg")
    first = avg.encode(x[:, :, :2], ssm_state=avg.init_state(2))
    second = avg.encode(x[:, :, 2:], ssm_state=first.state)
    torch.testing.assert_close(second.pooled, avg.pool_norm(second.tokens.mean(1)))


def test_bidirectional_model_cannot_stream_and_sees_the_future():
    bi, causal = make(), make(bimamba=False)
    with pytest.raises(ConfigError, match="bimamba=False"):
        bi.init_state(1)
    x = clip(T=4)
    y = x.clone()
    y[:, :, -1] += 1.0  # change only the last frame
    n_first = 4  # tokens of frame 0
    assert (bi(x)[:, :n_first] - bi(y)[:, :n_first]).abs().max() > 1e-3
    torch.testing.assert_close(causal(x)[:, :n_first], causal(y)[:, :n_first])


def test_strict_masked_encoding_ignores_hidden_pixels():
    model = make()
    x = clip(T=4, size=8)
    n = model.num_tokens(x.shape)  # 4 frames × 2 × 2
    keep = torch.tensor([[0, 3, 5, 9, 14], [1, 2, 7, 8, 15]])
    out = model(x, keep)
    assert out.shape == (2, 5, 16)
    # overwrite every hidden tubelet: patches are 4 px, frame-major ids
    y = x.clone()
    for b in range(2):
        for i in set(range(n)) - set(keep[b].tolist()):
            t, r, c = i // 4, (i % 4) // 2, i % 2
            y[b, :, t, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = torch.randn(3, 4, 4)
    torch.testing.assert_close(model(y, keep), out, rtol=0, atol=0)
    # keeping every token in order is the unmasked encoding
    torch.testing.assert_close(model(x, torch.arange(n).expand(2, -1)), model(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ShapeError, match="keep_indices"):
        model(x, torch.tensor([[0, n]]).expand(2, -1))


@pytest.mark.parametrize("pool_type", ["cls", "cls+avg", "avg", "cls_cat_avg"])
def test_pool_types(pool_type):
    model = make(pool_type=pool_type)
    out = model.encode(clip(T=4))
    mean = out.tokens.mean(1)
    ln = model.pool_norm
    want = {
        "cls": ln(out.cls),
        "cls+avg": ln(out.cls + mean),
        "avg": ln(mean),
        "cls_cat_avg": torch.cat([ln(out.cls), ln(mean)], dim=1),
    }[pool_type]
    assert out.pooled.shape == (2, model.pooled_dim)
    torch.testing.assert_close(out.pooled, want)


def test_images_use_no_temporal_embedding_and_other_sizes_interpolate():
    model = make()
    image = torch.randn(2, 3, 8, 8)
    out = model(image)
    with torch.no_grad():
        model.temporal_pos_embedding.add_(1.0)
    torch.testing.assert_close(model(image), out)
    assert model(clip(T=2, size=12)).shape == (2, 2 * 9, 16)  # 3×3 patches: interpolated pos_embed


@pytest.mark.parametrize("stream", [False, True])
def test_gradient_checkpointing_gives_the_same_gradients(stream):
    x = clip(T=2)
    grads = []
    for use in (False, True):
        model = make(use_checkpoint=use, checkpoint_num=1 if use else 0, bimamba=not stream)
        calls = []
        for layer in model.layers:
            layer.mixer.register_forward_pre_hook(lambda m, a, calls=calls: calls.append(m.layer_idx))
        if stream:
            first, state = model(x[:, :, :1], ssm_state=model.init_state(2))
            second, _ = model(x[:, :, 1:], ssm_state=state)
            (first.square().sum() + second.square().sum()).backward()
        else:
            model(x).square().sum().backward()
        chunks_run = 2 if stream else 1
        # the first block is recomputed in backward when checkpointed, the second never is
        assert calls.count(0) == chunks_run * (2 if use else 1) and calls.count(1) == chunks_run
        grads.append([p.grad for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 10
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_drop_path_is_random_in_training_only():
    model = make(drop_path_rate=0.5)
    x = clip(T=2)
    torch.testing.assert_close(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert (a - model(x)).abs().max() > 1e-4


def test_build_from_the_public_configuration_layout():
    fields = dict(
        img_size=8,
        patch_size=4,
        depth=2,
        embed_dim=16,
        channels=3,
        drop_path_rate=0.0,
        ssm_cfg=None,
        norm_epsilon=1e-5,
        fused_add_norm=True,
        rms_norm=True,
        residual_in_fp32=True,
        bimamba=True,
        pool_type="cls+avg",
        kernel_size=1,
        num_frames=4,
        use_checkpoint=False,
        checkpoint_num=0,
        clip_decoder_embed_dim=16,
        clip_output_dim=512,
        clip_return_layer=1,
        clip_student_return_interval=1,
        pretrained=None,
    )
    model = build_videomamba(SimpleNamespace(vision_encoder=SimpleNamespace(**fields)))
    assert isinstance(model.layers[0].mixer, type(make().layers[0].mixer))
    assert model.num_tokens((1, 3, 4, 8, 8)) == 16
    typed = build_videomamba(VideoMambaConfig(**fields))
    assert typed.config == model.config
    public = {k: v for k, v in fields.items() if k != "bimamba"}
    v1 = build_videomamba({"vision_encoder": {**public, "bimamba_type": "none"}})
    assert v1.streamable
    with pytest.raises(ConfigError, match="did you mean 'pool_type'"):
        build_videomamba(SimpleNamespace(vision_encoder=SimpleNamespace(**{**fields, "pool_typ": "cls"})))
    with pytest.raises(ConfigError, match="pool_type"):
        VideoMambaConfig(pool_type="max")


def test_presets_and_parameter_groups():
    tiny = create_model("videomamba_tiny")
    n_params = sum(p.numel() for p in tiny.parameters())
    assert 6.5e6 < n_params < 7.5e6  # VideoMamba-Ti: ~7M
    small, middle = videomamba_preset("videomamba_small"), videomamba_preset("videomamba_middle")
    assert (small["embed_dim"], small["depth"], middle["embed_dim"], middle["depth"]) == (384, 24, 576, 32)
    # ViT field names map to ours; fields VideoMamba lacks are named in a typed error
    tubelets = create_model("videomamba_tiny_cpu", tubelet_size=2, in_chans=1, depth=1)
    assert (tubelets.config.kernel_size, tubelets.config.channels) == (2, 1)
    with pytest.raises(ConfigError, match="num_heads"):
        create_model("videomamba_tiny_cpu", num_heads=4)
    cpu = create_model("videomamba_tiny_cpu", bimamba=False)
    tokens = cpu(torch.randn(1, 3, 2, 32, 32))
    assert cpu.streamable and tokens.shape == (1, 128, 64)
    tokens.sum().backward()  # a token loss reaches every parameter (as DDP requires)
    assert all(p.grad is not None for p in cpu.parameters())
    no_decay = {n for n, p in tiny.named_parameters() if getattr(p, "_no_weight_decay", False)}
    for name in (
        "cls_token",
        "pos_embed",
        "temporal_pos_embedding",
        "layers.0.mixer.A_b_log",
        "layers.0.mixer.D",
    ):
        assert name in no_decay


def test_save_and_load_pretrained_round_trip(tmp_path):
    model = make(bimamba=False, pool_type="cls_cat_avg")
    model.save_pretrained(tmp_path)
    x = clip(T=2)
    for loaded in (VideoMamba.from_pretrained(tmp_path), load_pretrained(tmp_path)):
        assert loaded.config == model.config
        torch.testing.assert_close(loaded.encode(x).pooled, model.encode(x).pooled, rtol=0, atol=0)
