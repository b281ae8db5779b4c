"""Frozen-feature probes of a trained JEPA run against its randomly initialised encoder.

For every label of the data (ShapesWorld attributes, or a data set's class) a linear probe,
a kNN classifier and optionally an attentive probe are fitted on features of the training split
and scored on a held-out split; collapse statistics describe the pooled features. The same is
done for the encoder as initialised before training (same seed, same config), which is the
baseline of the learning criterion.

``probe.json``::

    {"shape": {"linear_acc": x, "knn_acc": x, "attentive_acc": x, "chance": x}, ...,
     "feature_std": x, "effective_rank": x, "feature_dim": D,
     "random_init": {same fields for the untrained encoder}}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from mambajepa.config import config_from_dict
from mambajepa.core.errors import CheckpointError, ConfigError
from mambajepa.eval.attentive_probe import attentive_probe_accuracy
from mambajepa.eval.collapse import effective_rank, feature_std, is_collapsed
from mambajepa.eval.features import FeatureSet, extract_features
from mambajepa.eval.knn import knn_accuracy
from mambajepa.eval.linear_probe import linear_probe_accuracy
from mambajepa.methods.jepa import JEPA, JEPAConfig, JEPAProbeConfig, build_dataset
from mambajepa.train.checkpoint import load_checkpoint_weights, resolve_checkpoint

__all__ = [
    "IMAGE_TASKS",
    "VIDEO_TASKS",
    "default_tasks",
    "probe_features",
    "load_run",
    "probe_run",
    "format_probe_table",
    "learning_criterion",
]

#: ShapesWorld labels a single image shows (direction and speed need motion)
IMAGE_TASKS = ("shape", "colour", "size", "position", "texture", "background")
#: ShapesWorld labels a clip shows
VIDEO_TASKS = IMAGE_TASKS + ("direction", "speed")


def default_tasks(config: JEPAConfig) -> list[str] | None:
    """Labels probed when ``probe.tasks`` is empty (None: every label of the items)."""
    d = config.data
    if d.dataset == "shapes_images":
        return list(IMAGE_TASKS) + (["count"] if d.max_objects > 1 else [])
    if d.dataset == "shapes_videos":
        return list(VIDEO_TASKS) + (["count"] if d.max_objects > 1 else [])
    return None


def _num_classes(dataset: Any, task: str, *labels: torch.Tensor) -> int:
    classes = getattr(dataset, "classes", None)
    if isinstance(classes, dict) and task in classes:
        return len(classes[task])
    if isinstance(classes, (list, tuple)) and task == "class":
        return len(classes)
    return int(max(int(y.max()) for y in labels)) + 1


def probe_features(
    train: FeatureSet, test: FeatureSet, num_classes: dict[str, int], cfg: JEPAProbeConfig
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


def load_run(path: str | Path) -> tuple[JEPAConfig, Path, dict[str, torch.Tensor]]:
    """The config, checkpoint directory and weights of a JEPA run.

    Args:
        path: a run directory, its ``checkpoints`` directory or one ``step_<N>`` directory.

    Returns:
        ``(config, checkpoint_dir, state_dict)``.

    Raises:
        CheckpointError: no valid checkpoint, or one that is not a JEPA run.
    """
    import yaml

    ckpt = resolve_checkpoint(path)
    data = yaml.safe_load((ckpt / "config.yaml").read_text()) or {}
    if data.get("method") != "jepa":
        raise CheckpointError(f"{ckpt} holds a {data.get('method')!r} run; the probe needs a 'jepa' run")
    return config_from_dict(JEPAConfig, data), ckpt, load_checkpoint_weights(ckpt)


def _build(config: JEPAConfig) -> JEPA:
    """The method as initialised at the start of training (same seeding as the trainer)."""
    from mambajepa.train.trainer import seed_everything

    seed_everything(config.train.seed)
    return JEPA.from_config(config).eval()


def probe_run(
    path: str | Path, probe: JEPAProbeConfig | None = None, progress: bool = False
) -> dict[str, Any]:
    """Probe a trained run and its random initialisation.

    Args:
        path: run or checkpoint directory.
        probe: probe settings (default: the run config's ``probe`` section).
        progress: print one line per stage.

    Returns:
        The ``probe.json`` content (see the module docstring).

    Raises:
        CheckpointError: unreadable run or weights that do not fit the config.
        ConfigError: a requested task the data does not label.
    """
    config, ckpt, weights = load_run(path)
    cfg = probe or config.probe
    cfg.validate()
    tasks = list(cfg.tasks) or default_tasks(config)
    train_ds = build_dataset(config.data, "train", cfg.n_train)
    test_ds = build_dataset(config.data, "test", cfg.n_eval)

    trained = _build(config)
    initial = _build(config)
    try:
        trained.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"weights of {ckpt} do not fit the run's config: {err}") from None

    def measure(method: JEPA, label: str) -> dict[str, Any]:
        if progress:
            print(f"probe: extracting {label} features", flush=True)
        encode = lambda x: method.features(x, cfg.encoder)  # noqa: E731
        train = extract_features(encode, train_ds, cfg.n_train, cfg.batch_size, cfg.attentive, tasks)
        test = extract_features(encode, test_ds, cfg.n_eval, cfg.batch_size, cfg.attentive, tasks)
        usable = {t: y for t, y in train.labels.items() if int(y.min()) >= 0 and len(torch.unique(y)) > 1}
        if cfg.tasks and set(cfg.tasks) - set(usable):
            raise ConfigError(
                f"probe.tasks {sorted(set(cfg.tasks) - set(usable))} have fewer than 2 classes in the data"
            )
        classes = {t: _num_classes(train_ds, t, y, test.labels[t]) for t, y in usable.items()}
        if progress:
            print(f"probe: fitting probes on {label} features ({', '.join(classes)})", flush=True)
        return probe_features(train, test, classes, cfg)

    results = measure(trained, "trained")
    results["random_init"] = measure(initial, "random-init")
    return results


def write_probe_json(results: dict[str, Any], path: str | Path) -> Path:
    """Write ``results`` as indented JSON (atomically).

    Returns:
        The path written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(path)
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
