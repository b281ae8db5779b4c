"""V-JEPA 2 weights: Hugging Face folder and official .pt layout give the peer's features."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from mambajepa.core.errors import CheckpointError, ConfigError  # noqa: E402
from mambajepa.io.vjepa2 import load_vjepa2  # noqa: E402


def official_keys(hf_state):
    """Rewrite a Hugging Face encoder state dict into the official names (qkv merged)."""
    out = {}
    for key, value in hf_state.items():
        if not key.startswith("encoder."):
            continue
        new = (
            key.replace("encoder.embeddings.patch_embeddings.", "patch_embed.")
            .replace("encoder.layer.", "blocks.")
            .replace("encoder.layernorm.", "norm.")
            .replace(".attention.", ".attn.")
        )
        if ".attn.query." in new:
            leaf = new.rsplit(".", 1)[1]
            base = new.split(".attn.")[0]
            parts = [hf_state[key.replace(".query.", f".{p}.")] for p in ("query", "key", "value")]
            out[f"{base}.attn.qkv.{leaf}"] = torch.cat(parts)
        elif ".attn.key." in new or ".attn.value." in new:
            continue
        else:
            out[new] = value
    return out


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.VJEPA2Config(
        hidden_size=72,
        num_hidden_layers=2,
        num_attention_heads=3,  # head width 24: 3 axes × 8 rotated channels
        crop_size=32,
        patch_size=8,
        frames_per_clip=4,
        tubelet_size=2,
        pred_hidden_size=24,
        pred_num_hidden_layers=1,
        pred_num_attention_heads=2,
        pred_num_mask_tokens=2,
    )
    model = transformers.VJEPA2Model(config).eval()
    with torch.no_grad():  # larger weights than the 0.02 init, so positions visibly matter
        for name, param in model.named_parameters():
            if name.startswith("encoder.") and param.ndim >= 2:
                param.normal_(0.0, 0.2)
    folder = tmp_path_factory.mktemp("hf")
    model.save_pretrained(folder)
    video = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))  # (B, C, T, H, W)
    with torch.no_grad():
        features = model.get_vision_features(video.transpose(1, 2))  # the peer takes (B, T, C, H, W)
    return model, folder, video, features


def test_hugging_face_folder_matches_get_vision_features(peer):
    _, folder, video, features = peer
    ours = load_vjepa2(folder)
    assert ours.config.embed_dim == 72 and ours.config.num_heads == 3 and ours.config.img_size == 32
    with torch.no_grad():
        out = ours(video)
    assert out.shape == features.shape
    assert (out - features).abs().max() <= 1e-4
    # Control: the same weights without the quirky RoPE do not match, so the check has teeth.
    plain = load_vjepa2(folder, pos_embed="none")
    with torch.no_grad():
        assert (plain(video) - features).abs().max() > 1e-2


def test_official_pt_file_gives_the_same_features(peer, tmp_path):
    model, _, video, features = peer
    encoder = official_keys(model.state_dict())
    other = {k: torch.randn_like(v) for k, v in encoder.items()}
    blob = {
        "encoder": {f"module.backbone.{k}": v for k, v in other.items()},
        "target_encoder": {f"module.backbone.{k}": v for k, v in encoder.items()},
        "predictor": {"module.backbone.predictor_embed.weight": torch.zeros(2, 2)},
        "epoch": 3,
    }
    path = tmp_path / "vit_tiny.pt"
    torch.save(blob, path)
    ours = load_vjepa2(path, num_heads=3, img_size=32)
    with torch.no_grad():
        assert (ours(video) - features).abs().max() <= 1e-4
        from_encoder = load_vjepa2(path, which="encoder", num_heads=3)
        assert (from_encoder(video) - features).abs().max() > 1e-2
    assert torch.equal(from_encoder.blocks[1].attn.qkv.weight, other["blocks.1.attn.qkv.weight"])


def test_mismatches_are_listed(peer, tmp_path):
    model, _, _, _ = peer
    encoder = official_keys(model.state_dict())
    del encoder["blocks.1.norm2.bias"]
    encoder["blocks.0.attn.extra"] = torch.zeros(3)
    encoder["norm.weight"] = torch.zeros(5)
    path = tmp_path / "broken.pt"
    torch.save({"target_encoder": {f"module.backbone.{k}": v for k, v in encoder.items()}}, path)
    with pytest.raises(CheckpointError) as info:
        load_vjepa2(path, num_heads=3)
    message = str(info.value)
    assert "missing: blocks.1.norm2.bias" in message
    assert "unexpected: blocks.0.attn.extra" in message
    assert "norm.weight: (5,) vs (72,)" in message


def test_bad_files_and_arguments(peer, tmp_path):
    _, folder, _, _ = peer
    path = tmp_path / "only.pt"
    torch.save({"encoder": {}}, path)
    with pytest.raises(CheckpointError, match="no entry 'target_encoder'.*encoder"):
        load_vjepa2(path)
    with pytest.raises(ConfigError, match="which"):
        load_vjepa2(folder, which="predictor")
    with pytest.raises(CheckpointError, match="no V-JEPA 2 checkpoint"):
        load_vjepa2(tmp_path / "absent.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_vjepa2(tmp_path / "garbage.pt")
    weights = {
        "patch_embed.proj.weight": torch.zeros(48, 3, 2, 8, 8),
        "blocks.0.mlp.fc1.weight": torch.zeros(96, 48),
    }
    torch.save({"target_encoder": weights}, tmp_path / "odd.pt")
    with pytest.raises(ConfigError, match="num_heads"):
        load_vjepa2(tmp_path / "odd.pt")


def test_video_classification_folder_loads_its_backbone(tmp_path):
    torch.manual_seed(3)
    config = transformers.VJEPA2Config(
        hidden_size=48,
        num_hidden_layers=1,
        num_attention_heads=2,
        crop_size=32,
        patch_size=8,
        frames_per_clip=4,
        pred_hidden_size=24,
        pred_num_hidden_layers=1,
        pred_num_attention_heads=2,
        pred_num_mask_tokens=2,
        num_pooler_layers=1,
        num_labels=3,
    )
    classifier = transformers.VJEPA2ForVideoClassification(config).eval()
    classifier.save_pretrained(tmp_path)
    video = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        expected = classifier.vjepa2.get_vision_features(video.transpose(1, 2))
        assert (load_vjepa2(tmp_path)(video) - expected).abs().max() <= 1e-4


def test_export_command_converts_vjepa2_checkpoints(peer, tmp_path):
    import argparse

    from mambajepa.encoders.vit import VisionTransformer
    from mambajepa.io import commands
    from mambajepa.io.export import read_cpp

    model, folder, video, features = peer
    encoder = official_keys(model.state_dict())
    torch.save({"target_encoder": {f"module.backbone.{k}": v for k, v in encoder.items()}}, tmp_path / "v.pt")
    parser = argparse.ArgumentParser()
    commands.configure(parser)
    argv = [str(tmp_path / "v.pt"), "--num-heads", "3", "--out", str(tmp_path / "converted")]
    assert commands.run(parser.parse_args(argv)) == 0
    converted = VisionTransformer.from_pretrained(tmp_path / "converted")
    with torch.no_grad():
        assert (converted(video) - features).abs().max() <= 1e-4
    assert (
        commands.run(parser.parse_args([str(folder), "--format", "cpp", "--out", str(tmp_path / "cpp")])) == 0
    )
    assert torch.equal(
        read_cpp(tmp_path / "cpp")["blocks.0.attn.qkv.weight"], encoder["blocks.0.attn.qkv.weight"]
    )
