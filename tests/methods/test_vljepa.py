"""Mamba3-JEPA model and the ``vljepa`` method: the frozen X-encoder, the loss, the stages, files, bad inputs."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch

from mambajepa.config import load_config, resolve_recipe
from mambajepa.core.errors import CheckpointError, ConfigError, DataError, ShapeError
from mambajepa.data.tokenizers import ByteTokenizer
from mambajepa.eval.vljepa import evaluate_vljepa
from mambajepa.losses.infonce import info_nce
from mambajepa.methods.vljepa.method import VLJEPA, VLCollate, item_texts, model_from_run
from mambajepa.methods.vljepa.model import Mamba3Jepa, Mamba3JepaConfig, target_groups
from mambajepa.train.trainer import run_training

TINY_RUN = {
    "method": "vljepa",
    "name": "vljepa_unit",
    "x_encoder": {"name": "vit_tiny_patch4", "img_size": 16, "patch_size": 4, "num_frames": 1, "tubelet_size": 1,
                  "embed_dim": 32, "depth": 1, "num_heads": 2},
    "predictor": {"d_model": 32, "n_layers": 1, "embed_dim": 16, "visual_pool": 2},
    "y_encoder": {"d_model": 32, "n_layers": 1, "embed_dim": 16},
    "y_decoder": {"d_model": 32, "n_layers": 1, "embed_dim": 16, "prefix_len": 2},
    "tokenizer": {"kind": "byte"},
    "data": {"name": "shapes_vl", "image_size": 16, "normalize": True, "n_train": 64, "n_val": 0, "n_test": 16},
    "stages": [
        {"name": "captioning", "steps": 2, "lr": 1e-3, "warmup": 0, "data": {"task": "caption"}},
        {"name": "sft", "steps": 2, "lr": 1e-3, "warmup": 0, "data": {"task": "vqa"}},
    ],
    "train": {"batch_size": 8, "eval_every": 0, "progress": False, "plots": False, "checkpoint_every": 0,
              "log_every": 1, "device": "cpu"},
}  # fmt: skip


@pytest.fixture
def model() -> Mamba3Jepa:
    torch.manual_seed(0)
    return Mamba3Jepa(Mamba3JepaConfig.tiny())


def batch(model: Mamba3Jepa, n: int = 4, targets: list[str] | None = None):
    images = torch.randn(n, 3, 16, 16)
    q_ids, q_mask = model.tokenize(["what colour is it?"] * n)
    t_ids, t_mask = model.tokenize(targets or [f"a {w} square" for w in ("red", "green", "blue", "pink")[:n]])
    return images, q_ids, t_ids, q_mask, t_mask


def test_frozen_x_encoder_gets_no_gradient_and_stays_in_eval_mode(model):
    before = copy.deepcopy(model.x_encoder.state_dict())
    model.train()
    assert not model.x_encoder.training and model.predictor.training
    out = model.train_forward(*batch(model))
    out.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.x_encoder.parameters())
    assert all(p.grad is not None for p in model.predictor.parameters())
    assert model.num_trainable_parameters() == sum(
        p.numel() for name, p in model.named_parameters() if not name.startswith("x_encoder.")
    )
    for key, value in model.x_encoder.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_loss_is_infonce_plus_weighted_decoder_ce_and_the_decoder_reads_a_detached_embedding(model):
    images, q_ids, t_ids, q_mask, t_mask = batch(model)
    out = model.train_forward(images, q_ids, t_ids, q_mask, t_mask, decoder_weight=0.5)
    reference = info_nce(out.predicted, out.target, 0.07)
    torch.testing.assert_close(out.infonce, reference)
    torch.testing.assert_close(out.loss, out.infonce + 0.5 * out.decoder_loss)
    out.decoder_loss.backward()  # the decoder's loss alone trains the decoder, not the predictor
    assert all(p.grad is None for p in model.predictor.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.y_decoder.parameters())


def test_target_groups_are_padding_invariant_and_tell_texts_apart(model):
    ids, mask = model.tokenize(["red", "a green star", "red", "blue"])
    groups = target_groups(ids, mask)
    assert groups[0] == groups[2] and len(set(groups.tolist())) == 3
    longer_ids = torch.cat([ids, torch.full((4, 5), 7)], dim=1)  # more padding, other pad values
    longer_mask = torch.cat([mask, torch.zeros(4, 5, dtype=mask.dtype)], dim=1)
    assert torch.equal(target_groups(longer_ids, longer_mask), groups)
    swapped, swapped_mask = model.tokenize(["der", "a green star", "red", "blue"])
    assert target_groups(swapped, swapped_mask)[0] != groups[0]  # order of tokens matters


def test_same_target_negatives_false_masks_rows_with_the_same_answer():
    torch.manual_seed(0)
    model = Mamba3Jepa(Mamba3JepaConfig(same_target_negatives=False))
    inputs = batch(model, targets=["red", "blue", "red", "green"])
    out = model.train_forward(*inputs)
    groups = torch.tensor([0, 1, 0, 2])
    torch.testing.assert_close(out.infonce, info_nce(out.predicted, out.target, 0.07, groups=groups))
    assert not torch.allclose(out.infonce, info_nce(out.predicted, out.target, 0.07))


def test_save_and_load_round_trip_with_and_without_the_x_encoder(model, tmp_path):
    images = torch.randn(2, 3, 16, 16)
    expected = model.eval().embed(images, ["what shape?", ""])
    loaded = Mamba3Jepa.from_pretrained(model.save_pretrained(tmp_path / "full"))
    torch.testing.assert_close(loaded.embed(images, ["what shape?", ""]), expected, rtol=0, atol=0)
    assert loaded.decode(expected, 4) == model.decode(expected, 4)
    model.save_pretrained(tmp_path / "light", include_x_encoder=False)
    given = Mamba3Jepa.from_pretrained(tmp_path / "light", x_encoder=copy.deepcopy(model.x_encoder))
    torch.testing.assert_close(given.embed(images), model.embed(images), rtol=0, atol=0)
    with pytest.warns(UserWarning, match="holds no X-encoder"):
        Mamba3Jepa.from_pretrained(tmp_path / "light")
    with pytest.raises(CheckpointError, match="neither a Mamba3Jepa folder"):
        Mamba3Jepa.from_pretrained(tmp_path)


def test_inference_entry_points(model):
    model.eval()
    image = torch.randn(3, 16, 16)
    emb = model.infer(image, "what colour?", mode="embedding")
    assert emb.shape == (32,) and torch.allclose(emb.norm(), torch.tensor(1.0))
    assert isinstance(model.infer(image, mode="decode", max_tokens=3), str)
    texts = model.embed_text(["a red star", "a blue disc"])
    assert model.classify(emb[None], texts).shape == (1,)
    assert model.retrieve(emb[None], texts, k=5).shape == (1, 2)
    answers = model.answer(image[None].expand(2, -1, -1, -1), ["what colour?", "what shape?"], max_tokens=3)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    with pytest.raises(ConfigError, match="'probe'"):
        model.infer(image, mode="probe")


def test_bad_inputs_get_typed_errors(model):
    with pytest.raises(ConfigError, match="target text 1 is empty"):
        model.embed_text(["a red star", "  "])
    with pytest.raises(DataError, match="empty target text"):
        item_texts({"query": "q", "target": "", "index": 3})
    images, q_ids, t_ids, q_mask, t_mask = batch(model)
    with pytest.raises(ShapeError, match="token id 9999 outside the vocabulary"):
        model.train_forward(images, q_ids, t_ids.index_fill(1, torch.tensor([1]), 9999), q_mask, t_mask)
    with pytest.raises(ShapeError, match=r"images must be \(B, 3, \[T,\] 16, 16\).*\(4, 3, 24, 24\)"):
        model.train_forward(torch.randn(4, 3, 24, 24), q_ids, t_ids, q_mask, t_mask)
    too_long = "why " * model.config.predictor.max_query_len
    with pytest.raises(ConfigError):
        model.embed(torch.randn(1, 3, 16, 16), [too_long])
    collate = VLCollate(ByteTokenizer(), "empty", "", model.config.predictor.max_query_len)
    item = {"image": torch.zeros(3, 16, 16), "query": too_long, "target": "yes"}
    with pytest.raises(DataError, match="max_query_len"):
        collate([item])
    with pytest.raises(ConfigError, match="one string"):
        model.tokenize("a red star")


def test_caption_queries_empty_fixed_and_the_warned_target_option():
    item = {"query": "", "target": "a red star", "task": "caption"}
    assert item_texts(item, "empty") == ("", "a red star")
    assert item_texts(item, "fixed", "describe") == ("describe", "a red star")
    assert item_texts(item, "target") == ("a red star", "a red star")
    assert item_texts({"question": "what?", "answer": "red"}) == ("what?", "red")
    cfg = load_config(TINY_RUN, ["--caption_query=target"])
    with pytest.warns(UserWarning, match="shows the predictor the caption"):
        VLJEPA.from_config(cfg)


def test_param_groups_follow_vl_jepa_and_leave_the_x_encoder_out():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        method = VLJEPA.from_config(load_config(TINY_RUN))
    groups = {g.name: g for g in method.param_groups()}
    assert {name: g.lr_mult for name, g in groups.items()} == {
        "predictor": 1.0,
        "y_encoder": 0.05,
        "y_decoder": 1.0,
    }
    grouped = {id(p) for g in groups.values() for p in g.module.parameters()}
    trainable = {id(p) for p in method.parameters() if p.requires_grad}
    assert grouped == trainable
    assert not grouped & {id(p) for p in method.model.x_encoder.parameters()}
    learnable = VLJEPA.from_config(load_config(TINY_RUN, ["--loss.learnable_temperature=true"]))
    assert [g.name for g in learnable.param_groups()][-1] == "temperature"


def test_two_stages_switch_task_and_keep_the_x_encoder_bit_identical(tmp_path):
    torch.manual_seed(1)
    x_encoder = load_config(TINY_RUN).x_encoder.build()
    x_encoder.save_pretrained(tmp_path / "x_encoder")
    cfg = load_config(TINY_RUN, [f"--x_encoder_weights={tmp_path / 'x_encoder'}"])
    method = VLJEPA.from_config(cfg)
    captions = method.build_data(cfg.stage_config(0))
    sft = method.build_data(cfg.stage_config(1))
    first = captions.collate_fn([captions.train[i] for i in range(4)])
    second = sft.collate_fn([sft.train[i] for i in range(4)])
    assert first.queries == [""] * 4 and all(q.strip() for q in second.queries)
    assert all(len(t.split()) > 3 for t in first.targets) and all(len(t.split()) <= 3 for t in second.targets)

    summary = run_training(cfg, tmp_path / "run")
    assert summary["step"] == 4 and summary["stage"] == "sft"
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    stages = [(r["stage"], r["step_in_stage"]) for r in records if "loss" in r and "stage" in r]
    assert stages == [("captioning", 1), ("captioning", 2), ("sft", 1), ("sft", 2)]
    trained = Mamba3Jepa.from_pretrained(tmp_path / "run")
    for key, value in x_encoder.state_dict().items():
        assert torch.equal(trained.x_encoder.state_dict()[key], value), key
    assert any(
        not torch.equal(trained.predictor.state_dict()[k], v)
        for k, v in method.model.predictor.state_dict().items()
    )


def test_a_trainable_x_encoder_is_an_option_with_its_own_group(tmp_path):
    method = VLJEPA.from_config(load_config(TINY_RUN, ["--x_encoder_lr_mult=0.5"]))
    groups = {g.name: g.lr_mult for g in method.param_groups()}
    assert groups["x_encoder"] == 0.5 and method.frozen_modules() == {}
    model = method.model.train()
    assert model.x_encoder.training
    model.train_forward(*batch(model)).loss.backward()
    assert all(p.grad is not None for p in model.x_encoder.parameters())
    with pytest.raises(ConfigError, match="include_x_encoder=True"):
        model.save_pretrained(tmp_path / "refused", include_x_encoder=False)
    assert not (tmp_path / "refused").exists()  # a refused save leaves nothing behind
    with pytest.raises(ConfigError, match="x_encoder_lr_mult=-1"):
        load_config(TINY_RUN, ["--x_encoder_lr_mult=-1"])


def test_video_recipe_reads_clips_with_the_v_jepa_encoder_and_trains_both_stages(tmp_path):
    cfg = load_config(resolve_recipe("vljepa_video_shapes"))
    assert cfg.x_encoder == load_config(resolve_recipe("vjepa_shapes")).encoder
    assert (
        cfg.data.arguments()["video"]
        and cfg.data.arguments()["num_frames"] == cfg.x_encoder.kwargs["num_frames"]
    )
    shrink = [
        "--data.n_train=32", "--data.n_val=0", "--tokenizer.corpus_items=16", "--tokenizer.vocab_size=300",
        "--x_encoder.depth=1", "--train.batch_size=4", "--train.progress=false", "--train.plots=false",
        *(f"--stages.{i}.{k}={v}" for i in (0, 1) for k, v in dict(steps=1, warmup=0).items()),
    ]  # fmt: skip
    cfg = load_config(resolve_recipe("vljepa_video_shapes"), shrink)
    method = VLJEPA.from_config(cfg)
    sft = method.build_data(cfg.stage_config(1))
    items = [sft.train[i] for i in range(8)]
    assert items[0]["video"].shape == (3, 8, 32, 32)
    summary = run_training(cfg, tmp_path / "run")
    assert summary["step"] == 2 and summary["stage"] == "sft"
    # the evaluation reads clips and scores the motion attributes and direction questions too
    results = evaluate_vljepa(
        model_from_run(tmp_path / "run"), cfg, n_items=8, n_streams=0, measure_latency=False
    )
    assert {"direction", "speed"} <= set(results["zero_shot"]) and results["zero_shot"]["speed"][
        "chance"
    ] == 0.5
    assert "speed" in results["retrieval"]["hit_rule"]
