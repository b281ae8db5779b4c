"""Closest-name suggestions: section first, then the last dotted component, abbreviations."""

from __future__ import annotations

import pytest

from mambajepa.core.names import ABBREVIATION_SCORE, closest, did_you_mean, similarity

PATHS = [
    "method",
    "train",
    "train.max_steps",
    "train.lr",
    "train.lr_schedule",
    "train.eval_batches",
    "train.warmup_steps",
    "model",
    "model.hidden",
    "data",
    "data.hidden",
    "data.noise",
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("train.learning_rate", "train.lr"),  # initials of the leaf's words
        ("trian.lr", "train.lr"),  # misspelt section
        ("train.max_step", "train.max_steps"),
        ("model.hiden", "model.hidden"),  # the name's own section wins over another one
        ("data.hiden", "data.hidden"),
        ("lr", "train.lr"),  # no such top-level key: the leaf of any section
        ("trian", "train"),
        ("train.maximum_steps", "train.max_steps"),  # word prefixes
        ("TRAIN.LR", "train.lr"),
        ("train.lr", "train.lr"),
        ("zzz.qqq", None),
    ],
)
def test_closest_matches_the_section_then_the_leaf(name, expected):
    assert closest(name, PATHS) == expected


def test_closest_on_plain_names():
    models = ["vit_tiny_patch4", "vit_small_patch8", "videomamba_tiny"]
    assert closest("vit_tiny_patch", models) == "vit_tiny_patch4"
    assert closest("videomamba_tin", models) == "videomamba_tiny"
    assert closest("resnet50", models) is None
    assert closest("anything", []) is None


def test_similarity_knows_abbreviations_only_of_whole_words():
    assert similarity("lr", "learning_rate") == ABBREVIATION_SCORE
    assert similarity("learning_rate", "lr") == ABBREVIATION_SCORE
    assert similarity("max_iter", "maximum_iterations") == ABBREVIATION_SCORE
    assert similarity("lr", "lr_schedule") < 0.6  # neither the initials nor one prefix per word
    assert similarity("lr", "eval_batches") < 0.6
    assert similarity("Depth", "depth") == 1.0


def test_did_you_mean_formats_the_hint():
    assert did_you_mean("train.learning_rate", PATHS) == "; did you mean 'train.lr'?"
    assert did_you_mean("zzz", PATHS) == ""
