"""``mambajepa eval vljepa``: the end-to-end command on a tiny run, and the pieces whose answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mambajepa.cli import main
from mambajepa.config import load_config
from mambajepa.data.shapes_render import ShapesConfig, sample_scene
from mambajepa.data.shapes_text import caption
from mambajepa.eval.vljepa import (
    attribute_score,
    evaluate_run,
    evaluate_vljepa,
    format_vljepa_table,
    matched_predictor_config,
    parse_attributes,
    predictor_parameters,
    prompt_ensemble,
    retrieval_chance,
    retrieval_recall,
    segment_threshold,
    text_in_effect,
)
from mambajepa.methods.vljepa.method import VLJEPA
from mambajepa.train.trainer import run_training

TINY = {
    "method": "vljepa",
    "name": "vljepa_eval_tiny",
    "x_encoder": {"name": "vit_tiny_patch4", "img_size": 16, "patch_size": 4, "num_frames": 1, "tubelet_size": 1,
                  "embed_dim": 32, "depth": 1, "num_heads": 2},
    "predictor": {"d_model": 32, "n_layers": 1, "embed_dim": 16, "visual_pool": 2},
    "y_encoder": {"d_model": 32, "n_layers": 1, "embed_dim": 16},
    "y_decoder": {"d_model": 32, "n_layers": 1, "embed_dim": 16, "prefix_len": 2},
    "tokenizer": {"kind": "byte"},
    "data": {"name": "shapes_vl", "image_size": 16, "normalize": True, "n_train": 64, "n_val": 0, "n_test": 64},
    "eval": {"max_tokens": 4, "prompts_per_class": 2, "batch_size": 8},
    "train": {"max_steps": 2, "batch_size": 8, "warmup_steps": 0, "eval_every": 0, "progress": False,
              "plots": False, "checkpoint_every": 0, "device": "cpu"},
}  # fmt: skip

SECTIONS = {
    "zero_shot",
    "retrieval",
    "vqa",
    "selective",
    "latency",
    "parameters",
    "settings",
    "pictures",
    "wall_s",
}
SCHEDULE_KEYS = {"decodes_per_stream", "cut_recall", "cut_precision", "caption_accuracy", "decode_rate"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("vl") / "run"
    run_training(load_config(TINY), run_dir)
    return run_dir


def test_eval_command_writes_every_key_and_the_pictures(tiny_run, capsys):
    assert main(["eval", "vljepa", "--checkpoint", str(tiny_run), "--n-items", "16", "--n-streams", "2"]) == 0
    out = capsys.readouterr().out
    assert (
        "zero-shot mean top-1" in out and "retrieval image->text R@1 (same labels)" in out and "chance" in out
    )

    results = json.loads((tiny_run / "eval.json").read_text())
    assert SECTIONS | {"run", "checkpoint", "wall_s_total"} <= set(results)
    zs = results["zero_shot"]
    assert set(zs) == {"shape", "colour", "size", "position", "texture", "background", "mean"}
    assert zs["shape"]["chance"] == pytest.approx(1 / 6) and zs["position"]["classes"] == 9
    assert all(0.0 <= zs[a]["top1"] <= 1.0 for a in zs)
    for direction in ("image_to_text", "text_to_image"):
        entry = results["retrieval"][direction]
        assert set(entry) == {"r1", "r5", "chance_r1", "chance_r5"}
        assert entry["r1"] <= entry["r5"] and entry["chance_r1"] <= entry["chance_r5"]
    assert all(k in results["retrieval"]["hit_rule"] for k in ("shape", "colour", "position", "background"))
    vqa = results["vqa"]
    assert vqa["n"] == 16 and {"exact_match", "by_embedding", "chance", "per_type"} <= set(vqa)
    assert sum(v["n"] for v in vqa["per_type"].values()) == 16
    sel = results["selective"]
    assert sel["n_streams"] == 2 and sel["signal"] in ("embeddings", "states") and sel["segment_rule"]
    for key in ("drift", "drift_states", "drift_embeddings", "segments", "uniform", "every_frame"):
        assert SCHEDULE_KEYS <= set(sel[key]), key
    assert sel["every_frame"]["decodes_per_stream"] == 64 and sel["every_frame"]["cut_recall"] == 1.0
    assert [p["every"] for p in sel["rate_accuracy"]] == [1, 2, 4, 8, 16]
    assert results["latency"]["embed_ms"] > 0 and results["latency"]["decode_ms"] > 0
    for name in ("answers.png", "retrieval.png", "stream.png"):
        assert (tiny_run / "pictures" / name).stat().st_size > 1000

    table = format_vljepa_table(results, {"other": results, "skipped_one": {"skipped": "why"}})
    assert table.splitlines()[0].split() == ["metric", "ours", "other", "chance"]


def test_an_oracle_predictor_retrieves_perfectly(tiny_run, monkeypatch):
    """Predicted embeddings equal to the Y-encoder embeddings of the items' own captions: R@1 = 1."""
    from mambajepa.eval.runs import load_run
    from mambajepa.registry import build_dataset

    run = load_run(tiny_run)
    model, config = run.method.model, run.config
    data = build_dataset("shapes_vl", split="test", **{**config.data.kwargs, "task": "caption"})
    captions = {data[i]["image"].numpy().tobytes(): data[i]["target"] for i in range(16)}

    def oracle(images, queries=None):
        return model.embed_text([captions[image.numpy().tobytes()] for image in images])

    monkeypatch.setattr(model, "embed", oracle)
    results = evaluate_vljepa(model, config, n_items=16, n_streams=0, measure_latency=False)
    for direction in ("image_to_text", "text_to_image"):
        assert results["retrieval"][direction]["r1"] == 1.0
    assert "skipped" in results["selective"]


