"""``mambajepa eval vljepa``: what a trained Mamba3-JEPA run can do, on held-out ShapesWorld data.

Everything is measured on the ``test`` split of the run's data section, with its ``image_size``,
``normalize``, ``seed`` and ``max_objects`` (captions for zero-shot and retrieval, questions for
VQA, ``shapes_stream`` videos for selective decoding):

1. **zero-shot classification** of each attribute: the query-free predicted embedding of an image
   against one embedding per class, the normalised mean of the Y-encoder embeddings of
   ``prompts_per_class`` captions of random scenes whose object has that class (a prompt
   ensemble from the caption grammar, drawn with a fixed generator).
2. **retrieval** among the ``n_items`` test items, image -> text and text -> image, R@1 and R@5. A
   retrieved item is a hit when its scene has the query's labels (shape, colour, size, position,
   texture, background): captions use synonyms, so several items may be right answers.
3. **VQA**: exact match of the decoded answer (:func:`~mambajepa.methods.vljepa.method.normalize_answer`)
   overall and per question type, and the accuracy "by embedding" (the answer whose Y-encoder
   embedding is nearest to the predicted one).
4. **selective decoding** of streams with scene cuts: decode when the drift of the monitored signal
   crosses the threshold (:class:`~mambajepa.methods.vljepa.selective.SelectiveDecoder`), once per
   segment of an offline segmentation, or uniformly every ``k`` frames. Each is scored by its
   decodes per stream, its cut recall / precision, and the accuracy of the text in effect at each
   frame: the share of shape, colour, size, texture and background that the text names right.
5. **latency** at batch 1 on the model's device: the embedding path and the decode path.
6. **pictures** (``pictures/answers.png``, ``retrieval.png``, ``stream.png``).

``--baselines`` trains the run's config again with a random-init X-encoder and with a transformer
predictor of matched parameter count (:func:`matched_predictor_config`) and evaluates them the
same way. ``eval.json``::

    {"zero_shot": {<attribute>: {"top1", "chance", "classes"}, "mean": {...}},
     "retrieval": {"n", "hit_rule", "image_to_text": {"r1", "r5", "chance_r1", "chance_r5"}, "text_to_image": ...},
     "vqa": {"n", "exact_match", "by_embedding", "chance", "per_type": {<type>: {...}}},
     "selective": {"n_streams", "num_frames", "signal", "segment_rule", "drift", "drift_states",
                   "drift_embeddings", "segments", "uniform", "every_frame", "rate_accuracy": [...]},
     "latency": {"embed_ms", "decode_ms", ...}, "parameters": {...}, "settings": {...}, "wall_s": s,
     "baselines": {<name>: {same keys} | {"skipped": reason}}}
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import math
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mambajepa.config import config_from_dict, config_to_dict
from mambajepa.core.errors import ConfigError, DataError
from mambajepa.core.files import atomic_write_json
from mambajepa.data.shapes_render import Scene, ShapesConfig, sample_scene
from mambajepa.data.shapes_text import ANSWERS, COUNT_WORDS, QUESTION_TYPES, WORDS, caption
from mambajepa.data.synthetic import IMAGE_LABELS, VIDEO_LABELS
from mambajepa.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from mambajepa.eval.base import Evaluation
from mambajepa.eval.runs import load_run
from mambajepa.masks import split_sample
from mambajepa.methods.vljepa import selective as sel
from mambajepa.methods.vljepa.method import VLJEPAConfig, VLJEPAEvalConfig, model_from_run, normalize_answer
from mambajepa.methods.vljepa.model import Mamba3Jepa, Mamba3Predictor, Mamba3PredictorConfig
from mambajepa.registry import build_dataset, register_evaluation

__all__ = [
    "CAPTION_ATTRIBUTES",
    "VLJEPAEvaluation",
    "attribute_score",
    "class_embeddings",
    "evaluate_run",
    "evaluate_vljepa",
    "format_vljepa_table",
    "matched_predictor_config",
    "parse_attributes",
    "predictor_parameters",
    "prompt_ensemble",
    "retrieval_chance",
    "retrieval_recall",
    "segment_threshold",
    "text_in_effect",
    "train_baselines",
]

#: attributes a decoded caption is scored on (position is left out: objects move across cells in a stream)
CAPTION_ATTRIBUTES = ("shape", "colour", "size", "texture", "background")
#: labels two scenes must share for a retrieved item to count as a hit
RETRIEVAL_KEYS = IMAGE_LABELS
#: signals the drift trigger can monitor; the default is the one that catches the cuts (see the report)
DRIFT_SIGNALS = ("embeddings", "states")
DEFAULT_DRIFT_SIGNAL = "embeddings"
#: decode intervals of the uniform rate / accuracy sweep
UNIFORM_SWEEP = (1, 2, 4, 8, 16)
STREAM_FRAMES, STREAM_SCENES = 64, 4
BASELINES = ("random_init", "transformer_predictor")
SEGMENT_RULE = (
    "segment_stream(embeddings, distance_threshold=t) with t halfway between the median and the largest "
    "cosine distance of consecutive frame embeddings of the stream"
)


# ----------------------------------------------------------------------------------------------
# reading attribute words back out of text


def _normalize_text(text: str) -> str:
    """Lower case, hyphens as spaces ("lower-right" is "lower right"), whitespace collapsed."""
    return " ".join(str(text).lower().replace("-", " ").split())


def _phrase_table() -> dict[str, list[tuple[str, int]]]:
    table: dict[str, list[tuple[str, int]]] = {}
    for attribute, classes in WORDS.items():
        for cls, words in enumerate(classes):
            for word in words:
                table.setdefault(_normalize_text(word), []).append((attribute, cls))
    return table


_PHRASES = _phrase_table()
# longest phrases first, so "dark blue" (a background) wins over "blue" and "top left" over "top"
_PATTERN = re.compile(
    r"(?<!\w)(" + "|".join(re.escape(p) for p in sorted(_PHRASES, key=len, reverse=True)) + r")(?!\w)"
)


def parse_attributes(text: str) -> dict[str, int]:
    """The attribute classes a ShapesWorld text names, read with every synonym of :data:`WORDS`.

    Phrases are matched longest first at each position (hyphens read as spaces) and the first
    phrase of each attribute wins. Position and motion direction share words ("right", "left"): such a word names a
    direction only right after "moving", a position otherwise.

    Args:
        text: a caption, decoded or generated (case and spacing do not matter).

    Returns:
        ``{attribute: class index}`` for the attributes the text names.
    """
    text = _normalize_text(text)
    found: dict[str, int] = {}
    for match in _PATTERN.finditer(text):
        meanings = _PHRASES[match.group(1)]
        if len(meanings) > 1:
            moving = text[: match.start()].endswith("moving ")
            meanings = [m for m in meanings if (m[0] == "direction") == moving] or meanings
        for attribute, cls in meanings:
            found.setdefault(attribute, cls)
    return found


def attribute_score(
    text: str, labels: dict[str, int], attributes: Sequence[str] = CAPTION_ATTRIBUTES
) -> float:
    """Share of ``attributes`` that ``text`` names with the class in ``labels`` (unnamed ones count wrong)."""
    found = parse_attributes(text)
    return sum(found.get(a) == labels[a] for a in attributes) / len(attributes)


# ----------------------------------------------------------------------------------------------
# data


def _test_data(config: VLJEPAConfig, task: str) -> Any:
    """The run's ShapesWorld test split with ``task`` (its pixels as the run saw them)."""
    if config.data.name != "shapes_vl":
        raise ConfigError(
            f"eval vljepa needs ShapesWorld data (data.name: shapes_vl), the run has {config.data.name!r}"
        )
    return build_dataset(config.data.name, split="test", **{**config.data.kwargs, "task": task})


