"""Frozen-feature probes of any trained run against the same method at its random initialisation.

Every method that implements :meth:`~mambajepa.methods.base.Method.encode` offers the ``probe``
evaluation. The method names the labelled data (:meth:`~mambajepa.methods.base.Method.probe_data`:
a training and a held-out dataset, and the labels probed by default); for every label a linear
probe, a kNN classifier and optionally an attentive probe are fitted on features of the training
items and scored on the held-out ones; collapse statistics describe the pooled features. The same
is done for the method as initialised before training (same seed, same config), which is the
baseline of the learning criterion. The settings are the run config's ``probe`` section (a
:class:`~mambajepa.methods.base.ProbeConfig`), or the defaults when the method has none.

``probe.json``::

    {"shape": {"linear_acc": x, "knn_acc": x, "attentive_acc": x, "chance": x}, ...,
     "feature_std": x, "effective_rank": x, "feature_dim": D,
     "random_init": {same fields for the untrained method}}
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from mambajepa.config import RunConfig, config_from_dict, config_to_dict
from mambajepa.core.errors import ConfigError
from mambajepa.core.files import atomic_write_json
from mambajepa.data.synthetic import IMAGE_LABELS, VIDEO_LABELS
from mambajepa.eval.attentive_probe import attentive_probe_accuracy
from mambajepa.eval.base import Evaluation
from mambajepa.eval.collapse import effective_rank, feature_std, is_collapsed
from mambajepa.eval.features import FeatureSet, extract_features
from mambajepa.eval.knn import knn_accuracy
from mambajepa.eval.linear_probe import linear_probe_accuracy
from mambajepa.eval.runs import init_method, load_run, read_run_config, run_dir_of
from mambajepa.methods.base import Method, ProbeConfig
from mambajepa.registry import get_method, register_evaluation

__all__ = [
    "IMAGE_TASKS",
    "VIDEO_TASKS",
    "ProbeEvaluation",
    "format_probe_table",
    "learning_criterion",
    "offers_probe",
    "probe_features",
    "probe_run",
    "probe_settings",
    "write_probe_json",
]

#: ShapesWorld labels a single image shows (direction and speed need motion)
IMAGE_TASKS = IMAGE_LABELS
#: ShapesWorld labels a clip shows
VIDEO_TASKS = VIDEO_LABELS


def offers_probe(method_cls: type) -> bool:
    """Whether a method class can be probed: it implements ``encode``."""
    return isinstance(method_cls, type) and issubclass(method_cls, Method) and method_cls.implements("encode")


def probe_settings(config: RunConfig) -> ProbeConfig:
    """The run config's ``probe`` section, or the default settings when it has none."""
    probe = getattr(config, "probe", None)
    return probe if isinstance(probe, ProbeConfig) else ProbeConfig()


def _num_classes(dataset: Any, task: str, *labels: torch.Tensor) -> int:
    classes = getattr(dataset, "classes", None)
    if isinstance(classes, dict) and task in classes:
        return len(classes[task])
    if isinstance(classes, (list, tuple)) and task == "class":
        return len(classes)
    return int(max(int(y.max()) for y in labels)) + 1


def probe_features(
    train: FeatureSet, test: FeatureSet, num_classes: dict[str, int], cfg: ProbeConfig
) -> dict[str, Any]:
    """Fit and score every probe on extracted features.

    Args:
        train: features of the probe's training items.
        test: features of the held-out items.
        num_classes: classes per task (tasks are the keys).
        cfg: probe settings.

    Returns:
        ``{task: {"linear_acc", "knn_acc", ["attentive_acc",] "chance"}, "feature_std", "effective_rank",
        "feature_dim"}`` with the collapse statistics measured on the held-out pooled features.
    """
    tasks = list(num_classes)
    attentive: list[float] = []
    if cfg.attentive and tasks and train.tokens is not None and test.tokens is not None:
        attentive = attentive_probe_accuracy(
            train.tokens,
            [train.labels[t] for t in tasks],
            test.tokens,
            [test.labels[t] for t in tasks],
            [num_classes[t] for t in tasks],
            cfg.attentive_steps,
            cfg.attentive_lr,
            cfg.seed,
        )
    results: dict[str, Any] = {}
    for i, task in enumerate(tasks):
        k = num_classes[task]
        y_train, y_test = train.labels[task], test.labels[task]
        entry = {
            "linear_acc": linear_probe_accuracy(
                train.pooled, y_train, test.pooled, y_test, k, cfg.linear_steps, cfg.linear_weight_decay
            ),
            "knn_acc": knn_accuracy(train.pooled, y_train, test.pooled, y_test, k, cfg.knn_k),
        }
        if attentive:
            entry["attentive_acc"] = attentive[i]
        entry["chance"] = 1.0 / k
        results[task] = entry
    results["feature_std"] = feature_std(test.pooled)
    results["effective_rank"] = effective_rank(test.pooled)
    results["feature_dim"] = test.pooled.shape[1]
    return results


