"""Hybrid JEPA + LM: multi-step targets, loss weights, masks per modality, the mixture, stages,
exact resume, checkpoint files and the C++ export of a run."""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mambajepa.cli import main
from mambajepa.config import load_config, resolve_recipe
from mambajepa.core import checkpoint as ck
from mambajepa.core.errors import ConfigError
from mambajepa.data.mixture import IMAGE_CODE_PROMPT, MultimodalDataset, mixture_weights
from mambajepa.data.shapes_program import parse_program
from mambajepa.eval.hybrid import evaluate_hybrid, format_hybrid_table
from mambajepa.io.export import read_cpp
from mambajepa.methods.hybrid import HybridMethod, hybrid_loss, multi_step_pairs
from mambajepa.train.trainer import Trainer, run_training, seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from interrupt import interrupt_after  # noqa: E402

TINY = {
    "method": "hybrid",
    "name": "hybrid_tiny",
    "vision": {"name": "vit_tiny_patch4", "img_size": 32, "num_frames": 1, "tubelet_size": 1, "embed_dim": 32,
               "depth": 1, "num_heads": 2, "pos_embed": "sincos"},
    "model": {"d_model": 32, "n_layer": 2, "d_state": 8, "headdim": 16, "max_length": 64},
    "tokenizer": {"vocab_size": 300, "corpus_items": 60},
    "data": {"name": "multimodal_mixture", "n_train": 400, "n_val": 8, "n_test": 64, "code_files": 6,
             "code_chars": 200},
    "train": {"max_tokens": 6000, "batch_size": 4, "warmup_steps": 0, "eval_every": 0, "progress": False,
              "plots": False, "checkpoint_every": 2, "log_every": 1},
    "stages": [
        {"name": "jepa", "fraction": 0.4, "loss_weights": {"jepa": 1.0, "lm": 0.0}, "lr": 3e-3},
        {"name": "lm", "fraction": 0.3, "loss_weights": {"jepa": 0.0, "lm": 1.0}, "lr": 1e-3,
         "data": {"weights": {"code": 4.0, "text": 1.0}}},
        {"name": "hybrid", "fraction": 0.2, "lr": 5e-4},
        {"name": "instruction", "fraction": 0.1, "loss_weights": {"jepa": 0.0, "lm": 1.0}, "lr": 1e-4,
         "data": {"weights": {"qa": 1.0, "edit": 1.0}}},
    ],
}  # fmt: skip


def tiny(*overrides: str):
    return load_config(TINY, list(overrides))


@pytest.fixture(scope="module")
def method_and_config():
    cfg = tiny()
    seed_everything(0)
    return HybridMethod.from_config(cfg), cfg


def batch_of(method, cfg, indices, seed=0):
    data = method.build_data(cfg).train
    return method.collate([data[i] for i in indices], torch.Generator().manual_seed(seed))


def _indices(data, source, n):
    return [i for i in range(len(data)) if data.source_of(i) == source][:n]


# -- the mixture ---------------------------------------------------------------------------------


def test_mixture_sampling_follows_the_weights_and_is_deterministic():
    data = MultimodalDataset("train", {"code": 1.0, "text": 2.0, "qa": 1.0}, num_items=4000, code_files=4)
    counts = collections.Counter(data.source_of(i) for i in range(4000))
    assert set(counts) == {"code", "text", "qa"}
    for source, weight in {"code": 0.25, "text": 0.5, "qa": 0.25}.items():
        assert abs(counts[source] / 4000 - weight) < 0.03  # 4.4 binomial standard deviations
    again = MultimodalDataset("train", {"code": 1.0, "text": 2.0, "qa": 1.0}, num_items=4000, code_files=4)
    for i in (0, 7, 123):
        a, b = data[i], again[i]
        assert a["source"] == b["source"] and a["prompt"] == b["prompt"] and a["text"] == b["text"]
    image_code = MultimodalDataset("test", {"image_code": 1.0}, num_items=8)
    item = image_code[3]
    assert item["prompt"] == IMAGE_CODE_PROMPT and item["image"].shape == (3, 32, 32)
    assert parse_program(item["text"]).objects[0].shape == image_code.scene(3).objects[0].shape
    with pytest.raises(ConfigError, match="unknown mixture sources"):
        mixture_weights({"poetry": 1.0})
    with pytest.raises(ConfigError, match="no positive weight"):
        mixture_weights({"code": 0.0})


# -- masks -----------------------------------------------------------------------------------------


