"""``mambajepa eval hybrid``: what a hybrid JEPA + LM run learned, beside its baselines.

On held-out data of the run's mixture (files and scenes never trained on):

* **perplexity** of standard-library files that were held out by file (and of any JSONL / text
  files passed with ``--jsonl``), beside interpolated Kneser-Ney n-gram models tokenised by the
  run's tokenizer: ``ngram`` is fitted on the training split's code items (in index order) up to
  the code tokens the run's LM stages trained on (each stage's token share times its mixture's code
  share), ``ngram_all_files`` on every training file; all predict tokens ``1..L-1`` of the same
  ``max_length`` windows, so the perplexities count the same tokens;
* **JEPA embedding-prediction MSE** per prediction step ``k`` on held-out batches of code,
  image -> code and captions;
* **image -> code execution accuracy**: the program generated greedily for a held-out image is run
  through the ShapesWorld interpreter and every attribute compared with the scene (a program
  that does not parse is wrong); beside the same model prompted without the image;
* **edit accuracy** (the edited program, canonicalised, equals the target) and **QA accuracy**.

HumanEval pass@1 is a GPU-scale evaluation of ``configs/hybrid_base.yaml`` (generate a completion
for each of the 164 problems and run its unit tests); it is not run here.

``eval.json``::

    {"perplexity": {"held_out_code": {"model", "ngram", "tokens"}, <jsonl file>: {...}},
     "jepa_mse": {"k1": x, ...}, "image_to_code": {"exec_accuracy", "per_attribute", "parsed",
     "without_image": {...}, "n"}, "edit": {"accuracy", "n"}, "qa": {"accuracy", "n"}}
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mambajepa.core.errors import ConfigError
from mambajepa.core.files import atomic_write_json
from mambajepa.data.code_corpus import CodeCorpus
from mambajepa.data.mixture import OFFLINE_SOURCES, MultimodalDataset
from mambajepa.data.shapes_program import ProgramError, parse_program, program_accuracy, program_of
from mambajepa.data.text import read_documents
from mambajepa.eval.base import Evaluation
from mambajepa.eval.ngram import InterpolatedNGram
from mambajepa.eval.runs import load_run, run_dir_of
from mambajepa.methods.hybrid import HybridMethod
from mambajepa.registry import register_evaluation

__all__ = [
    "HybridEvaluation",
    "code_windows",
    "evaluate_hybrid",
    "lm_code_tokens",
    "training_code_windows",
    "format_hybrid_table",
    "generation_accuracy",
    "jepa_mse",
    "model_perplexity",
]

ATTRIBUTES = ("shape", "colour", "size", "position", "texture", "background")


def code_windows(method: HybridMethod, documents: Iterable[str], max_length: int) -> list[list[int]]:
    """Each document's ids (BOS, text, EOS) cut into consecutive windows of at most ``max_length`` (>= 2)."""
    tok = method.tokenizer
    windows = []
    for doc in documents:
        ids = [tok.bos_id, *tok.tokenize(doc), tok.eos_id]
        windows += [ids[i : i + max_length] for i in range(0, len(ids) - 1, max_length)]
    return [w for w in windows if len(w) >= 2]


def lm_code_tokens(config: Any) -> int:
    """Expected code tokens the run's LM loss trained on: each LM stage's share of the token budget
    times the code share of its mixture (the whole run when it has no stages)."""
    base = config.data.arguments().get("weights") or {}
    total = (
        config.train.max_tokens or config.train.max_steps * config.train.batch_size * config.model.max_length
    )
    stages = config.stages or [None]
    tokens = 0.0
    for stage in stages:
        weights = (
            (stage.data.get("weights") if stage is not None else None)
            or base
            or dict.fromkeys(OFFLINE_SOURCES, 1.0)
        )
        lm = 1.0 if stage is None else stage.loss_weights.get("lm", config.loss.beta)
        share = 1.0 if stage is None else (stage.fraction or 0.0)
        if lm > 0:
            tokens += share * total * weights.get("code", 0.0) / sum(weights.values())
    return int(tokens)


def training_code_windows(method: HybridMethod, config: Any, budget: int) -> list[list[int]]:
    """The training split's code items in index order, tokenised as the collator does, up to ``budget`` tokens."""
    train = config.data.build("train")
    windows, count = [], 0
    for i in range(len(train)):
        if count >= budget:
            break
        if train.source_of(i) == "code":
            ids, _ = method.collate.encode("", train[i]["text"])
            windows.append(ids)
            count += len(ids) - 1
    return windows


