"""Typed dataclass configs: YAML load/save, dotted command-line overrides, validation.

A recipe is a YAML file whose top-level ``method:`` names a registered method; that method's
``config_cls`` (a dataclass subclass of :class:`RunConfig`) says which sections and fields
exist and of which types. Loading builds the nested dataclasses, checking every value::

    cfg = load_config("configs/debug_tiny.yaml", ["--train.lr=3e-4", "--model.hidden", "64"])

Overrides are ``--a.b=value`` or ``--a.b value``; values are parsed as YAML scalars, so
``true``, ``3``, ``0.5``, ``null`` and ``[1, 2]`` mean what they look like. A config class may
map short flags of the design inputs to dotted paths in ``ALIASES`` (``--obs_frac 0.05``).

Every dataclass may define ``validate(self) -> None`` for cross-field checks; it raises
:class:`~mambajepa.core.errors.ConfigError` and the loader prefixes the section's path. A section
class with a classmethod ``from_mapping(data, path)`` and a method ``to_mapping()`` reads and writes
its own mapping instead (the sections of :mod:`mambajepa.specs` name a registered model or dataset
and check its arguments).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from mambajepa.core.errors import ConfigError
from mambajepa.core.files import atomic_write_text
from mambajepa.core.names import did_you_mean

__all__ = [
    "TrainConfig",
    "StageConfig",
    "RunConfig",
    "load_config",
    "save_config",
    "config_to_dict",
    "config_from_dict",
    "config_hash",
    "coerce_value",
    "parse_overrides",
    "validate_config",
    "recipes_dir",
    "list_recipes",
    "resolve_recipe",
]


@dataclass
class TrainConfig:
    """Optimisation, schedule, logging and checkpointing of a run (method-agnostic)."""

    max_steps: int = 1000  # optimizer updates of a run without stages (and the base of step fractions)
    max_tokens: int | None = None  # token budget of the run: stages with `fraction` take a share of it
    batch_size: int = 32  # global batch (all ranks and accumulation micro-steps together)
    lr: float = 1e-3  # peak learning rate, reached at the end of warm-up
    min_lr: float = 0.0  # final learning rate of the cosine / linear schedules
    warmup_steps: int = 0  # linear warm-up from 0 to `lr` over this many updates
    lr_schedule: Literal["cosine", "constant", "linear"] = "cosine"  # shape after warm-up
    weight_decay: float = 0.05  # AdamW decoupled weight decay at step 0
    final_weight_decay: float | None = None  # value at the last step; None keeps it constant
    weight_decay_schedule: Literal["cosine", "constant", "linear"] = "cosine"  # with final_weight_decay
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas
    eps: float = 1e-8  # AdamW epsilon
    grad_clip: float | None = 1.0  # max global grad norm; None or 0 disables clipping
    grad_accum: int = 1  # micro-batches per update; batch_size must divide by grad_accum * ranks
    seed: int = 0  # seeds python, numpy, torch, data order and collation
    checkpoint_every: int = 1000  # save every N updates (and at the end); 0 saves only at the end
    keep_last: int = 3  # number of most recent checkpoints kept (the best one is kept as well)
    best_metric: str | None = None  # eval metric deciding the best checkpoint, e.g. "val/loss"
    best_mode: Literal["min", "max"] = "min"  # whether lower or higher `best_metric` is better
    eval_every: int = 0  # run the method's evaluation every N updates; 0 disables it
    eval_batches: int = 8  # held-out batches per evaluation
    log_every: int = 10  # write a metrics.jsonl line every N updates
    max_nonfinite: int = 3  # stop with TrainingDiverged after this many non-finite losses in a row
    num_workers: int = 0  # DataLoader worker processes
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    tensorboard: bool = False  # also write TensorBoard events to <run_dir>/tb
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when available
    progress: bool = True  # show a tqdm progress bar (rank 0 only)
    plots: bool = True  # write plots/loss.png and plots/lr.png at the end
    strategy: Literal["ddp", "fsdp"] = "ddp"  # with several processes: DDP replicas or FSDP2 shards
    find_unused_parameters: bool = False  # DDP: allow trainable parameters that get no gradient in a step

    def validate(self) -> None:
        """Check ranges and coupled fields.

        Raises:
            ConfigError: naming the field and its value.
        """
        positive = ("max_steps", "batch_size", "grad_accum", "keep_last", "log_every", "max_nonfinite")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("warmup_steps", "checkpoint_every", "eval_every", "eval_batches", "num_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0")
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr:
            raise ConfigError(f"need 0 <= min_lr <= lr and lr > 0, got lr={self.lr}, min_lr={self.min_lr}")
        if self.warmup_steps > self.max_steps:
            raise ConfigError(f"warmup_steps={self.warmup_steps} exceeds max_steps={self.max_steps}")
        if self.batch_size % self.grad_accum:
            raise ConfigError(
                f"batch_size={self.batch_size} is not divisible by grad_accum={self.grad_accum}"
            )
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas={self.betas} must lie in [0, 1)")
        if self.weight_decay < 0 or (self.final_weight_decay is not None and self.final_weight_decay < 0):
            raise ConfigError(
                f"weight decay must be >= 0, got weight_decay={self.weight_decay}, "
                f"final_weight_decay={self.final_weight_decay}"
            )
        if self.grad_clip is not None and self.grad_clip < 0:
            raise ConfigError(f"grad_clip={self.grad_clip} must be >= 0 or null")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens={self.max_tokens} must be >= 1 or null")


@dataclass
class StageConfig:
    """One stage of a run: its length, schedule, loss weights, data and frozen modules.

    Unset (null) fields take the value of the ``train`` section. A stage's length is exactly one
    of ``steps`` (optimizer updates), ``tokens`` (tokens trained on, as the method counts them) or
    ``fraction`` (of ``train.max_tokens`` when it is set, else of ``train.max_steps``). Schedules
    restart in each stage: warm-up and decay run over the stage's own length, in its own unit.
    """

    name: str = ""  # label in logs, metrics.jsonl and the progress bar (default: stage<i>)
    steps: int | None = None  # length in optimizer updates
    tokens: int | None = None  # length in tokens (TrainOutput.tokens, summed over ranks)
    fraction: float | None = None  # length as a share of train.max_tokens (or of train.max_steps)
    lr: float | None = None  # peak learning rate
    min_lr: float | None = None  # final learning rate
    warmup: int | None = None  # warm-up length, in the stage's unit (updates or tokens)
    lr_schedule: Literal["cosine", "constant", "linear"] | None = None  # shape after warm-up
    weight_decay: float | None = None  # weight decay at the stage's start
    final_weight_decay: float | None = None  # weight decay at the stage's end (null: constant)
    batch_size: int | None = None  # global batch of this stage
    grad_accum: int | None = None  # micro-batches per update in this stage
    loss_weights: dict[str, float] = field(default_factory=dict)  # weights of the method's loss terms
    data: dict[str, Any] = field(default_factory=dict)  # overrides of the `data` section in this stage
    freeze: list[str] = field(default_factory=list)  # module paths (e.g. text_encoder) frozen in this stage

    def validate(self) -> None:
        lengths = [k for k in ("steps", "tokens", "fraction") if getattr(self, k) is not None]
        if len(lengths) != 1:
            raise ConfigError(
                f"steps|tokens|fraction: stage {self.name!r} needs exactly one, got {lengths or 'none'}"
            )
        for key in ("steps", "tokens", "batch_size", "grad_accum"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{key}={value} must be >= 1 (stage {self.name!r})")
        if self.fraction is not None and not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"fraction={self.fraction} must lie in (0, 1] (stage {self.name!r})")
        if self.warmup is not None and self.warmup < 0:
            raise ConfigError(f"warmup={self.warmup} must be >= 0 (stage {self.name!r})")
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"lr={self.lr} must be > 0 (stage {self.name!r})")
        if self.min_lr is not None and self.min_lr < 0:
            raise ConfigError(f"min_lr={self.min_lr} must be >= 0 (stage {self.name!r})")


@dataclass
class RunConfig:
    """Top-level config of a run; each method subclasses it with its own sections."""

    #: short flags of the design inputs -> dotted paths (``{"obs_frac": "data.obs_frac"}``)
    ALIASES: ClassVar[dict[str, str]] = {}

    method: str = ""  # registered method name (mambajepa.registry.get_method)
    name: str = "run"  # run name; the default run directory is runs/<name>
    train: TrainConfig = field(default_factory=TrainConfig)  # optimisation and bookkeeping
    stages: list[StageConfig] = field(default_factory=list)  # the run's stages; empty: one stage

    def validate(self) -> None:
        """Check the stages against the run: unique names and data overrides that the ``data``
        section accepts.

        Raises:
            ConfigError: naming the stage and the field.
        """
        names = [s.name for s in self.stages if s.name]
        if len(names) != len(set(names)):
            raise ConfigError(f"stages: names must be unique, got {names}")
        data = getattr(self, "data", None)
        for i, stage in enumerate(self.stages):
            if stage.data:
                if not (dataclasses.is_dataclass(data) and not isinstance(data, type)):
                    raise ConfigError(f"stages[{i}].data: method {self.method!r} has no data section")
                self.stage_config(i)  # builds (and so checks) the stage's data section

    def stage_config(self, index: int) -> RunConfig:
        """This config as stage ``index`` sees it: the ``data`` section with the stage's overrides.

        Raises:
            ConfigError: an override the data section does not accept (closest key named).
        """
        stage = self.stages[index] if self.stages else None
        if stage is None or not stage.data:
            return self
        data = self.data  # type: ignore[attr-defined]  # sections are defined by subclasses
        current = config_to_dict(data)
        if "name" in stage.data and stage.data["name"] != current.get("name"):
            current = {}  # another dataset: its arguments start from that dataset's defaults
        merged = {**current, **stage.data}
        _ROOT.append(type(data))
        try:
            built = _coerce(merged, type(data), f"stages[{index}].data")
        finally:
            _ROOT.pop()
        return dataclasses.replace(self, data=built)

    def planned_steps(self) -> int | None:
        """Optimizer updates of the whole run when every stage is measured in updates, else None."""
        if not self.stages:
            return self.train.max_steps
        total = 0
        for stage in self.stages:
            if stage.steps is not None:
                total += stage.steps
            elif stage.fraction is not None and self.train.max_tokens is None:
                total += max(1, round(stage.fraction * self.train.max_steps))
            else:
                return None
        return total


# ----------------------------------------------------------------------------------------------
# type checking and construction


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _is_union(origin: Any) -> bool:
    return origin is typing.Union or origin is types.UnionType


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (lists -> tuples, ...)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    from_mapping = getattr(tp, "from_mapping", None) if isinstance(tp, type) else None
    if from_mapping is not None:  # a section that checks itself (a registered name + its arguments)
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping for section {tp.__name__}, got {value!r}")
        return from_mapping(value, path)
    if _is_union(origin):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise ConfigError(f"{path}: expected one of {list(args)}, got {value!r}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping for section {tp.__name__}, got {value!r}")
        return _build(tp, value, path)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        if origin is list or tp is list:
            item_tp = args[0] if args else Any
            return [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item_tp = args[0] if args else Any
            return tuple(_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} items ({_type_name(tp)}), got {value!r}")
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        key_tp, val_tp = args if args else (Any, Any)
        return {
            _coerce(k, key_tp, f"{path}.<key>"): _coerce(v, val_tp, f"{path}.{k}") for k, v in value.items()
        }
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected bool (true/false), got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected int, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected float, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected str, got {value!r}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"{path}: expected {tp.__name__}, got {value!r}")
    raise ConfigError(f"{path}: unsupported annotation {tp!r} in a config class")


def coerce_value(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the type annotation ``tp`` as recipe loading does.

    Args:
        value: a YAML / command-line value.
        tp: the annotation (``int``, ``tuple[float, float]``, ``Literal["a", "b"]``, a config dataclass, ...).
        path: the dotted key, for messages.

    Returns:
        The value converted (lists to tuples, ints to floats, mappings to dataclasses).

    Raises:
        ConfigError: a value of the wrong type, naming ``path``.
    """
    return _coerce(value, tp, path)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _valid_paths(cls: type, prefix: str = "") -> list[str]:
    """Every dotted field path of a config class (sections and leaves)."""
    paths = []
    hints = _hints(cls)
    for name in _fields(cls):
        path = f"{prefix}{name}"
        paths.append(path)
        tp = hints[name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            paths.extend(_valid_paths(tp, f"{path}."))
    return paths


def _unknown_key(path: str, root_cls: type) -> ConfigError:
    valid = _valid_paths(root_cls) + sorted(getattr(root_cls, "ALIASES", {}))
    return ConfigError(f"unknown config key {path!r}{did_you_mean(path, valid)}")


_ROOT: list[type] = []  # root class of the config being built, for "closest key" hints


def _build(cls: type, data: dict[str, Any], path: str) -> Any:
    hints = _hints(cls)
    fields = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        full = f"{path}.{key}" if path else str(key)
        if key not in fields:
            leaf, node = full, value
            while isinstance(node, dict) and node:  # name the full key of an unknown section's entry
                first = next(iter(node))
                leaf, node = f"{leaf}.{first}", node[first]
            raise _unknown_key(leaf, _ROOT[-1] if _ROOT else cls)
        kwargs[key] = _coerce(value, hints[key], full)
    try:
        obj = cls(**kwargs)
    except ConfigError as err:  # raised by __post_init__
        raise ConfigError(f"{path or cls.__name__}: {err}") from None
    _validate_one(obj, path)
    return obj


def _validate_one(obj: Any, path: str) -> None:
    check = getattr(obj, "validate", None)
    if callable(check):
        try:
            check()
        except ConfigError as err:
            raise ConfigError(f"{path}.{err}" if path else str(err)) from None


def validate_config(cfg: Any, path: str = "") -> None:
    """Run ``validate()`` of every nested section of a config built in Python.

    Raises:
        ConfigError: a cross-field check failed; the message starts with the section path.
    """
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate_config(value, f"{path}.{f.name}" if path else f.name)
    _validate_one(cfg, path)


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build the dataclass ``cls`` from a nested mapping, checking keys and types.

    Raises:
        ConfigError: unknown key (with the closest valid key), wrong type or failed check.
    """
    _ROOT.append(cls)
    try:
        return _build(cls, data, "")
    finally:
        _ROOT.pop()


# ----------------------------------------------------------------------------------------------
# overrides


def parse_overrides(tokens: list[str]) -> list[tuple[str, Any]]:
    """Parse ``["--a.b=1", "--c", "x", "--flag"]`` into ``[("a.b", 1), ("c", "x"), ("flag", True)]``.

    Values are YAML scalars (``3`` -> int, ``3e-4`` -> str coerced later where a float is
    expected, ``[1, 2]`` -> list). A flag with no value means ``true``.

    Raises:
        ConfigError: a token that is not a ``--key`` where one is expected.
    """
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or len(token) <= 2:
            raise ConfigError(f"expected an override like --section.key=value, got {token!r}")
        body = token[2:]
        if "=" in body:
            key, raw = body.split("=", 1)
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            key, raw = body, tokens[i + 1]
            i += 2
        else:
            key, raw = body, "true"
            i += 1
        out.append((key.replace("-", "_"), _parse_scalar(raw)))
    return out


def _parse_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def _apply_override(data: dict[str, Any], key: str, value: Any, root_cls: type) -> None:
    """Set ``key`` (dotted; an integer part indexes a list, as in ``stages.1.lr``) to ``value``."""
    aliases = getattr(root_cls, "ALIASES", {})
    key = aliases.get(key, key)
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"override {key!r}: {where!r} is not an index of a {len(node)}-element list"
                )
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        else:
            raise ConfigError(f"override {key!r}: {'.'.join(parts[:depth])!r} is not a section")
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override {key!r}: {where!r} is not a section")


# ----------------------------------------------------------------------------------------------
# load / save


def _method_config_cls(method: str) -> type:
    from mambajepa.registry import get_method

    cls = get_method(method).config_cls
    if not (isinstance(cls, type) and issubclass(cls, RunConfig)):
        raise ConfigError(f"method {method!r} has config_cls={cls!r}, expected a RunConfig subclass")
    return cls


def load_config(
    path_or_dict: str | os.PathLike | dict[str, Any], overrides: list[str] | None = None
) -> RunConfig:
    """Load a recipe, apply overrides and return the method's typed config.

    Args:
        path_or_dict: a YAML file path or an already parsed mapping; must name ``method``.
        overrides: command-line tokens such as ``["--train.lr=3e-4", "--model.depth", "6"]``.

    Returns:
        An instance of the method's ``config_cls`` with every section validated.

    Raises:
        ConfigError: missing/unknown method, unknown key, wrong type or inconsistent values.
    """
    if isinstance(path_or_dict, dict):
        data = json.loads(json.dumps(path_or_dict))  # deep copy of plain data
        source = "<dict>"
    else:
        source = str(path_or_dict)
        try:
            text = Path(path_or_dict).read_text()
        except OSError as err:
            raise ConfigError(f"cannot read config file {source!r}: {err}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {source!r} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {source!r} must be a mapping at the top level, got {type(data).__name__}")
    parsed = parse_overrides(list(overrides or []))
    for key, value in parsed:  # the method may itself be overridden
        if key == "method":
            data["method"] = value
    method = data.get("method")
    if not isinstance(method, str) or not method:
        raise ConfigError(f"config {source!r} needs a top-level 'method:' naming a registered method")
    cls = _method_config_cls(method)
    for key, value in parsed:
        if key != "method":
            _apply_override(data, key, value, cls)
    return config_from_dict(cls, data)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples as lists), suitable for YAML and JSON."""

    def plain(value: Any) -> Any:
        if callable(getattr(value, "to_mapping", None)) and not isinstance(value, type):
            return plain(value.to_mapping())  # the inverse of a section's from_mapping
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


def save_config(cfg: RunConfig, path: str | os.PathLike) -> None:
    """Write the complete resolved config as YAML (reloadable with :func:`load_config`)."""
    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None))


