"""Safetensors helpers, the C++ export layout round trip, and the ``export`` command."""

import argparse
import json

import numpy as np
import pytest
import torch

from mambajepa.core.errors import CheckpointError
from mambajepa.core.files import load_sharded_state_dict, load_state_dict, save_state_dict
from mambajepa.encoders.vit import VisionTransformer, ViTConfig
from mambajepa.io import commands
from mambajepa.io.export import export_cpp, read_cpp


def small_vit():
    torch.manual_seed(0)
    config = ViTConfig(
        img_size=8, num_frames=2, patch_size=4, embed_dim=24, depth=1, num_heads=2, pos_embed="learned"
    )
    return VisionTransformer(config).eval()


def test_safetensors_round_trip_with_tied_and_strided_tensors(tmp_path):
    base = torch.randn(4, 6)
    state = {"a": base, "tied": base, "t": base.t(), "half": torch.randn(3).half()}
    save_state_dict(state, tmp_path / "w.safetensors")
    loaded = load_state_dict(tmp_path / "w.safetensors")
    assert all(torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in state.items())
    assert not list(tmp_path.glob(".*tmp"))
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_state_dict(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_sharded_state_dict(tmp_path)


def test_cpp_layout_round_trip(tmp_path):
    state = {"w": torch.randn(3, 4, 5), "b": torch.randn(7).double(), "step": torch.tensor([4, 9])}
    meta_path = export_cpp(state, tmp_path / "cpp")
    meta = json.loads(meta_path.read_text())
    assert meta["w"] == {"path": "w.bin", "shape": [3, 4, 5], "dtype": "float32", "source_dtype": "float32"}
    raw = np.fromfile(tmp_path / "cpp" / "w.bin", dtype="<f4")  # what a C++ reader sees
    assert raw.size == 60 and np.array_equal(raw, state["w"].flatten().numpy())
    back = read_cpp(tmp_path / "cpp")
    assert torch.equal(back["w"], state["w"]) and back["step"].dtype == torch.int64
    assert torch.equal(back["step"], state["step"])
    torch.testing.assert_close(back["b"], state["b"].float().double())
    assert read_cpp(tmp_path / "cpp", restore_dtype=False)["b"].dtype == torch.float32
    (tmp_path / "cpp" / "w.bin").write_bytes(b"\x00" * 12)
    with pytest.raises(CheckpointError, match=r"'w'.*12 bytes, expected 240"):
        read_cpp(tmp_path / "cpp")
    with pytest.raises(CheckpointError, match="file name"):
        export_cpp({"a/b": torch.zeros(1)}, tmp_path / "x")


def _run(argv):
    parser = argparse.ArgumentParser()
    commands.configure(parser)
    return commands.run(parser.parse_args(argv))


def test_export_command_from_pretrained_folder(tmp_path, capsys):
    model = small_vit()
    model.save_pretrained(tmp_path / "pre")
    assert _run([str(tmp_path / "pre"), "--format", "cpp", "--out", str(tmp_path / "cpp")]) == 0
    back = read_cpp(tmp_path / "cpp")
    assert back.keys() == model.state_dict().keys()
    rebuilt = small_vit()
    with torch.no_grad():
        for p in rebuilt.parameters():
            p.zero_()
    rebuilt.load_state_dict(back)
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(rebuilt(x), model(x))
    assert _run([str(tmp_path / "pre"), "--out", str(tmp_path / "st")]) == 0
    assert torch.equal(VisionTransformer.from_pretrained(tmp_path / "st")(x), model(x))
    assert (
        _run([str(tmp_path / "pre"), "--out", str(tmp_path / "one.safetensors"), "--prefix", "blocks.0."])
        == 0
    )
    assert set(load_state_dict(tmp_path / "one.safetensors")) == {
        k.removeprefix("blocks.0.") for k in model.state_dict() if k.startswith("blocks.0.")
    }
    assert "exported" in capsys.readouterr().out


def test_export_command_from_preset_and_errors(tmp_path, capsys):
    assert _run(["vit_tiny_patch4", "--format", "cpp", "--out", str(tmp_path / "cpp")]) == 0
    meta = json.loads((tmp_path / "cpp" / "metadata.json").read_text())
    assert meta["patch_embed.proj.weight"]["shape"] == [192, 3, 2, 4, 4]
    assert _run(["vit_tiny_patch", "--out", str(tmp_path / "x")]) == 1
    assert "did you mean 'vit_tiny_patch4'" in capsys.readouterr().err
    small_vit().save_pretrained(tmp_path / "pre")
    assert _run([str(tmp_path / "pre"), "--out", str(tmp_path / "y"), "--prefix", "nothing."]) == 1


def test_export_command_from_run_directory(tmp_path):
    from mambajepa.core.checkpoint import save_checkpoint

    model = small_vit()
    state = {f"encoder.{k}": v for k, v in model.state_dict().items()}
    save_checkpoint(
        tmp_path / "run" / "checkpoints",
        1,
        {k: torch.zeros_like(v) for k, v in state.items()},
        None,
        {"step": 1},
        "",
    )
    save_checkpoint(tmp_path / "run" / "checkpoints", 5, state, None, {"step": 5}, "")
    assert (
        _run([str(tmp_path / "run"), "--format", "cpp", "--prefix", "encoder.", "--out", str(tmp_path / "c")])
        == 0
    )
    back = read_cpp(tmp_path / "c")
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())
    assert _run([str(tmp_path / "empty_run"), "--out", str(tmp_path / "d")]) == 1