@torch.no_grad()
def model_perplexity(method: HybridMethod, windows: Sequence[Sequence[int]], batch_size: int = 16) -> float:
    """exp(mean next-token cross-entropy) over tokens ``1..L-1`` of every window (text only, no image)."""
    enc, total, count = method.model.encoder, 0.0, 0
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        L = max(len(w) for w in chunk)
        ids = torch.full((len(chunk), L), method.tokenizer.pad_id, dtype=torch.long)
        targets = torch.full((len(chunk), L), -100, dtype=torch.long)
        for b, w in enumerate(chunk):
            ids[b, : len(w)] = torch.tensor(w)
            targets[b, : len(w) - 1] = torch.tensor(w[1:])
        hidden = enc(enc.inputs(None, torch.zeros(len(chunk), dtype=torch.bool), ids))
        logits = method.model.logits(hidden).float()
        total += float(
            F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum", ignore_index=-100
            )
        )
        count += int((targets != -100).sum())
    return math.exp(total / count) if count else float("nan")


def _generate(
    method: HybridMethod, items: list[dict[str, Any]], with_image: bool, max_new_tokens: int
) -> list[str]:
    tok, out = method.tokenizer, []
    for item in items:
        image = item["image"].unsqueeze(0) if with_image and item["image"] is not None else None
        prompt = [tok.bos_id, *tok.tokenize(item["prompt"])] if item["prompt"] else [tok.bos_id]
        (ids,) = method.model.generate(image, [prompt], max_new_tokens, tok.eos_id)
        out.append(tok.decode(ids))
    return out


def generation_accuracy(
    method: HybridMethod,
    data: MultimodalDataset,
    source: str,
    n: int,
    max_new_tokens: int,
    with_image: bool = True,
) -> dict[str, Any]:
    """Greedy generation on the first ``n`` held-out items of ``source`` (``image_code``, ``edit`` or ``qa``).

    Returns:
        image_code: ``{"exec_accuracy", "parsed", "per_attribute", "n"}``; edit and qa: ``{"accuracy", "n"}``.
    """
    indices = [i for i in range(len(data)) if data.source_of(i) == source][:n]
    if not indices:
        raise ConfigError(f"the held-out data has no {source!r} items")
    items = [data[i] for i in indices]
    texts = _generate(method, items, with_image, max_new_tokens)
    if source == "image_code":
        scores = [program_accuracy(text, data.scene(i)) for text, i in zip(texts, indices)]
        return {
            "exec_accuracy": statistics.fmean(s["all"] for s in scores),
            "parsed": statistics.fmean(s["parsed"] for s in scores),
            "per_attribute": {a: statistics.fmean(s[a] for s in scores) for a in ATTRIBUTES},
            "n": len(scores),
            "examples": [{"generated": t, "truth": it["text"]} for t, it in zip(texts[:4], items[:4])],
        }
    if source == "edit":

        def same(text: str, truth: str) -> bool:
            try:
                return program_of(parse_program(text)) == truth
            except ProgramError:
                return False

        hits = [same(t, it["text"]) for t, it in zip(texts, items)]
    else:
        hits = [t.strip().lower() == it["text"].strip().lower() for t, it in zip(texts, items)]
    return {"accuracy": statistics.fmean(hits), "n": len(hits)}


@torch.no_grad()
def jepa_mse(method: HybridMethod, data: MultimodalDataset, n: int, batch_size: int = 16) -> dict[str, float]:
    """Mean embedding-prediction MSE of each sub-head over the pairs of ``n`` held-out items."""
    collate = method.collate
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    for start in range(0, min(n, len(data)), batch_size):
        batch = collate(
            [data[i] for i in range(start, min(n, len(data), start + batch_size))],
            torch.Generator().manual_seed(start),
        )
        out = method.forward_outputs(batch, jepa=True, lm=False)
        for k, (pred, target) in enumerate(zip(out["predicted_emb"], out["target_emb"]), start=1):
            sums[k] = sums.get(k, 0.0) + float(((pred.float() - target) ** 2).mean(-1).sum())
            counts[k] = counts.get(k, 0) + pred.shape[0]
    return {f"k{k}": sums[k] / counts[k] for k in sums if counts[k]}