def test_attribute_parser_reads_synonyms_longest_phrase_first():
    parsed = parse_attributes("A tiny hollow Crimson disc in the lower-right on a dark blue background")
    assert parsed == {"size": 0, "texture": 1, "colour": 0, "shape": 0, "position": 8, "background": 2}
    parsed = parse_attributes("top-left: medium-sized azure rhombus (chequered) on a gray background")
    assert parsed == {"position": 0, "size": 1, "colour": 5, "shape": 3, "texture": 3, "background": 1}
    # "five-pointed star" is one phrase; "right" after "moving" is a direction, else a position
    parsed = parse_attributes(
        "a five-pointed star, big and stripy, at the middle right, moving right fast on a dark brown background"
    )  # noqa: E501
    assert parsed == {
        "shape": 5,
        "size": 2,
        "texture": 2,
        "position": 5,
        "direction": 0,
        "speed": 1,
        "background": 3,
    }
    assert parse_attributes("a cross in the right, moving left") == {
        "shape": 4,
        "position": 5,
        "direction": 1,
    }
    assert parse_attributes("") == {} and parse_attributes("boxes mediums") == {}

    labels = {"shape": 0, "colour": 0, "size": 0, "texture": 1, "background": 2}
    assert attribute_score("a tiny hollow red circle on a navy background", labels) == 1.0
    assert attribute_score("a tiny hollow red square", labels) == pytest.approx(3 / 5)


@pytest.mark.parametrize("video", [False, True])
def test_attribute_parser_recovers_the_labels_of_generated_captions(video):
    rng = np.random.default_rng(0)
    keys = ["shape", "colour", "size", "position", "texture", "background"] + (
        ["direction", "speed"] if video else []
    )
    for _ in range(300):
        scene = sample_scene(rng, ShapesConfig())
        labels = scene.labels()
        parsed = parse_attributes(caption(scene, rng, video=video))
        assert {k: parsed.get(k) for k in keys} == {k: labels[k] for k in keys}