def probe_run(path: str | Path, probe: ProbeConfig | None = None, progress: bool = False) -> dict[str, Any]:
    """Probe a trained run of any method with ``encode``, and its random initialisation.

    Args:
        path: run or checkpoint directory.
        probe: probe settings (default: the run config's ``probe`` section); the run is rebuilt
            with them, so a setting that changes the features (JEPA's ``encoder``) applies.
        progress: print one line per stage.

    Returns:
        The ``probe.json`` content (see the module docstring).

    Raises:
        CheckpointError: unreadable run or weights that do not fit the config.
        ConfigError: a method without ``encode``, or a requested task the data does not label.
    """
    config, _ = read_run_config(path)
    if not offers_probe(get_method(config.method)):
        raise ConfigError(f"method {config.method!r} implements no encode(); it cannot be probed")
    cfg = probe if probe is not None else probe_settings(config)
    cfg.validate()
    if isinstance(getattr(config, "probe", None), ProbeConfig):
        config = dataclasses.replace(config, probe=cfg)
    trained = load_run(path, config=config).method
    initial = init_method(config)
    data = trained.probe_data(config)
    tasks = list(cfg.tasks) or data.tasks

    def measure(method: Method, label: str) -> dict[str, Any]:
        if progress:
            print(f"probe: extracting {label} features", flush=True)

        def extract(dataset: Any, count: int) -> FeatureSet:
            return extract_features(
                method.encode, dataset, count, cfg.batch_size, cfg.attentive, tasks, data.collate_fn
            )

        train, test = extract(data.train, cfg.n_train), extract(data.test, cfg.n_eval)
        usable = {t: y for t, y in train.labels.items() if int(y.min()) >= 0 and len(torch.unique(y)) > 1}
        if cfg.tasks and set(cfg.tasks) - set(usable):
            raise ConfigError(
                f"probe.tasks {sorted(set(cfg.tasks) - set(usable))} have fewer than 2 classes in the data"
            )
        classes = {t: _num_classes(data.train, t, y, test.labels[t]) for t, y in usable.items()}
        if progress:
            print(f"probe: fitting probes on {label} features ({', '.join(classes)})", flush=True)
        return probe_features(train, test, classes, cfg)

    results = measure(trained, "trained")
    results["random_init"] = measure(initial, "random-init")
    return results


def write_probe_json(results: dict[str, Any], path: str | Path) -> Path:
    """Write ``results`` as indented JSON, atomically (:func:`~mambajepa.core.files.atomic_write_json`).

    Returns:
        The path written.
    """
    path = Path(path)
    atomic_write_json(path, results)
    return path


def _tasks(results: dict[str, Any]) -> list[str]:
    return [k for k, v in results.items() if isinstance(v, dict) and k != "random_init"]


def learning_criterion(
    results: dict[str, Any], task: str = "shape", tolerance: float = 0.01
) -> dict[str, Any]:
    """The learning criterion of the recipes, evaluated on ``probe.json`` content.

    Pre-training passes when the linear probe's error on ``task`` is at most half the random-init
    error, no other task's linear accuracy is lower than the random-init one by more than
    ``tolerance``, and the trained features are not collapsed.

    Args:
        results: :func:`probe_run` output.
        task: the main task.
        tolerance: allowed accuracy drop on the other tasks (sampling noise of the held-out split).

    Returns:
        ``{"task", "error", "random_init_error", "error_ratio", "worse_tasks", "collapsed", "passed"}``.

    Raises:
        ConfigError: ``task`` was not probed.
    """
    base = results["random_init"]
    if task not in results or task not in base:
        raise ConfigError(f"task {task!r} was not probed (probed: {_tasks(results)})")
    error = 1.0 - results[task]["linear_acc"]
    base_error = 1.0 - base[task]["linear_acc"]
    ratio = error / base_error if base_error > 0 else (0.0 if error == 0 else math.inf)
    worse = [
        t
        for t in _tasks(results)
        if t != task and t in base and results[t]["linear_acc"] < base[t]["linear_acc"] - tolerance
    ]
    dim = results.get("feature_dim", 0)
    collapsed = is_collapsed(results["feature_std"], results["effective_rank"], dim)
    return {
        "task": task,
        "error": error,
        "random_init_error": base_error,
        "error_ratio": ratio,
        "worse_tasks": worse,
        "collapsed": collapsed,
        "passed": ratio <= 0.5 and not worse and not collapsed,
    }