def evaluate_hybrid(
    method: HybridMethod,
    config: Any,
    n_items: int = 100,
    max_new_tokens: int = 96,
    ngram_order: int = 3,
    jsonl: Sequence[str] = (),
    max_files: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Every measurement of the module docstring for a trained hybrid method and its run config."""
    method.eval()
    args = config.data.arguments()
    max_length = config.model.max_length

    def say(text: str) -> None:
        if progress:
            print(f"eval hybrid: {text}", flush=True)

    say("perplexity and the n-gram baselines")
    vocab = method.model.vocab_size
    budget = lm_code_tokens(config)
    seen = InterpolatedNGram(ngram_order).fit(training_code_windows(method, config, budget), vocab)
    every = InterpolatedNGram(ngram_order).fit(
        code_windows(method, CodeCorpus("train", max_files=args.get("code_files")), max_length), vocab
    )
    held_docs = list(CodeCorpus("held_out", max_files=max_files))
    held = code_windows(method, held_docs, max_length)
    results: dict[str, Any] = {"perplexity": {}}
    results["perplexity"]["held_out_code"] = {
        "model": model_perplexity(method, held),
        "ngram": seen.perplexity(held),
        "ngram_all_files": every.perplexity(held),
        "ngram_tokens": budget,
        "ngram_order": ngram_order,
        "files": len(held_docs),
        "tokens": sum(len(w) - 1 for w in held),
    }
    for path in jsonl:
        windows = code_windows(method, read_documents([path]), max_length)
        results["perplexity"][str(path)] = {
            "model": model_perplexity(method, windows),
            "ngram": seen.perplexity(windows),
            "ngram_all_files": every.perplexity(windows),
            "ngram_order": ngram_order,
            "tokens": sum(len(w) - 1 for w in windows),
        }

    def held_out(weights: dict[str, float]) -> MultimodalDataset:
        return MultimodalDataset(
            "test",
            weights,
            max(4 * n_items, 64),
            int(args["seed"]),
            int(args["image_size"]),
            int(args["max_objects"]),
        )

    say("JEPA embedding-prediction MSE")
    results["jepa_mse"] = jepa_mse(method, held_out({"code": 1.0, "image_code": 1.0, "text": 1.0}), n_items)
    say("image -> code")
    image_code = held_out({"image_code": 1.0})
    results["image_to_code"] = generation_accuracy(method, image_code, "image_code", n_items, max_new_tokens)
    blind = generation_accuracy(method, image_code, "image_code", n_items, max_new_tokens, with_image=False)
    results["image_to_code"]["without_image"] = {
        k: blind[k] for k in ("exec_accuracy", "parsed", "per_attribute")
    }
    say("edits and QA")
    results["edit"] = generation_accuracy(method, held_out({"edit": 1.0}), "edit", n_items, max_new_tokens)
    results["qa"] = generation_accuracy(method, held_out({"qa": 1.0}), "qa", n_items, 8)
    return results


def format_hybrid_table(results: dict[str, Any]) -> str:
    """A plain-text table of ``eval.json`` content."""
    lines = [f"{'metric':<44} {'ours':>9} {'baseline':>9}", "-" * 64]
    for name, p in results["perplexity"].items():
        lines.append(
            f"{'perplexity ' + name:<44.44} {p['model']:>9.2f} {p['ngram']:>9.2f}  ({p['ngram_order']}-gram, "
            f"same code tokens; {p['ngram_all_files']:.2f} on every training file)"
        )
    for k, v in results["jepa_mse"].items():
        lines.append(f"{'JEPA embedding MSE ' + k:<44} {v:>9.4f}")
    ic = results["image_to_code"]
    lines.append(
        f"{'image->code exec accuracy (all attributes)':<44} {ic['exec_accuracy']:>9.3f} {ic['without_image']['exec_accuracy']:>9.3f}  (no image)"
    )
    lines.append(
        f"{'image->code programs that parse':<44} {ic['parsed']:>9.3f} {ic['without_image']['parsed']:>9.3f}"
    )
    for a in ATTRIBUTES:
        lines.append(
            f"{'image->code ' + a:<44} {ic['per_attribute'][a]:>9.3f} {ic['without_image']['per_attribute'][a]:>9.3f}"
        )
    lines.append(f"{'edit accuracy':<44} {results['edit']['accuracy']:>9.3f}")
    lines.append(f"{'QA accuracy':<44} {results['qa']['accuracy']:>9.3f}")
    return "\n".join(lines)


@register_evaluation("hybrid", applies_to=["hybrid"])
class HybridEvaluation(Evaluation):
    """``mambajepa eval hybrid --checkpoint RUN``: print the table, write ``RUN/eval.json``."""

    help = "perplexity vs an n-gram, JEPA MSE per step, image->code execution, edit and QA accuracy"
    description = __doc__.split("\n\n")[0]

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--n-items", type=int, default=100, help="held-out items per generation task")
        parser.add_argument("--max-new-tokens", type=int, default=96, help="longest generated program")
        parser.add_argument("--ngram-order", type=int, default=3, help="order of the n-gram baseline")
        parser.add_argument(
            "--held-out-files", type=int, default=None, help="held-out stdlib files (default: all)"
        )
        parser.add_argument("--jsonl", nargs="*", default=[], help="more files to measure perplexity on")
        parser.add_argument(
            "--out", default=None, help="where to write eval.json (default: <run dir>/eval.json)"
        )

    def run(self, args: argparse.Namespace) -> int:
        run = load_run(args.checkpoint)
        results = evaluate_hybrid(
            run.method,
            run.config,
            args.n_items,
            args.max_new_tokens,
            args.ngram_order,
            args.jsonl,
            args.held_out_files,
            progress=True,
        )
        out = Path(args.out) if args.out else run_dir_of(run.checkpoint) / "eval.json"
        atomic_write_json(out, results)
        print(format_hybrid_table(results))
        print(f"wrote {out}")
        return 0