def test_masks_of_each_modality(method_and_config):
    method, cfg = method_and_config
    data = method.build_data(cfg).train
    code = _indices(data, "code", 2)
    qa = _indices(data, "qa", 2)
    batch = batch_of(method, cfg, code + qa)
    # language (no image): the random 15 % of the tokens
    for b in range(2):
        n = int(batch.text_valid[b].sum())
        assert int(batch.text_mask[b].sum()) == min(max(int(0.15 * n), 1), n - 1)
    # vision: whole 16 x 16-pixel blocks (4 x 4 patches of 4 px) of the 8 x 8 grid; one of four blocks
    assert batch.vision_masked.shape == (2, 64) and batch.vision_keep.shape == (2, 48)
    for row, keep in zip(batch.vision_masked, batch.vision_keep):
        grid = row.view(8, 8)
        blocks = grid.view(2, 4, 2, 4).permute(0, 2, 1, 3).reshape(4, 16)
        assert sorted(blocks.sum(1).tolist()) == [0, 0, 0, 16]
        assert not row[keep].any()
    # joint sequences longer than one span: contiguous spans of 32 tokens
    long = {"source": "qa", "image": torch.zeros(3, 32, 32), "prompt": "", "text": "a b c d e f g " * 20}
    joint = method.collate([long], torch.Generator().manual_seed(1))
    hidden = joint.text_mask[0].nonzero().flatten()
    assert len(hidden) == 32 and torch.equal(hidden, torch.arange(int(hidden[0]), int(hidden[0]) + 32))


def test_masked_patches_never_reach_the_vit(method_and_config):
    method, cfg = method_and_config
    data = method.build_data(cfg).train
    batch = batch_of(method, cfg, _indices(data, "qa", 2))
    enc = method.model.encoder
    x = enc.inputs(batch.images, batch.has_image, batch.ids, batch.vision_keep, batch.text_mask)
    changed = batch.images.clone()
    pixels = batch.vision_masked[0].view(8, 8).repeat_interleave(4, 0).repeat_interleave(4, 1)  # (32, 32)
    changed[0, :, pixels] = torch.rand_like(changed[0, :, pixels])
    y = enc.inputs(changed, batch.has_image, batch.ids, batch.vision_keep, batch.text_mask)
    torch.testing.assert_close(x, y)
    assert not torch.allclose(
        enc.inputs(changed, batch.has_image, batch.ids), enc.inputs(batch.images, batch.has_image, batch.ids)
    )


# -- multi-step JEPA heads and the loss ------------------------------------------------------------


def test_multi_step_pairs_line_up_positions_t_and_t_plus_k():
    valid = torch.tensor([[True] * 6 + [False] * 2])
    masked = torch.tensor([[False, False, True, False, True, True, False, False]])
    assert multi_step_pairs(valid, masked, 1).nonzero()[:, 1].tolist() == [1, 3, 4]  # t + 1 in {2, 4, 5}
    assert multi_step_pairs(valid, masked, 2).nonzero()[:, 1].tolist() == [0, 2, 3]  # t + 2 in {2, 4, 5}
    with pytest.raises(ConfigError, match="prediction step"):
        multi_step_pairs(valid, masked, 8)


def test_sub_head_k_predicts_the_target_embedding_k_positions_ahead(method_and_config):
    method, cfg = method_and_config
    data = method.build_data(cfg).train
    batch = batch_of(method, cfg, _indices(data, "code", 2) + _indices(data, "qa", 2))
    out = method.forward_outputs(batch, jepa=True, lm=False)
    model, enc = method.model, method.model.encoder
    target = model.target_encoder.target
    with torch.no_grad():
        h = target(target.inputs(batch.images, batch.has_image, batch.ids))
        h = F.layer_norm(h, h.shape[-1:])
        online = enc(enc.inputs(batch.images, batch.has_image, batch.ids, batch.vision_keep, batch.text_mask))
    valid, masked = method.valid_positions(batch), method.masked_positions(batch)
    assert len(out["predicted_emb"]) == 3
    for k in (1, 2, 3):
        expected_pred, expected_target = [], []
        for b in range(valid.shape[0]):
            for t in range(valid.shape[1] - k):
                if valid[b, t] and valid[b, t + k] and masked[b, t + k]:
                    expected_pred.append(model.jepa_head[k - 1](online[b, t]))
                    expected_target.append(h[b, t + k])
        torch.testing.assert_close(out["predicted_emb"][k - 1].detach(), torch.stack(expected_pred))
        torch.testing.assert_close(out["target_emb"][k - 1], torch.stack(expected_target))