def format_probe_table(results: dict[str, Any]) -> str:
    """A plain-text table of ``probe.json`` content: trained vs random-init per task."""
    base = results.get("random_init", {})
    attentive = any("attentive_acc" in results[t] for t in _tasks(results))
    head = f"{'task':<12} {'chance':>6} {'linear':>7} {'(init)':>7} {'knn':>7} {'(init)':>7}"
    head += f" {'attent.':>7} {'(init)':>7}" if attentive else ""
    lines = [head, "-" * len(head)]
    for t in _tasks(results):
        r, b = results[t], base.get(t, {})

        def cell(entry: dict, key: str) -> str:
            return f"{entry[key]:>7.3f}" if key in entry else f"{'-':>7}"

        row = f"{t:<12} {r['chance']:>6.3f} {cell(r, 'linear_acc')} {cell(b, 'linear_acc')} "
        row += f"{cell(r, 'knn_acc')} {cell(b, 'knn_acc')}"
        row += f" {cell(r, 'attentive_acc')} {cell(b, 'attentive_acc')}" if attentive else ""
        lines.append(row)
    lines.append(
        f"features: std {results['feature_std']:.4g} (init {base.get('feature_std', float('nan')):.4g}), "
        f"effective rank {results['effective_rank']:.1f} (init {base.get('effective_rank', float('nan')):.1f})"
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# ``mambajepa eval probe``


@register_evaluation("probe", applies_to=offers_probe)
class ProbeEvaluation(Evaluation):
    """``mambajepa eval probe --checkpoint RUN``: print the probe table, write ``RUN/probe.json``."""

    help = "linear / kNN / attentive probes and collapse statistics vs the random-init encoder"
    description = "Probe the frozen features of a run and of its random initialisation."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--out", default=None, help="where to write probe.json (default: <run dir>/probe.json)"
        )
        parser.add_argument("--n-train", type=int, default=None, help="items the probes are fitted on")
        parser.add_argument(
            "--n-eval", type=int, default=None, help="held-out items the probes are scored on"
        )
        parser.add_argument(
            "--encoder", default=None, help="which encoder to probe (a JEPA run: target | context)"
        )
        parser.add_argument(
            "--obs_frac",
            "--obs-frac",
            type=float,
            default=None,
            help="fraction of the pixels the encoder reads (a run that encodes sparse pixels: nf_jepa)",
        )
        parser.add_argument(
            "--tasks", nargs="+", default=None, help="labels to probe (default: every visible one)"
        )
        parser.add_argument("--no-attentive", action="store_true", help="skip the attentive probe")
        parser.add_argument("--task", default="shape", help="main task of the learning criterion line")

    def run(self, args: argparse.Namespace) -> int:
        config, ckpt = read_run_config(args.checkpoint)
        settings = probe_settings(config)
        changes = {
            "n_train": args.n_train,
            "n_eval": args.n_eval,
            "encoder": args.encoder,
            "obs_frac": args.obs_frac,
            "tasks": args.tasks,
            "attentive": False if args.no_attentive else None,
        }
        changes = {k: v for k, v in changes.items() if v is not None}
        fields = {f.name for f in dataclasses.fields(settings)}
        for key in changes:
            if key not in fields:
                raise ConfigError(
                    f"--{key.replace('_', '-')}: the {config.method!r} run's probe has no {key!r}"
                )
        # rebuilt through the config loader, so that the flags' values are type-checked
        settings = config_from_dict(type(settings), {**config_to_dict(settings), **changes})
        results = probe_run(ckpt, settings, progress=True)
        out = Path(args.out) if args.out else run_dir_of(ckpt) / "probe.json"
        write_probe_json(results, out)
        print(format_probe_table(results))
        if args.task in results:
            c = learning_criterion(results, args.task)
            print(
                f"criterion ({c['task']}): error {c['error']:.3f} vs random-init {c['random_init_error']:.3f} "
                f"(ratio {c['error_ratio']:.2f}, need <= 0.5); other tasks worse: {c['worse_tasks'] or 'none'}; "
                f"collapsed: {c['collapsed']} -> {'PASS' if c['passed'] else 'FAIL'}"
            )
        print(f"wrote {out}")
        return 0