def _stream_data(config: VLJEPAConfig, count: int) -> Any:
    """``count`` test streams drawn like the run's images (same size, normalisation, world)."""
    args = config.data.arguments()
    keep = {k: args[k] for k in ("image_size", "normalize", "seed", "max_objects")}
    return build_dataset(
        "shapes_stream",
        split="test",
        num_frames=STREAM_FRAMES,
        num_scenes=STREAM_SCENES,
        n_test=count,
        **keep,
    )


def _caption_query(config: VLJEPAConfig) -> str:
    """The query a caption item had in training: the run's query-free query."""
    return config.fixed_query if config.caption_query == "fixed" else ""


def _items(dataset: Any, n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield [dataset[i] for i in range(start, min(n, start + batch_size))]


def _labels(items: list[dict[str, Any]], keys: Sequence[str]) -> torch.Tensor:
    return torch.tensor([[item[k] for k in keys] for item in items])  # (N, A)


def _inputs(items: list[dict[str, Any]]) -> torch.Tensor:
    """The stacked image or clip tensors of dataset items: ``(B, 3, [T,] S, S)``."""
    return torch.stack([split_sample(item)[0] for item in items])


def attributes_of(data: Any) -> tuple[str, ...]:
    """The attributes zero-shot and retrieval score: a still image's, plus motion for clip data."""
    return VIDEO_LABELS if getattr(data, "video", False) else RETRIEVAL_KEYS


# ----------------------------------------------------------------------------------------------
# zero-shot classification


def _with_class(scene: Scene, attribute: str, cls: int) -> Scene:
    if attribute == "background":
        return dataclasses.replace(scene, background=cls)
    first, *others = scene.objects
    old = getattr(first, attribute)
    if attribute in ("shape", "position"):  # distinct within a scene: the object holding cls takes old
        others = [
            dataclasses.replace(o, **{attribute: old}) if getattr(o, attribute) == cls else o for o in others
        ]
    return dataclasses.replace(scene, objects=(dataclasses.replace(first, **{attribute: cls}), *others))


def prompt_ensemble(
    attribute: str, count: int, *, seed: int = 0, world: ShapesConfig | None = None, video: bool = False
) -> list[list[str]]:
    """``count`` captions per class of ``attribute``: random scenes whose (first) object has that class.

    Args:
        attribute: one of :data:`~mambajepa.data.synthetic.VIDEO_LABELS` (motion needs ``video``).
        count: captions per class.
        seed: seeds the generator (the same seed gives the same prompts).
        world: how scenes are drawn (the data's object counts).
        video: name the motion too (clip data).

    Returns:
        One list of captions per class, in class order.
    """
    world = world or ShapesConfig()
    rng = np.random.default_rng((seed, 7, VIDEO_LABELS.index(attribute)))
    return [
        [caption(_with_class(sample_scene(rng, world), attribute, cls), rng, video) for _ in range(count)]
        for cls in range(len(WORDS[attribute]))
    ]


@torch.no_grad()
def class_embeddings(model: Mamba3Jepa, prompts: list[list[str]], batch_size: int = 256) -> torch.Tensor:
    """``(K, Z)``: per class the normalised mean of the Y-encoder embeddings of its prompts."""
    flat = [p for per_class in prompts for p in per_class]
    emb = torch.cat([model.embed_text(flat[i : i + batch_size]) for i in range(0, len(flat), batch_size)])
    emb = emb.view(len(prompts), -1, emb.shape[-1]).mean(1)  # (K, Z)
    return F.normalize(emb, dim=-1)


# ----------------------------------------------------------------------------------------------
# retrieval


def _same(query_keys: torch.Tensor, gallery_keys: torch.Tensor) -> torch.Tensor:
    return (query_keys[:, None, :] == gallery_keys[None, :, :]).all(-1)  # (B, G)


def retrieval_recall(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    query_keys: torch.Tensor,
    gallery_keys: torch.Tensor,
    ks: Sequence[int] = (1, 5),
) -> dict[int, float]:
    """Recall@k where any gallery item with the query's key counts as a hit.

    Args:
        queries: ``(B, Z)`` query embeddings.
        gallery: ``(G, Z)`` gallery embeddings.
        query_keys: ``(B, A)`` labels of each query's scene.
        gallery_keys: ``(G, A)`` labels of each gallery item's scene.
        ks: the cut-offs.

    Returns:
        ``{k: share of queries with a hit among their top k}``.
    """
    top = Mamba3Jepa.retrieve(queries, gallery, max(ks))  # (B, k)
    hits = _same(query_keys, gallery_keys).gather(1, top)  # (B, k)
    return {k: float(hits[:, :k].any(1).float().mean()) for k in ks}


def retrieval_chance(query_keys: torch.Tensor, gallery_keys: torch.Tensor, k: int) -> float:
    """Expected Recall@k of a random ranking: ``1 - C(G - m, k) / C(G, k)`` with ``m`` matches per query."""
    G = gallery_keys.shape[0]
    matches = _same(query_keys, gallery_keys).sum(1).tolist()
    k = min(k, G)
    return statistics.fmean(1.0 - math.comb(G - m, k) / math.comb(G, k) for m in matches)


# ----------------------------------------------------------------------------------------------
# selective decoding


def text_in_effect(decode_frames: Sequence[int], num_frames: int) -> list[int | None]:
    """For each frame the last decode frame at or before it (None before the first decode)."""
    frames = sorted(decode_frames)
    out: list[int | None] = []
    for t in range(num_frames):
        i = bisect.bisect_right(frames, t)
        out.append(frames[i - 1] if i else None)
    return out


def segment_threshold(embeddings: torch.Tensor) -> float:
    """The merge-cost threshold of :func:`segment_stream` for one stream of embeddings ``(T, Z)``.

    For unit vectors the Ward cost of merging two single frames, ``1/2 ||a - b||^2``, equals their
    cosine distance ``1 - a.b``; merging two parts of one scene keeps costing about that much as
    the parts grow (their means differ by the frames' noise), while a cut costs at least the
    distance across it. The threshold sits halfway between the median distance of consecutive
    frames (neighbours in one scene) and the largest one (the clearest cut). The embeddings must
    be L2-normalised, as :func:`stream_schedules` passes them.
    """
    e = F.normalize(embeddings, dim=-1)
    d = 1.0 - (e[1:] * e[:-1]).sum(-1)  # (T-1,)
    if d.numel() == 0:
        return 1.0
    return float((d.median() + d.max()) / 2)


def _drift_trace(
    signal: torch.Tensor, window: int, threshold: float, smoothing: float
) -> tuple[list[int], list[float]]:
    decoder = sel.SelectiveDecoder(window_size=window, drift_threshold=threshold, smoothing=smoothing)
    frames, drift = [], []
    for t in range(signal.shape[0]):
        if decoder.should_decode(signal[t]):
            frames.append(t)
        drift.append(float(decoder.current_drift()))
    return frames, drift


@dataclasses.dataclass
class Schedule:
    """When a decoding schedule decodes one stream, and which decode's text is in effect at each frame."""

    decodes: list[int]  # frames where it decodes
    effect: list[int | None]  # per frame the decode frame whose text is shown (None: no text yet)
    cuts: list[int]  # the frames it flags as cuts (its decodes, or its segment starts)
    drift: list[float] | None = None  # per frame the drift it monitored (drift triggers)


def stream_schedules(
    states: torch.Tensor, embeddings: torch.Tensor, cfg: VLJEPAEvalConfig
) -> dict[str, Schedule]:
    """Every decoding schedule of one stream: drift triggers, segment decoding, uniform decoding.

    Args:
        states: ``(T, S)`` flattened predictor SSM states after each frame.
        embeddings: ``(T, Z)`` query-free predicted embeddings of the frames.
        cfg: the run's eval settings (drift window / threshold / smoothing, uniform interval).

    Returns:
        ``{"drift_states", "drift_embeddings", "segments", "uniform_<k>" for k in UNIFORM_SWEEP and
        cfg.uniform_every}``.
    """
    T = embeddings.shape[0]
    out: dict[str, Schedule] = {}
    for name, signal in (("states", states), ("embeddings", embeddings)):
        frames, drift = _drift_trace(
            F.normalize(signal, dim=-1), cfg.drift_window, cfg.drift_threshold, cfg.drift_smoothing
        )
        out[f"drift_{name}"] = Schedule(frames, text_in_effect(frames, T), frames, drift)
    unit = F.normalize(embeddings, dim=-1)
    segments = sel.segment_stream(unit, distance_threshold=segment_threshold(unit))
    mids = [int(m) for m in sel.segment_midpoints(segments)]
    effect: list[int | None] = [None] * T
    for (start, end), mid in zip(segments, mids):
        effect[start:end] = [mid] * (end - start)
    out["segments"] = Schedule(mids, effect, [int(s) for s, _ in segments])
    for every in sorted({*UNIFORM_SWEEP, cfg.uniform_every}):
        frames = [int(f) for f in sel.uniform_decode_frames(T, every)]
        out[f"uniform_{every}"] = Schedule(frames, text_in_effect(frames, T), frames)
    return out


def _score(
    schedule: Schedule, scores: torch.Tensor, item: dict[str, Any], tolerance: int
) -> dict[str, float]:
    """Decodes, cut recall / precision and caption accuracy of one schedule on one stream.

    ``scores[d, k]`` is the attribute score of the text decoded at frame ``d`` against scene ``k``.
    """
    frame_scene = item["frame_scene"].tolist()
    cuts = sel.cut_scores(schedule.cuts, item["scene_starts"].tolist(), len(frame_scene), tolerance)
    accuracy = [0.0 if d is None else float(scores[d, k]) for d, k in zip(schedule.effect, frame_scene)]
    return {
        "decodes_per_stream": float(len(schedule.decodes)),
        "cut_recall": float(cuts["recall"]),
        "cut_precision": float(cuts["precision"]),
        "caption_accuracy": statistics.fmean(accuracy),
    }


@torch.no_grad()
def evaluate_streams(
    model: Mamba3Jepa,
    config: VLJEPAConfig,
    n_streams: int,
    drift_signal: str = DEFAULT_DRIFT_SIGNAL,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Selective decoding on ``n_streams`` test streams (section 4 of the module docstring).

    The true attributes of each scene are read from the stream's captions (which name all of
    them). Every frame's query-free caption is decoded once per stream in one batch and shared by
    the schedules (greedy decoding of a row does not depend on the other rows).

    Returns:
        ``(results, trace)``: the ``selective`` section of ``eval.json``, and what the stream
        picture shows of the first stream.
    """
    cfg = config.eval
    data = _stream_data(config, n_streams)
    rows: dict[str, list[dict[str, float]]] = {}
    trace: dict[str, Any] = {}
    for index in range(n_streams):
        item = data[index]
        truth = [parse_attributes(c) for c in item["captions"]]
        missing = {a for a in CAPTION_ATTRIBUTES for t in truth if a not in t}
        if missing:
            raise DataError(f"stream {index}: its captions do not name {sorted(missing)}")
        states, emb = model.stream_states(item["video"])  # (T, S), (T, Z)
        parsed = [parse_attributes(t) for t in model.decode(emb, cfg.max_tokens)]
        scores = torch.tensor(
            [[statistics.fmean(p.get(a) == s[a] for a in CAPTION_ATTRIBUTES) for s in truth] for p in parsed]
        )  # (T, K)
        schedules = stream_schedules(states, emb, cfg)
        for name, schedule in schedules.items():
            rows.setdefault(name, []).append(_score(schedule, scores, item, cfg.cut_tolerance))
        if index == 0:
            chosen = schedules[f"drift_{drift_signal}"]
            trace = {
                "video": item["video"], "drift": chosen.drift, "decodes": chosen.decodes,
                "starts": item["scene_starts"].tolist(), "segments": schedules["segments"].cuts,
                "threshold": cfg.drift_threshold, "signal": drift_signal,
            }  # fmt: skip
        if progress:
            print(f"eval vljepa: stream {index + 1}/{n_streams}", flush=True)
    summary = {}
    for name, per_stream in rows.items():
        summary[name] = {k: statistics.fmean(r[k] for r in per_stream) for k in per_stream[0]}
        summary[name]["decode_rate"] = summary[name]["decodes_per_stream"] / STREAM_FRAMES
    results: dict[str, Any] = {
        "n_streams": n_streams,
        "num_frames": STREAM_FRAMES,
        "num_scenes": STREAM_SCENES,
        "signal": drift_signal,
        "segment_rule": SEGMENT_RULE,
        "drift": {**summary[f"drift_{drift_signal}"], "signal": drift_signal},
        "drift_states": summary["drift_states"],
        "drift_embeddings": summary["drift_embeddings"],
        "segments": summary["segments"],
        "uniform": {**summary[f"uniform_{cfg.uniform_every}"], "every": cfg.uniform_every},
        "every_frame": summary["uniform_1"],
        "rate_accuracy": [
            {
                "every": k,
                "decode_rate": summary[f"uniform_{k}"]["decode_rate"],
                "caption_accuracy": summary[f"uniform_{k}"]["caption_accuracy"],
            }
            for k in UNIFORM_SWEEP
        ],  # fmt: skip
        "caption_chance": statistics.fmean(1.0 / len(WORDS[a]) for a in CAPTION_ATTRIBUTES),
    }
    return results, trace


# ----------------------------------------------------------------------------------------------
# zero-shot, retrieval and VQA on the test items


def answers_of_type(question_type: str, max_objects: int = 1) -> tuple[str, ...]:
    """The distinct answers a question type can have (its chance level is one over their number)."""
    if question_type == "count":
        return COUNT_WORDS[:max_objects]
    return tuple(words[0] for words in WORDS[question_type])


@torch.no_grad()
def _caption_items(model: Mamba3Jepa, config: VLJEPAConfig, n: int) -> dict[str, Any]:
    """Query-free predicted and caption embeddings of ``n`` test items, their labels and a few images."""
    data = _test_data(config, "caption")
    n = min(n, len(data))
    query = _caption_query(config)
    predicted, texts, labels, images, captions = [], [], [], [], []
    for items in _items(data, n, config.eval.batch_size):
        batch = _inputs(items)
        predicted.append(model.embed(batch, [query] * len(items)))
        captions += [it["target"] for it in items]
        texts.append(model.embed_text([it["target"] for it in items]))
        labels.append(_labels(items, attributes_of(data)))
        images.append(batch)
    return {
        "data": data,
        "predicted": torch.cat(predicted),  # (N, Z)
        "texts": torch.cat(texts),  # (N, Z)
        "labels": torch.cat(labels),  # (N, A), the attributes of attributes_of(data)
        "images": torch.cat(images),  # (N, 3, [T,] S, S)
        "captions": captions,
    }


def zero_shot(model: Mamba3Jepa, config: VLJEPAConfig, items: dict[str, Any]) -> dict[str, Any]:
    """Top-1 zero-shot accuracy per attribute (and their mean) of the items' predicted embeddings."""
    data = items["data"]
    out: dict[str, Any] = {}
    attributes = attributes_of(data)
    for i, attribute in enumerate(attributes):
        prompts = prompt_ensemble(
            attribute, config.eval.prompts_per_class, seed=data.seed, world=data.config, video=data.video
        )
        guess = Mamba3Jepa.classify(items["predicted"], class_embeddings(model, prompts))
        out[attribute] = {
            "top1": float((guess.cpu() == items["labels"][:, i]).float().mean()),
            "chance": 1.0 / len(prompts),
            "classes": len(prompts),
        }
    out["mean"] = {
        "top1": statistics.fmean(out[a]["top1"] for a in attributes),
        "chance": statistics.fmean(out[a]["chance"] for a in attributes),
    }
    return out


def retrieval(items: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor]:
    """Image -> text and text -> image recall; also the text -> image top-5 (for the picture)."""
    images, texts, keys = items["predicted"].cpu(), items["texts"].cpu(), items["labels"]
    out: dict[str, Any] = {
        "n": len(keys),
        "hit_rule": "a retrieved item is a hit when its scene has the query's "
        + ", ".join(attributes_of(items["data"])),
    }
    for name, (q, g) in {"image_to_text": (images, texts), "text_to_image": (texts, images)}.items():
        recall = retrieval_recall(q, g, keys, keys, (1, 5))
        out[name] = {
            "r1": recall[1],
            "r5": recall[5],
            "chance_r1": retrieval_chance(keys, keys, 1),
            "chance_r5": retrieval_chance(keys, keys, 5),
        }
    return out, Mamba3Jepa.retrieve(texts, images, 5)


@torch.no_grad()
def vqa(model: Mamba3Jepa, config: VLJEPAConfig, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Exact match of decoded answers and accuracy by embedding, overall and per question type.

    Returns:
        ``(results, shown)``: the ``vqa`` section, and the first 16 items for the answers picture.
    """
    data = _test_data(config, "vqa")
    n = min(n, len(data))
    answer_emb = model.embed_text(list(ANSWERS))  # (A, Z)
    rows: list[tuple[str, bool, bool]] = []  # (type, exact, by embedding)
    shown: dict[str, list] = {"images": [], "questions": [], "answers": [], "truths": []}
    for items in _items(data, n, config.eval.batch_size):
        images, questions = _inputs(items), [it["query"] for it in items]
        decoded = model.answer(images, questions, config.eval.max_tokens)
        nearest = Mamba3Jepa.classify(model.embed(images, questions), answer_emb).tolist()
        for item, text, j in zip(items, decoded, nearest):
            truth = normalize_answer(item["target"])
            rows.append(
                (QUESTION_TYPES[item["question_type"]], normalize_answer(text) == truth, ANSWERS[j] == truth)
            )
        room = 16 - len(shown["questions"])
        if room > 0:
            shown["images"] += list(images[:room])
            shown["questions"] += questions[:room]
            shown["answers"] += decoded[:room]
            shown["truths"] += [it["target"] for it in items[:room]]
    max_objects = data.config.max_objects
    chance = {t: 1.0 / len(answers_of_type(t, max_objects)) for t in QUESTION_TYPES}
    per_type = {}
    for qtype in QUESTION_TYPES:
        sel = [r for r in rows if r[0] == qtype]
        if sel:
            per_type[qtype] = {
                "n": len(sel),
                "exact_match": statistics.fmean(r[1] for r in sel),
                "by_embedding": statistics.fmean(r[2] for r in sel),
                "chance": chance[qtype],
            }
    results = {
        "n": len(rows),
        "exact_match": statistics.fmean(r[1] for r in rows),
        "by_embedding": statistics.fmean(r[2] for r in rows),
        "chance": statistics.fmean(chance[r[0]] for r in rows),
        "per_type": per_type,
    }
    return results, shown


@torch.no_grad()
def latency(
    model: Mamba3Jepa, image: torch.Tensor, question: str, max_tokens: int, repeats: int = 5
) -> dict[str, Any]:
    """Median milliseconds per item at batch 1: embedding path and decode path (embedding + greedy answer)."""

    def median_ms(fn: Callable[[], object]) -> float:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000.0 * statistics.median(times)

    batch = image[None]
    return {
        "embed_ms": median_ms(lambda: model.embed(batch, [question])),
        "decode_ms": median_ms(lambda: model.answer(batch, [question], max_tokens)),
        "batch_size": 1,
        "repeats": repeats,
        "device": str(model.device),
        "threads": torch.get_num_threads(),
    }


# ----------------------------------------------------------------------------------------------
# pictures


def _display(image: torch.Tensor, normalized: bool) -> np.ndarray:
    """``(3, [T,] S, S)`` model input -> ``(S, S, 3)`` in [0, 1] (first frame of a clip)."""
    x = image.detach().float().cpu()
    x = x[:, 0] if x.dim() == 4 else x
    if normalized:
        x = x * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def _printable(text: str, limit: int = 40) -> str:
    """Text safe for a figure title: control characters (an untrained decoder emits them) as '?'."""
    text = "".join(c if c.isprintable() else "?" for c in str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_answers(shown: dict[str, list], normalized: bool, path: Path) -> Path:
    """A grid of test images with question, decoded answer (green: exact match) and truth."""
    plt = _pyplot()
    n = len(shown["questions"])
    cols = 4
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(_display(shown["images"][i], normalized), interpolation="nearest")
        ok = normalize_answer(shown["answers"][i]) == normalize_answer(shown["truths"][i])
        ax.set_title(
            f"{shown['questions'][i]}\nanswer: {_printable(shown['answers'][i], 28)}\ntruth: {shown['truths'][i]}",
            fontsize=8,
            color="green" if ok else "red",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_retrieval(
    items: dict[str, Any], top: torch.Tensor, normalized: bool, path: Path, queries: int = 4
) -> Path:
    """A few captions (text queries) with their top-5 retrieved test images (green frame: a hit)."""
    plt = _pyplot()
    queries = min(queries, len(items["captions"]))
    same = _same(items["labels"][:queries], items["labels"])
    fig, axes = plt.subplots(queries, 6, figsize=(13, 2.3 * queries), squeeze=False)
    for q in range(queries):
        text = axes[q, 0]
        text.axis("off")
        words = items["captions"][q].split()
        lines = [" ".join(words[i : i + 5]) for i in range(0, len(words), 5)]
        text.text(0.0, 0.5, "\n".join(lines), fontsize=8, va="center", wrap=True)
        for r in range(5):
            ax = axes[q, r + 1]
            j = int(top[q, r])
            ax.imshow(_display(items["images"][j], normalized), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            colour = "green" if bool(same[q, j]) else "red"
            for side in ax.spines.values():
                side.set_edgecolor(colour)
                side.set_linewidth(3)
            ax.set_title(f"#{r + 1}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_stream(trace: dict[str, Any], normalized: bool, path: Path) -> Path:
    """One stream: frames, drift curve and threshold, decode markers, true cuts, segment boundaries."""
    plt = _pyplot()
    video = trace["video"]
    T = video.shape[1]
    every = max(1, T // 16)
    fig, (strip, ax) = plt.subplots(2, 1, figsize=(12, 5), gridspec_kw={"height_ratios": [1, 2]})
    strip.imshow(np.concatenate([_display(video[:, t], normalized) for t in range(0, T, every)], axis=1))
    strip.set_title(f"frames 0, {every}, {2 * every}, ... of stream 0", fontsize=9)
    strip.axis("off")
    ax.plot(range(T), trace["drift"], color="black", label=f"drift ({trace['signal']})")
    ax.axhline(trace["threshold"], color="grey", linestyle="--", label="threshold")
    top = max(max(trace["drift"], default=0.0), trace["threshold"]) * 1.1 or 1.0
    for i, start in enumerate(trace["starts"][1:]):
        ax.axvline(start, color="tab:red", linewidth=2, alpha=0.6, label="true cut" if i == 0 else None)
    for i, start in enumerate(trace["segments"][1:]):
        ax.axvline(
            start, color="tab:blue", linestyle=":", linewidth=2, label="segment boundary" if i == 0 else None
        )
    ax.scatter(
        trace["decodes"],
        [top] * len(trace["decodes"]),
        marker="v",
        color="tab:green",
        label="decode",
        zorder=3,
    )
    ax.set_xlim(-0.5, T - 0.5)
    ax.set_ylim(0, top * 1.05)
    ax.set_xlabel("frame")
    ax.set_ylabel("drift")
    ax.legend(fontsize=8, loc="upper right", ncol=5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------
# baselines


def _copy(config: VLJEPAConfig) -> VLJEPAConfig:
    return config_from_dict(type(config), config_to_dict(config))


def _vision_dim(config: VLJEPAConfig) -> int:
    with torch.device("meta"):  # the preset's width without allocating its weights
        return int(config.x_encoder.build().embed_dim)


def predictor_parameters(
    config: VLJEPAConfig, predictor: Mamba3PredictorConfig | None = None, vision_dim: int | None = None
) -> int:
    """Parameters of the predictor ``predictor`` (default: the run's) between the run's X- and Y-encoders.

    Args:
        config: the run config (the X-encoder's and Y-encoder's widths).
        predictor: the predictor's architecture (default ``config.predictor``).
        vision_dim: the X-encoder's width, when known (else its preset is built on the meta device).
    """
    predictor = predictor or config.predictor
    vision_dim = _vision_dim(config) if vision_dim is None else vision_dim
    with torch.device("meta"):
        module = Mamba3Predictor(predictor, vision_dim, config.y_encoder.d_model)
    return sum(p.numel() for p in module.parameters())


def _candidate(base: Mamba3PredictorConfig, mixer: str, d: int, n: int) -> Mamba3PredictorConfig:
    # headdim means nothing to a transformer, but validate() checks it divides d * expand
    headdim = math.gcd(d * base.expand, base.headdim) if mixer == "transformer" else base.headdim
    return dataclasses.replace(base, mixer=mixer, d_model=d, n_layers=n, headdim=headdim)


def _widths(base: Mamba3PredictorConfig, mixer: str) -> list[int]:
    top = 4 * base.d_model
    if mixer == "transformer":  # heads = d // 32 must divide d
        return [d for d in range(8, top + 1, 8) if d % max(1, d // 32) == 0]
    step = base.headdim // math.gcd(base.headdim, base.expand)  # d * expand a multiple of headdim
    return list(range(step, top + 1, step))


def matched_predictor_config(config: VLJEPAConfig, mixer: str) -> VLJEPAConfig:
    """A copy of the run config whose predictor uses ``mixer`` at the closest parameter count.

    Width and depth are searched (widths up to 4x the run's, depths up to twice its, at least 4);
    the count of a candidate is exact (the predictor built on the meta device) and linear in its
    depth. Ties go to the depth closest to the run's.

    Args:
        config: the run config (its predictor is the reference).
        mixer: ``"mamba3"``, ``"mamba2"`` or ``"transformer"``.

    Returns:
        The new config, named ``<name>_<mixer>``; the run's own mixer returns an unchanged copy.

    Raises:
        ConfigError: an unknown mixer.
    """
    if mixer not in ("mamba3", "mamba2", "transformer"):
        raise ConfigError(f"mixer={mixer!r}; expected 'mamba3', 'mamba2' or 'transformer'")
    out = _copy(config)
    base = config.predictor
    if mixer == base.mixer:
        return out
    vision_dim = _vision_dim(config)
    target = predictor_parameters(config, vision_dim=vision_dim)
    best: tuple[tuple[int, int, int], Mamba3PredictorConfig] | None = None
    for d in _widths(base, mixer):
        one, two = (predictor_parameters(config, _candidate(base, mixer, d, n), vision_dim) for n in (1, 2))
        for n in range(1, max(4, 2 * base.n_layers) + 1):
            key = (abs(one + (n - 1) * (two - one) - target), abs(n - base.n_layers), abs(d - base.d_model))
            if best is None or key < best[0]:
                best = (key, _candidate(base, mixer, d, n))
    assert best is not None  # _widths is never empty
    out.predictor = best[1]
    out.name = f"{config.name}_{mixer}"
    return out


def baseline_configs(config: VLJEPAConfig) -> dict[str, VLJEPAConfig | str]:
    """The run config of each baseline, or why it is skipped."""
    out: dict[str, VLJEPAConfig | str] = {}
    if config.x_encoder_weights is None:
        out["random_init"] = "the run's X-encoder is random-init already (x_encoder_weights: null)"
    else:
        random_init = _copy(config)
        random_init.x_encoder_weights, random_init.name = None, f"{config.name}_random_init"
        out["random_init"] = random_init
    out["transformer_predictor"] = matched_predictor_config(config, "transformer")
    return out


def train_baselines(
    config: VLJEPAConfig, run_dir: str | Path, progress: bool = False
) -> dict[str, Mamba3Jepa | str]:
    """Train (or finish training) each baseline into ``run_dir/baselines/<name>``.

    Returns:
        ``{name: trained model}``, or the reason a baseline is skipped.
    """
    from mambajepa.train.trainer import run_training

    models: dict[str, Mamba3Jepa | str] = {}
    for name, cfg in baseline_configs(config).items():
        if isinstance(cfg, str):
            models[name] = cfg
            continue
        directory = Path(run_dir) / "baselines" / name
        if progress:
            print(f"eval vljepa: training baseline {name} into {directory}", flush=True)
        run_training(cfg, directory, resume="auto")
        models[name] = model_from_run(directory)
    return models


# ----------------------------------------------------------------------------------------------
# the whole evaluation


def _stream_skip_reason(model: Mamba3Jepa) -> str | None:
    try:
        model.predictor.init_state(1, device=model.device)
    except ConfigError as err:
        return str(err)
    return None


def evaluate_vljepa(
    model: Mamba3Jepa,
    config: VLJEPAConfig,
    *,
    n_items: int | None = None,
    n_streams: int | None = None,
    progress: bool = False,
    pictures: str | Path | None = None,
    drift_signal: str = DEFAULT_DRIFT_SIGNAL,
    measure_latency: bool = True,
) -> dict[str, Any]:
    """Evaluate a Mamba3-JEPA on the test split of its run's data (see the module docstring).

    Args:
        model: the model (eval mode).
        config: its run config (data section and ``eval`` settings).
        n_items: test items of zero-shot, retrieval and VQA (default ``config.eval.n_items``).
        n_streams: test streams of selective decoding (default ``config.eval.n_streams``; 0: skip).
        progress: print one line per stage.
        pictures: folder to draw ``answers.png``, ``retrieval.png`` and ``stream.png`` into (None: none).
        drift_signal: what the drift trigger monitors, ``"embeddings"`` or ``"states"`` (both are measured).
        measure_latency: time the embedding and decode paths.

    Returns:
        The ``eval.json`` content without ``baselines``.

    Raises:
        ConfigError: data other than ShapesWorld, or bad sizes.
    """
    if drift_signal not in DRIFT_SIGNALS:
        raise ConfigError(f"drift_signal={drift_signal!r}; expected one of {list(DRIFT_SIGNALS)}")
    cfg = config.eval
    n_items = cfg.n_items if n_items is None else n_items
    n_streams = cfg.n_streams if n_streams is None else n_streams
    if n_items < 5 or n_streams < 0:
        raise ConfigError(f"need n_items >= 5 (R@5) and n_streams >= 0, got {n_items}, {n_streams}")
    start = time.perf_counter()
    model.eval()

    def say(text: str) -> None:
        if progress:
            print(f"eval vljepa: {text}", flush=True)

    say(f"zero-shot and retrieval on {n_items} test items")
    items = _caption_items(model, config, n_items)
    results: dict[str, Any] = {"zero_shot": zero_shot(model, config, items)}
    results["retrieval"], top = retrieval(items)
    say(f"VQA on {n_items} test items")
    results["vqa"], shown = vqa(model, config, n_items)
    trace: dict[str, Any] = {}
    reason = "n_streams is 0" if n_streams == 0 else _stream_skip_reason(model)
    if reason is None:
        say(f"selective decoding on {n_streams} test streams")
        results["selective"], trace = evaluate_streams(model, config, n_streams, drift_signal, progress)
    else:
        results["selective"] = {"skipped": reason}
    if measure_latency:
        say("latency")
        results["latency"] = latency(model, items["images"][0], shown["questions"][0], cfg.max_tokens)
    results["parameters"] = {
        "predictor": sum(p.numel() for p in model.predictor.parameters()),
        "predictor_mixer": model.config.predictor.mixer,
        "trainable": model.num_trainable_parameters(),
        "x_encoder": sum(p.numel() for p in model.x_encoder.parameters()),
    }
    results["settings"] = {
        **dataclasses.asdict(cfg),
        "n_items": n_items,
        "n_streams": n_streams,
        "split": "test",
        "caption_attributes": list(CAPTION_ATTRIBUTES),
    }
    if pictures is not None:
        say(f"pictures into {pictures}")
        folder = Path(pictures)
        folder.mkdir(parents=True, exist_ok=True)
        normalized = bool(config.data.arguments().get("normalize", False))
        drawn = [draw_answers(shown, normalized, folder / "answers.png")]
        drawn.append(draw_retrieval(items, top, normalized, folder / "retrieval.png"))
        if trace:
            drawn.append(draw_stream(trace, normalized, folder / "stream.png"))
        results["pictures"] = [str(p) for p in drawn]
    results["wall_s"] = time.perf_counter() - start
    return results


def evaluate_run(
    path: str | Path,
    *,
    n_items: int | None = None,
    n_streams: int | None = None,
    baselines: bool = False,
    pictures: bool = True,
    out: str | Path | None = None,
    drift_signal: str = DEFAULT_DRIFT_SIGNAL,
    progress: bool = False,
) -> tuple[dict[str, Any], Path]:
    """Evaluate a ``vljepa`` run (and optionally its baselines) and write ``eval.json``.

    Args:
        path: run, checkpoints or ``step_<N>`` directory.
        n_items: see :func:`evaluate_vljepa`.
        n_streams: see :func:`evaluate_vljepa`.
        baselines: train and evaluate the baselines too (:func:`train_baselines`).
        pictures: draw the pictures into ``RUN/pictures/``.
        out: where to write the JSON (default ``RUN/eval.json``).
        drift_signal: see :func:`evaluate_vljepa`.
        progress: print one line per stage.

    Returns:
        ``(results, path written)``.
    """
    run = load_run(path)
    model = run.method.model
    started = time.perf_counter()
    results = evaluate_vljepa(
        model,
        run.config,
        n_items=n_items,
        n_streams=n_streams,
        progress=progress,
        pictures=run.run_dir / "pictures" if pictures else None,
        drift_signal=drift_signal,
    )
    results["run"], results["checkpoint"] = str(run.run_dir), str(run.checkpoint)
    if baselines:
        results["baselines"] = {}
        for name, trained in train_baselines(run.config, run.run_dir, progress).items():
            if isinstance(trained, str):
                results["baselines"][name] = {"skipped": trained}
                continue
            if progress:
                print(f"eval vljepa: evaluating baseline {name}", flush=True)
            base = evaluate_vljepa(
                trained,
                run.config,
                n_items=n_items,
                n_streams=n_streams,
                drift_signal=drift_signal,
                progress=progress,
            )
            results["baselines"][name] = {**base, "run": str(run.run_dir / "baselines" / name)}
    results["wall_s_total"] = time.perf_counter() - started
    target = Path(out) if out else run.run_dir / "eval.json"
    atomic_write_json(target, results)
    return results, target


# ----------------------------------------------------------------------------------------------
# the table

_SCHEDULES = (
    ("drift_embeddings", "drift trigger (embeddings)"),
    ("drift_states", "drift trigger (states)"),
    ("segments", "segment decoding"),
    ("uniform", "uniform"),
    ("every_frame", "every frame"),
)
_STREAM_METRICS = (
    ("decodes_per_stream", "decodes/stream"),
    ("cut_recall", "cut recall"),
    ("cut_precision", "cut precision"),
    ("caption_accuracy", "caption acc."),
)


def _get(results: dict[str, Any], path: tuple) -> Any:
    node: Any = results
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return None
    return node


def _rows(results: dict[str, Any]) -> list[tuple[str, tuple, Any, str]]:
    """``(label, path of the value, path of the chance or None, format)`` of every table row."""
    rows: list[tuple[str, tuple, Any, str]] = []
    attributes = [a for a in VIDEO_LABELS if a in results.get("zero_shot", {})] or list(RETRIEVAL_KEYS)
    for a in (*attributes, "mean"):
        rows.append((f"zero-shot {a} top-1", ("zero_shot", a, "top1"), ("zero_shot", a, "chance"), ".3f"))
    for key, label in (("image_to_text", "image->text"), ("text_to_image", "text->image")):
        for k in ("r1", "r5"):
            rows.append(
                (
                    f"retrieval {label} R@{k[1]} (same labels)",
                    ("retrieval", key, k),
                    ("retrieval", key, f"chance_{k}"),
                    ".3f",
                )
            )
    rows.append(("VQA exact match", ("vqa", "exact_match"), ("vqa", "chance"), ".3f"))
    for qtype in _get(results, ("vqa", "per_type")) or {}:
        rows.append(
            (
                f"VQA exact match: {qtype}",
                ("vqa", "per_type", qtype, "exact_match"),
                ("vqa", "per_type", qtype, "chance"),
                ".3f",
            )
        )
    rows.append(("VQA by embedding", ("vqa", "by_embedding"), ("vqa", "chance"), ".3f"))
    every = _get(results, ("selective", "uniform", "every"))
    for key, label in _SCHEDULES:
        label = f"uniform every {every}" if key == "uniform" else label
        for metric, name in _STREAM_METRICS:
            chance = ("selective", "caption_chance") if metric == "caption_accuracy" else None
            fmt = ".1f" if metric == "decodes_per_stream" else ".3f"
            rows.append((f"{label}: {name}", ("selective", key, metric), chance, fmt))
    for i, point in enumerate(_get(results, ("selective", "rate_accuracy")) or []):
        if point["every"] in (1, every):  # already shown as "every frame" / "uniform every k"
            continue
        rows.append(
            (f"uniform every {point['every']}: caption acc.", ("selective", "rate_accuracy", i, "caption_accuracy"),
             ("selective", "caption_chance"), ".3f")
        )  # fmt: skip
    rows.append(("latency embed (ms/item, batch 1)", ("latency", "embed_ms"), None, ".1f"))
    rows.append(("latency decode (ms/item, batch 1)", ("latency", "decode_ms"), None, ".1f"))
    rows.append(("predictor parameters", ("parameters", "predictor"), None, ",d"))
    return rows


def format_vljepa_table(results: dict[str, Any], baselines: dict[str, dict] | None = None) -> str:
    """One plain-text table: metric, ours, each baseline, chance (``-``: not measured)."""
    baselines = {k: v for k, v in (baselines or {}).items() if "zero_shot" in v}
    names = ["ours", *baselines]
    columns = [results, *baselines.values()]
    rows = _rows(results)
    width = max(len(label) for label, *_ in rows)
    cell = max(8, *(len(n) for n in names))

    def fmt(value: Any, spec: str) -> str:
        return f"{value:{spec}}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"

    head = f"{'metric':<{width}} " + " ".join(f"{n:>{cell}}" for n in names) + f" {'chance':>8}"
    lines = [head, "-" * len(head)]
    for label, path, chance, spec in rows:
        values = " ".join(f"{fmt(_get(c, path), spec):>{cell}}" for c in columns)
        lines.append(f"{label:<{width}} {values} {fmt(_get(results, chance) if chance else None, '.3f'):>8}")
    stream = results.get("selective", {})
    if "skipped" in stream:
        lines.append(f"selective decoding skipped: {stream['skipped']}")
    else:
        lines.append(
            f"drift trigger default signal: {stream.get('signal')}; segments: {stream.get('segment_rule')}"
        )
    for name, base in (baselines or {}).items():
        if "skipped" in base.get("selective", {}):
            lines.append(f"{name}: selective decoding skipped ({base['selective']['skipped']})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# ``mambajepa eval vljepa``


@register_evaluation("vljepa", applies_to=["vljepa"])
class VLJEPAEvaluation(Evaluation):
    """``mambajepa eval vljepa --checkpoint RUN``: print the table, write ``RUN/eval.json`` and pictures."""

    help = "zero-shot, retrieval, VQA, selective decoding and latency of a Mamba3-JEPA run"
    description = (
        "Evaluate a vljepa run on held-out ShapesWorld data: zero-shot classification, retrieval, VQA, "
        "selective decoding of streams and latency; --baselines also trains and evaluates a random-init "
        "X-encoder and a matched transformer predictor."
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--n-items", type=int, default=None, help="test items (default: the run's eval.n_items)"
        )
        parser.add_argument(
            "--n-streams", type=int, default=None, help="test streams (default: eval.n_streams)"
        )
        parser.add_argument("--baselines", action="store_true", help="train and evaluate the baselines too")
        parser.add_argument("--no-pictures", action="store_true", help="draw no pictures")
        parser.add_argument(
            "--out", default=None, help="where to write eval.json (default: <run dir>/eval.json)"
        )
        parser.add_argument(
            "--drift-signal",
            choices=DRIFT_SIGNALS,
            default=DEFAULT_DRIFT_SIGNAL,
            help="what the drift trigger monitors",
        )

    def run(self, args: argparse.Namespace) -> int:
        results, out = evaluate_run(
            args.checkpoint,
            n_items=args.n_items,
            n_streams=args.n_streams,
            baselines=args.baselines,
            pictures=not args.no_pictures,
            out=args.out,
            drift_signal=args.drift_signal,
            progress=True,
        )
        print(format_vljepa_table(results, results.get("baselines")))
        print(f"wrote {out} (evaluation {results['wall_s_total']:.0f} s)")
        return 0