def test_hybrid_loss_weights():
    torch.manual_seed(0)
    pred = [torch.randn(5, 4), torch.randn(3, 4), torch.zeros(0, 4)]
    target = [torch.randn(5, 4), torch.randn(3, 4), torch.zeros(0, 4)]
    logits, tokens = torch.randn(2, 6, 11), torch.randint(0, 11, (2, 6))
    tokens[0, :2] = -100
    outputs = {"predicted_emb": pred, "target_emb": target, "step_weights": [1.0, 0.8, 0.6], "logits": logits}
    got = hybrid_loss(outputs, {"target_tokens": tokens}, alpha=0.3, beta=0.7)
    mse = [((p - t) ** 2).mean() for p, t in zip(pred[:2], target[:2])]
    jepa = (1.0 * mse[0] + 0.8 * mse[1]) / 1.8  # the third sub-head has no pairs and is left out
    keep = tokens.flatten() != -100
    lm = F.cross_entropy(logits.reshape(-1, 11)[keep], tokens.flatten()[keep])
    torch.testing.assert_close(got["jepa_loss"], jepa)
    torch.testing.assert_close(got["lm_loss"], lm)
    torch.testing.assert_close(got["total_loss"], 0.3 * jepa + 0.7 * lm)
    only_jepa = hybrid_loss({**outputs, "logits": None}, {"target_tokens": tokens}, alpha=1.0, beta=0.0)
    torch.testing.assert_close(only_jepa["total_loss"], jepa)


def test_stage_weights_choose_the_passes(method_and_config):
    method, cfg = method_and_config
    data = method.build_data(cfg).train
    batch = batch_of(method, cfg, _indices(data, "code", 2))
    method.set_stage(0, "jepa", {"jepa": 1.0, "lm": 0.0})
    out = method.training_step(batch, 0)
    assert float(out.metrics["lm_loss"]) == 0.0 and float(out.metrics["jepa_loss"]) > 0
    method.set_stage(2, "hybrid", {})  # the loss section's alpha 0.3 and beta 0.7
    assert method.loss_weights == {"jepa": 0.3, "lm": 0.7}
    out = method.training_step(batch, 0)
    torch.testing.assert_close(out.loss, 0.3 * out.metrics["jepa_loss"] + 0.7 * out.metrics["lm_loss"])
    with pytest.raises(ConfigError, match="not loss terms"):
        method.set_stage(0, "x", {"mtp": 1.0})


# -- training: stages by tokens, exact resume, checkpoint files, export, evaluation ----------------


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("hybrid") / "run"
    run_training(tiny(), run_dir)
    return run_dir


def test_stages_switch_at_their_token_counts(trained):
    records = [r for r in _records(trained) if "stage" in r and "tokens_seen" in r]
    names = [r["stage"] for r in records]
    assert [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n] == [
        "jepa",
        "lm",
        "hybrid",
        "instruction",
    ]
    budget, ends = 6000, {"jepa": 0.4, "lm": 0.7, "hybrid": 0.9, "instruction": 1.0}
    for prev, cur in zip(records, records[1:]):
        if prev["stage"] != cur["stage"]:  # the last update of a stage crossed its share of the budget
            assert prev["tokens_seen"] >= round(ends[prev["stage"]] * budget) > prev["tokens_seen"] - 2000
    jepa_rows = [r for r in records if r["stage"] == "jepa"]
    assert all(r["lm_loss"] == 0 and r["jepa_loss"] > 0 for r in jepa_rows)
    state = ck.read_trainer_state(ck.list_checkpoints(trained / "checkpoints")[-1])
    assert state["tokens_seen"] >= budget and state["stage_name"] == "instruction"


def test_every_checkpoint_holds_the_tokenizer_checksummed(trained):
    for ckpt in ck.list_checkpoints(trained / "checkpoints"):
        assert (ckpt / "tokenizer.json").is_file()
        assert "tokenizer.json" in ck.read_trainer_state(ckpt)["files"]
    ck.verify_checkpoint(ck.list_checkpoints(trained / "checkpoints")[-1])


def test_resume_mid_stage_is_exact(tmp_path, trained):
    cfg = tiny()
    seed_everything(cfg.train.seed)
    partial = tmp_path / "partial"
    interrupt_after(Trainer(HybridMethod.from_config(cfg), cfg, partial), 4)
    run_training(cfg, partial, resume="auto")
    full = ck.load_checkpoint_weights(ck.list_checkpoints(trained / "checkpoints")[-1])
    resumed = ck.load_checkpoint_weights(ck.list_checkpoints(partial / "checkpoints")[-1])
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


def test_cpp_export_of_a_hybrid_run_reads_back_equal(tmp_path, trained):
    assert main(["export", str(trained), "--format", "cpp", "--out", str(tmp_path / "cpp")]) == 0
    back = read_cpp(tmp_path / "cpp")
    weights = ck.load_checkpoint_weights(ck.list_checkpoints(trained / "checkpoints")[-1])
    assert back.keys() == weights.keys()
    assert all(torch.equal(back[k], v) for k, v in weights.items())