def config_hash(cfg: Any) -> str:
    """Short stable hash of a config's content (16 hex digits of sha256)."""
    blob = json.dumps(config_to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# recipes shipped in the repository's configs/ directory


def recipes_dir() -> Path:
    """The folder of the YAML recipes.

    An installed package carries the repository's ``configs/`` folder as the package
    ``mambajepa.configs`` (mapped in ``setup.py``) and finds it through ``importlib.resources``; a
    source checkout that does not map it (``PYTHONPATH``, an editable install made before the
    mapping) reads ``configs/`` next to the package.
    """
    from importlib import resources

    try:
        shipped = resources.files("mambajepa.configs")
    except ModuleNotFoundError:
        shipped = None
    if isinstance(shipped, os.PathLike) and Path(shipped).is_dir():
        return Path(shipped)
    return Path(__file__).resolve().parent.parent / "configs"


def list_recipes() -> list[str]:
    """Names of the YAML recipes in :func:`recipes_dir` (without extension), sorted."""
    root = recipes_dir()
    return sorted(p.stem for p in root.glob("*.yaml")) if root.is_dir() else []


def resolve_recipe(name_or_path: str | os.PathLike) -> Path:
    """Return a YAML path for a file path or a recipe name such as ``debug_tiny``.

    Raises:
        ConfigError: neither an existing file nor a known recipe (closest recipe suggested).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    candidate = recipes_dir() / f"{stem}.yaml"
    if candidate.is_file():
        return candidate
    hint = did_you_mean(stem, list_recipes())
    raise ConfigError(f"config {str(name_or_path)!r} is neither a file nor a recipe in {recipes_dir()}{hint}")