def test_prompt_ensemble_captions_name_their_class():
    prompts = prompt_ensemble("colour", 5, seed=3)
    assert len(prompts) == 8 and all(len(p) == 5 for p in prompts)
    for cls, per_class in enumerate(prompts):
        assert all(parse_attributes(p)["colour"] == cls for p in per_class)
    assert prompt_ensemble("colour", 5, seed=3) == prompts  # deterministic


def test_retrieval_counts_any_item_with_the_same_labels_as_a_hit():
    # items 0 and 1 show the same scene labels; 2 and 3 are unique
    keys = torch.tensor([[0, 0], [0, 0], [1, 2], [3, 4]])
    gallery = F.normalize(torch.eye(4), dim=-1)
    queries = torch.stack(
        [
            gallery[1],  # query 0 is nearest to item 1, its duplicate: a hit at rank 1
            gallery[1],  # query 1 is nearest to itself
            0.9 * gallery[3] + 0.1 * gallery[2],  # query 2 ranks item 3 first (miss), itself second
            gallery[3],  # query 3: itself
        ]
    )
    recall = retrieval_recall(queries, gallery, keys, keys, (1, 2, 5))
    assert recall == {1: 0.75, 2: 1.0, 5: 1.0}
    # a random ranking of 4 items: 2 matches for queries 0, 1 and one for 2, 3
    assert retrieval_chance(keys, keys, 1) == pytest.approx((0.5 + 0.5 + 0.25 + 0.25) / 4)
    assert retrieval_chance(keys, keys, 4) == 1.0


def test_text_in_effect_and_segment_threshold():
    assert text_in_effect([2, 5], 7) == [None, None, 2, 2, 2, 5, 5]
    # two flat scenes: the threshold lies between the within-scene and the cut distances
    emb = torch.cat([torch.tensor([[1.0, 0.0]]).repeat(5, 1), torch.tensor([[0.0, 1.0]]).repeat(5, 1)])
    emb = emb + 0.01 * torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    threshold = segment_threshold(emb)
    assert 0.05 < threshold < 0.95


@pytest.mark.parametrize("mixer", ["transformer", "mamba2"])
@pytest.mark.parametrize("source", ["recipe", "tiny"])
def test_matched_predictor_config_is_within_15_percent(mixer, source):
    cfg = load_config("configs/vljepa_shapes.yaml") if source == "recipe" else load_config(TINY)
    matched = matched_predictor_config(cfg, mixer)
    assert matched.predictor.mixer == mixer and cfg.predictor.mixer == "mamba3"
    ours, theirs = predictor_parameters(cfg), predictor_parameters(matched)
    assert abs(theirs - ours) <= 0.15 * ours
    # the count is that of the predictor a method really builds
    if source == "tiny":
        built = VLJEPA.from_config(matched).model.predictor
        assert sum(p.numel() for p in built.parameters()) == theirs


def test_baselines_are_trained_beside_the_run_and_evaluated(tiny_run, tmp_path):
    results, out = evaluate_run(
        tiny_run, n_items=8, n_streams=1, baselines=True, pictures=False, out=tmp_path / "e.json"
    )
    assert out == tmp_path / "e.json" and json.loads(out.read_text())["baselines"].keys() == {
        "random_init",
        "transformer_predictor",
    }
    # the tiny run's X-encoder is random-init already; a transformer predictor cannot stream
    assert "x_encoder_weights: null" in results["baselines"]["random_init"]["skipped"]
    transformer = results["baselines"]["transformer_predictor"]
    assert transformer["parameters"]["predictor_mixer"] == "transformer"
    assert (tiny_run / "baselines" / "transformer_predictor" / "checkpoints").is_dir()
    assert "skipped" in transformer["selective"] and "zero_shot" in transformer
    table = format_vljepa_table(results, results["baselines"])
    assert table.splitlines()[0].split() == ["metric", "ours", "transformer_predictor", "chance"]