def test_evaluation_writes_every_measurement(trained):
    from mambajepa.eval.runs import load_run

    run = load_run(trained)
    results = evaluate_hybrid(run.method, run.config, n_items=3, max_new_tokens=8, max_files=2)
    code = results["perplexity"]["held_out_code"]
    assert code["model"] > 1 and code["ngram"] > 1 and code["tokens"] > 0
    assert set(results["jepa_mse"]) == {"k1", "k2", "k3"}
    ic = results["image_to_code"]
    assert ic["n"] == 3 and 0 <= ic["exec_accuracy"] <= 1 and set(ic["without_image"]) >= {"exec_accuracy"}
    assert results["edit"]["n"] == 3 and results["qa"]["n"] == 3
    assert "image->code exec accuracy" in format_hybrid_table(results)


def test_recipes_load():
    cpu = load_config(resolve_recipe("hybrid_shapes_code"))
    assert [s.fraction for s in cpu.stages] == [0.4, 0.3, 0.2, 0.1]
    assert [s.loss_weights for s in cpu.stages] == [
        {"jepa": 1.0, "lm": 0.0}, {"jepa": 0.0, "lm": 1.0}, {"jepa": 0.3, "lm": 0.7}, {"jepa": 0.0, "lm": 1.0}
    ]  # fmt: skip
    assert cpu.jepa.step_weights == [1.0, 0.8, 0.6] and cpu.model.tie_embeddings is False


def _write_user_shards(root: Path) -> list[str]:
    from PIL import Image

    (root / "images").mkdir(parents=True)
    code = [{"text": f"def f{i}(x):\n    return x * {i} + 1\n"} for i in range(20)]
    text = [{"text": f"Chapter {i}: state-space models scan sequences in linear time."} for i in range(20)]
    pairs, instructions = [], []
    for i in range(6):
        Image.fromarray(torch.randint(0, 256, (40, 40, 3), dtype=torch.uint8).numpy()).save(
            root / "images" / f"{i}.png"
        )
        pairs.append({"image": f"images/{i}.png", "caption": f"plt.plot(range({i}))"})
        instructions.append({"prompt": f"add {i} and 1", "response": str(i + 1)})
    for name, rows in (("code", code), ("text", text), ("pairs", pairs), ("instructions", instructions)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [
        f"--data.code_jsonl=[{root / 'code.jsonl'}]",
        f"--data.text_jsonl=[{root / 'text.jsonl'}]",
        f"--data.image_text_manifest={root / 'pairs.jsonl'}",
        f"--data.instructions_jsonl=[{root / 'instructions.jsonl'}]",
    ]


def test_full_scale_recipe_loads_and_trains_on_files_in_its_formats(tmp_path):
    cfg = load_config(resolve_recipe("hybrid_base"))
    assert (
        cfg.model.max_length == 4096
        and cfg.tokenizer.vocab_size == 50000
        and cfg.model.tie_embeddings is False
    )
    assert (cfg.train.batch_size, cfg.train.grad_accum, cfg.train.max_tokens) == (256, 64, 250_000_000_000)
    assert [(s.lr, s.min_lr) for s in cfg.stages] == [(3e-4, 3e-5), (3e-5, 1e-5), (1e-5, 5e-6), (5e-6, 1e-6)]
    shrink = [
        *_write_user_shards(tmp_path / "data"),
        "--vision.img_size=32", "--vision.embed_dim=32", "--vision.depth=1", "--vision.num_heads=2",
        "--data.image_size=32", "--data.n_train=64", "--data.n_val=0", "--data.code_chars=120",
        "--model.d_model=32", "--model.n_layer=1", "--model.d_state=8", "--model.headdim=16", "--model.max_length=48",
        "--tokenizer.vocab_size=300", "--tokenizer.corpus_items=40", "--stages.0.warmup=0",
        "--train.max_tokens=400", "--train.batch_size=2", "--train.grad_accum=1", "--train.num_workers=0",
        "--train.progress=false", "--train.plots=false", "--train.checkpoint_every=0", "--train.eval_every=0",
    ]  # fmt: skip
    cfg = load_config(resolve_recipe("hybrid_base"), shrink)
    data = MultimodalDataset(
        "train", {"image_text": 1.0, "instructions": 1.0}, 8, image_size=32, normalize=True,
        image_text_manifest=str(tmp_path / "data" / "pairs.jsonl"),
        instructions_jsonl=[str(tmp_path / "data" / "instructions.jsonl")],
    )  # fmt: skip
    sources = {data[i]["source"]: data[i] for i in range(8)}
    assert sources["image_text"]["image"].shape == (3, 32, 32) and sources["image_text"]["text"].startswith(
        "plt.plot"
    )
    assert sources["instructions"]["prompt"].startswith("add ")
    summary = run_training(cfg, tmp_path / "run")
    assert summary["stage"] == "instruction" and summary["step"] >= 4
    with pytest.raises(ConfigError, match="have a weight but no files"):
        MultimodalDataset("train", {"image_text": 1.0}, 8)
