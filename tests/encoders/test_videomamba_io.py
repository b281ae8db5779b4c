"""Checkpoints in the public VideoMamba naming load into ours and give a reference forward's output.

The reference below is written from the public model's forward, straight from the raw state dict:
per-frame patch embedding reshaped to ``(B·T, S, D)``, CLS and spatial table added, temporal
table added over ``(B·S, T, D)``, then ``Add -> RMSNorm -> bimamba v2`` blocks with a sequential
selective scan, the final norm and ``pool_norm(cls + mean)``.
"""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mambajepa.core.errors import CheckpointError
from mambajepa.io.videomamba import build_videomamba, load_videomamba

D, DEPTH, PATCH, SIDE, FRAMES, N_STATE, CONV = 16, 2, 4, 8, 4, 4, 4
E, R = 2 * D, 1  # expand 2; dt_rank = ceil(16 / 16)


def public_state_dict(seed=0, bimamba=True, final="norm", heads=True, kernel=1):
    """Random weights under the public VideoMamba names and shapes."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.3):
        return torch.randn(*shape, generator=g) * scale

    S = (SIDE // PATCH) ** 2
    sd = {
        "patch_embed.proj.weight": rnd(D, 3, kernel, PATCH, PATCH),
        "patch_embed.proj.bias": rnd(D),
        "cls_token": rnd(1, 1, D),
        "pos_embed": rnd(1, S + 1, D),
        "temporal_pos_embedding": rnd(1, FRAMES // kernel, D),
        f"{final}.weight": 1 + rnd(D),
        "pool_norm.weight": 1 + rnd(D),
        "pool_norm.bias": rnd(D),
    }
    directions = ["", "_b"] if bimamba else [""]
    for i in range(DEPTH):
        p = f"layers.{i}."
        sd[p + "norm.weight"] = 1 + rnd(D)
        sd[p + "mixer.in_proj.weight"] = rnd(2 * E, D)
        sd[p + "mixer.out_proj.weight"] = rnd(D, E)
        for s in directions:
            sd[p + f"mixer.conv1d{s}.weight"] = rnd(E, 1, CONV)
            sd[p + f"mixer.conv1d{s}.bias"] = rnd(E)
            sd[p + f"mixer.x_proj{s}.weight"] = rnd(R + 2 * N_STATE, E)
            sd[p + f"mixer.dt_proj{s}.weight"] = rnd(E, R)
            sd[p + f"mixer.dt_proj{s}.bias"] = rnd(E, scale=1.0) - 3.0
            a_log = "A_log" if s == "" else "A_b_log"
            sd[p + f"mixer.{a_log}"] = torch.log(torch.arange(1, N_STATE + 1.0)).repeat(E, 1) + rnd(
                E, N_STATE
            )
            sd[p + f"mixer.D{s}"] = 1 + rnd(E)
    if heads:
        sd["head.weight"], sd["head.bias"] = rnd(10, D), rnd(10)
        sd["clip_decoder.0.head.weight"], sd["clip_decoder.0.head.bias"] = rnd(512, D), rnd(512)
        sd["clip_decoder.0.norm.weight"], sd["clip_decoder.0.norm.bias"] = rnd(512), rnd(512)
    return sd


def rms(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def scan_direction(u, sd, p, s):
    """One Mamba direction without the gate: u (B, L, E) -> (B, L, E), sequential scan."""
    a_log = sd[p + ("A_log" if s == "" else "A_b_log")]
    L = u.shape[1]
    xc = F.conv1d(
        u.transpose(1, 2), sd[p + f"conv1d{s}.weight"], sd[p + f"conv1d{s}.bias"], padding=CONV - 1, groups=E
    )
    xc = F.silu(xc[..., :L]).transpose(1, 2)  # (B, L, E)
    dt, Bm, Cm = (xc @ sd[p + f"x_proj{s}.weight"].T).split([R, N_STATE, N_STATE], dim=-1)
    delta = F.softplus(dt @ sd[p + f"dt_proj{s}.weight"].T + sd[p + f"dt_proj{s}.bias"])  # (B, L, E)
    A = -torch.exp(a_log)  # (E, N)
    h = torch.zeros(u.shape[0], E, N_STATE)
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * xc[:, t])[..., None] * Bm[:, t, None, :]
        ys.append((h * Cm[:, t, None, :]).sum(-1) + sd[p + f"D{s}"] * xc[:, t])
    return torch.stack(ys, dim=1)


def reference_forward(sd, video, final="norm", bimamba=True, kernel=1):
    """(tokens without CLS, pooled) of the public forward, computed from the raw weights."""
    x = F.conv3d(
        video, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=(kernel, PATCH, PATCH)
    )
    B, C, T, H, W = x.shape
    x = x.permute(0, 2, 3, 4, 1).reshape(B * T, H * W, C)
    x = torch.cat([sd["cls_token"].expand(B * T, -1, -1), x], dim=1) + sd["pos_embed"]
    cls = x[:B, :1]
    x = x[:, 1:].reshape(B, T, H * W, C).transpose(1, 2).reshape(B * H * W, T, C)  # (b n) t m
    x = x + sd["temporal_pos_embedding"]
    x = x.reshape(B, H * W, T, C).transpose(1, 2).reshape(B, T * H * W, C)  # b (t n) m
    hidden, residual = torch.cat([cls, x], dim=1), None
    for i in range(DEPTH):
        p = f"layers.{i}.mixer."
        residual = hidden if residual is None else residual + hidden
        normed = rms(residual, sd[f"layers.{i}.norm.weight"])
        u, z = (normed @ sd[p + "in_proj.weight"].T).chunk(2, dim=-1)
        y = scan_direction(u, sd, p, "")
        if bimamba:
            y = y + scan_direction(u.flip(1), sd, p, "_b").flip(1)
        hidden = (y * F.silu(z)) @ sd[p + "out_proj.weight"].T
    out = rms(residual + hidden, sd[f"{final}.weight"])
    pooled = F.layer_norm(out[:, 0] + out[:, 1:].mean(1), (D,), sd["pool_norm.weight"], sd["pool_norm.bias"])
    return out[:, 1:], pooled


@pytest.fixture
def video():
    return torch.randn(2, 3, FRAMES, SIDE, SIDE, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("final, bimamba", [("norm", True), ("norm_f", True), ("norm", False)])
def test_public_checkpoint_file_matches_reference_forward(tmp_path, video, final, bimamba):
    sd = public_state_dict(final=final, bimamba=bimamba)
    path = tmp_path / "videomamba_t16.pth"
    torch.save({"model": sd}, path)
    model = load_videomamba(path)
    assert model.config.bimamba == bimamba and model.config.depth == DEPTH and model.config.embed_dim == D
    ours = model.state_dict()
    for key, value in sd.items():
        if not key.startswith(("head.", "clip_decoder.")):
            torch.testing.assert_close(ours[key.replace("norm_f.", "norm.")], value, rtol=0, atol=0)
    tokens, pooled = reference_forward(sd, video, final=final, bimamba=bimamba)
    out = model.encode(video)
    torch.testing.assert_close(out.tokens, tokens, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.pooled, pooled, atol=1e-4, rtol=1e-4)


def test_tubelets_of_two_frames(video):
    sd = public_state_dict(kernel=2, heads=False)
    model = load_videomamba(sd)
    assert model.config.kernel_size == 2 and model.config.num_frames == FRAMES
    tokens, pooled = reference_forward(sd, video, kernel=2)
    torch.testing.assert_close(model.encode(video).pooled, pooled, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(model(video), tokens, atol=1e-4, rtol=1e-4)


def test_encoder_inside_a_video_text_checkpoint(video):
    sd = {f"vision_encoder.{k}": v for k, v in public_state_dict().items()}
    sd["text_encoder.embeddings.weight"] = torch.zeros(4, 4)
    with pytest.raises(CheckpointError, match="prefix='vision_encoder.'"):
        load_videomamba(sd)
    with pytest.raises(CheckpointError, match="text_encoder.embeddings.weight"):
        load_videomamba(sd, config=load_videomamba(sd, prefix="vision_encoder.").config)
    model = load_videomamba(sd, prefix="vision_encoder.")
    want = reference_forward(public_state_dict(), video)[1]
    torch.testing.assert_close(model.encode(video).pooled, want, atol=1e-4, rtol=1e-4)


def test_mismatches_are_listed():
    sd = public_state_dict(heads=False)
    del sd["layers.1.mixer.D_b"]
    sd["layers.0.mixer.extra"] = torch.zeros(1)
    sd["layers.0.mixer.out_proj.weight"] = torch.zeros(D, E + 1)
    with pytest.raises(CheckpointError) as err:
        load_videomamba(sd)
    message = str(err.value)
    for key in ("layers.1.mixer.D_b", "layers.0.mixer.extra", "layers.0.mixer.out_proj.weight"):
        assert key in message
    with pytest.raises(CheckpointError, match="not a VideoMamba state dict"):
        load_videomamba({"foo": torch.zeros(1)})


def test_position_tables_are_resized_to_the_configuration():
    sd = public_state_dict(heads=False)
    model = load_videomamba(sd, img_size=12, num_frames=8)
    assert model.pos_embed.shape == (1, 1 + 9, D) and model.temporal_pos_embedding.shape == (1, 8, D)
    torch.testing.assert_close(model.pos_embed[:, 0], sd["pos_embed"][:, 0])
    # linear resizing of 4 -> 8 entries keeps the ends' values
    torch.testing.assert_close(model.temporal_pos_embedding[0, 0], sd["temporal_pos_embedding"][0, 0])
    torch.testing.assert_close(model.temporal_pos_embedding[0, -1], sd["temporal_pos_embedding"][0, -1])
    assert model(torch.randn(1, 3, 8, 12, 12)).shape == (1, 8 * 9, D)


def test_build_videomamba_loads_the_pretrained_file_it_names(tmp_path, video):
    sd = public_state_dict()
    torch.save(sd, tmp_path / "ckpt.pth")
    fields = dict(img_size=SIDE, patch_size=PATCH, depth=DEPTH, embed_dim=D, num_frames=FRAMES)
    fields |= dict(ssm_cfg={"d_state": N_STATE}, bimamba_type="v2", pool_type="cls+avg")
    model = build_videomamba(
        SimpleNamespace(vision_encoder=SimpleNamespace(**fields, pretrained=str(tmp_path / "ckpt.pth")))
    )
    assert model.config.pretrained is None  # the loaded model's config no longer points at the file
    torch.testing.assert_close(
        model.encode(video).pooled, reference_forward(sd, video)[1], atol=1e-4, rtol=1e-4
    )
    with pytest.raises(CheckpointError, match="A_log"):
        build_videomamba({**fields, "ssm_cfg": {"d_state": 8}, "pretrained": str(tmp_path / "ckpt.pth")})
