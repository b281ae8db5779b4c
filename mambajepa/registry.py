"""Named presets: models, training methods, datasets and evaluations.

Modules of this package register themselves on import (``@register_model``, ``@register_method``,
``@register_dataset``, ``@register_evaluation``); :func:`load_all` imports every module that holds
registrations, and then the Python entry points of outside distributions, so that lookups and
listings are complete. An outside package registers through these entry-point groups::

    [project.entry-points."mambajepa.methods"]
    my_method = "my_package.method:MyMethod"      # an object: registered under the entry point's name
    [project.entry-points."mambajepa.datasets"]
    my_data = "my_package.data"                   # a module: importing it runs its decorators

Groups: ``mambajepa.models``, ``mambajepa.methods``, ``mambajepa.datasets``,
``mambajepa.evaluations``. An evaluation registered from its object applies to every method; a
module entry point whose decorators pass ``applies_to`` scopes it. An entry point that fails to
load raises :class:`EntryPointError` naming it.

Each registered factory also says which arguments it accepts (:func:`model_arguments`,
:func:`dataset_arguments`), so config sections that name an entry
(:class:`mambajepa.specs.EncoderSpec`, :class:`mambajepa.specs.DatasetSpec`) check every key and
type when a recipe is loaded.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import inspect
import os
import pkgutil
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from mambajepa.core.errors import CheckpointError, ConfigError, MambaJepaError
from mambajepa.core.names import did_you_mean
from mambajepa.core.pretrained import architectures, build_pretrained, read_config

__all__ = [
    "ENTRY_POINT_GROUPS",
    "Argument",
    "EntryPointError",
    "build_dataset",
    "create_model",
    "dataset_arguments",
    "evaluation_applies",
    "get_evaluation",
    "get_method",
    "list_datasets",
    "list_evaluations",
    "list_methods",
    "list_models",
    "load_all",
    "load_pretrained",
    "model_aliases",
    "model_arguments",
    "model_config_cls",
    "register_dataset",
    "register_evaluation",
    "register_method",
    "register_model",
]

_MODELS: dict[str, Callable[..., Any]] = {}
_MODEL_CONFIGS: dict[str, type] = {}  # model name -> its architecture config dataclass
_MODEL_ALIASES: dict[str, dict[str, str]] = {}  # model name -> {accepted name: config field}
_METHODS: dict[str, type] = {}
_DATASETS: dict[str, Callable[..., Any]] = {}
_EVALUATIONS: dict[str, type] = {}
_EVALUATION_SCOPES: dict[str, Callable[[type], bool]] = {}  # evaluation -> which method classes

#: packages whose every module is imported by :func:`load_all`, and single registering modules
_REGISTERING_PACKAGES = ("mambajepa.ssm", "mambajepa.encoders", "mambajepa.methods", "mambajepa.eval")
_REGISTERING_MODULES = ("mambajepa.data.datasets",)
#: entry-point group -> kind of entry it registers
ENTRY_POINT_GROUPS = {
    "mambajepa.models": "model",
    "mambajepa.methods": "method",
    "mambajepa.datasets": "dataset",
    "mambajepa.evaluations": "evaluation",
}
_loaded = False


class EntryPointError(MambaJepaError, ImportError):
    """An entry point of an outside distribution that cannot be loaded or registered."""


def _unknown(kind: str, name: str, known: dict[str, Any]) -> ConfigError:
    hint = did_you_mean(name, list(known))
    return ConfigError(f"unknown {kind} {name!r}{hint} (known: {', '.join(sorted(known)) or 'none'})")


def _claim(kind: str, table: dict[str, Any], name: str, obj: Any) -> None:
    if name in table and table[name] is not obj:
        raise ValueError(f"{kind} {name!r} is registered twice")
    table[name] = obj


# ----------------------------------------------------------------------------------------------
# accepted arguments


@dataclass(frozen=True)
class Argument:
    """One argument a registered factory accepts.

    Attributes:
        name: keyword name.
        annotation: its resolved type annotation (``Any`` when unannotated).
        default: its default, or ``inspect.Parameter.empty`` when the argument is required.
    """

    name: str
    annotation: Any
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


def _signature_arguments(fn: Callable[..., Any], skip: int) -> dict[str, Argument] | None:
    """Keyword arguments of ``fn`` after its first ``skip`` parameters; None when it takes ``**kwargs``."""
    params = list(inspect.signature(fn).parameters.values())[skip:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    hints = typing.get_type_hints(fn)
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name: Argument(p.name, hints.get(p.name, Any), p.default) for p in params if p.kind in keyword}


def _dataclass_arguments(cls: type) -> dict[str, Argument]:
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = inspect.Parameter.empty
        out[f.name] = Argument(f.name, hints[f.name], default)
    return out


# ----------------------------------------------------------------------------------------------
# models


def register_model(
    name: str, config_cls: type | None = None, aliases: dict[str, str] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a factory ``fn(**overrides) -> nn.Module`` under ``name``.

    Args:
        name: the preset name (``create_model(name)``).
        config_cls: the architecture dataclass whose fields the overrides set (``ViTConfig``); config
            sections naming the preset are checked against its fields and types. Without it the
            factory's own keyword arguments are the accepted ones.
        aliases: other names the factory accepts for config fields (``{"tubelet_size": "kernel_size"}``).
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        _claim("model", _MODELS, name, fn)
        if config_cls is not None:
            if not dataclasses.is_dataclass(config_cls):
                raise TypeError(f"model {name!r}: config_cls={config_cls!r} is not a dataclass")
            _MODEL_CONFIGS[name] = config_cls
        _MODEL_ALIASES[name] = dict(aliases or {})
        return fn

    return wrap


def create_model(name: str, **overrides: Any) -> Any:
    """Build the named preset, with keyword overrides of its architecture arguments."""
    load_all()
    if name not in _MODELS:
        raise _unknown("model", name, _MODELS)
    return _MODELS[name](**overrides)


def list_models() -> list[str]:
    load_all()
    return sorted(_MODELS)


def model_config_cls(name: str) -> type | None:
    """The architecture dataclass of preset ``name`` (None when it was registered without one).

    Raises:
        ConfigError: an unknown model (the closest name suggested).
    """
    load_all()
    if name not in _MODELS:
        raise _unknown("model", name, _MODELS)
    return _MODEL_CONFIGS.get(name)


def model_arguments(name: str) -> dict[str, Argument] | None:
    """The overrides preset ``name`` accepts: its config dataclass's fields, else its factory's arguments.

    Returns:
        ``{field: Argument}``, or None when the factory takes any ``**kwargs`` unchecked.

    Raises:
        ConfigError: an unknown model.
    """
    config_cls = model_config_cls(name)
    if config_cls is not None:
        return _dataclass_arguments(config_cls)
    return _signature_arguments(_MODELS[name], skip=0)


def model_aliases(name: str) -> dict[str, str]:
    """Other names preset ``name`` accepts for its config fields (``{alias: field}``)."""
    model_config_cls(name)
    return dict(_MODEL_ALIASES.get(name, {}))


# ----------------------------------------------------------------------------------------------
# methods


def register_method(name: str) -> Callable[[type], type]:
    """Decorator registering a :class:`mambajepa.methods.base.Method` subclass under ``name``."""

    def wrap(cls: type) -> type:
        _claim("method", _METHODS, name, cls)
        cls.name = name
        return cls

    return wrap


def get_method(name: str) -> type:
    load_all()
    if name not in _METHODS:
        raise _unknown("method", name, _METHODS)
    return _METHODS[name]


def list_methods() -> list[str]:
    load_all()
    return sorted(_METHODS)


# ----------------------------------------------------------------------------------------------
# datasets


def register_dataset(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a dataset factory ``fn(split, **arguments) -> Dataset | None`` under ``name``.

    The first parameter is the split (``"train"``, ``"val"`` or ``"test"``); the others are
    annotated keyword arguments, which a method's data section sets by name and which are
    type-checked when the recipe is loaded. Image and video datasets take ``image_size`` (clips
    also ``num_frames``) so that methods can size their models before reading data. A factory
    returns ``None`` for a split it holds no items for.
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not list(inspect.signature(fn).parameters):
            raise TypeError(f"dataset {name!r}: the factory must take the split as its first parameter")
        _claim("dataset", _DATASETS, name, fn)
        return fn

    return wrap


def dataset_arguments(name: str) -> dict[str, Argument] | None:
    """The keyword arguments of dataset ``name``'s factory (after the split); None: unchecked ``**kwargs``.

    Raises:
        ConfigError: an unknown dataset (the closest name suggested).
    """
    load_all()
    if name not in _DATASETS:
        raise _unknown("dataset", name, _DATASETS)
    return _signature_arguments(_DATASETS[name], skip=1)


def build_dataset(name: str, split: str = "train", **kwargs: Any) -> Any:
    """Build the registered dataset ``name`` for ``split``.

    Args:
        name: a registered dataset (:func:`list_datasets`).
        split: ``"train"``, ``"val"`` or ``"test"``.
        **kwargs: the factory's arguments.

    Returns:
        A dataset, or None when the dataset has no items for ``split``.

    Raises:
        ConfigError: an unknown dataset, an argument it does not take (the closest one named) or a
            missing required argument.
        DataError: on-disk data that cannot be found or read.
    """
    arguments = dataset_arguments(name)
    if arguments is not None:
        for key in kwargs:
            if key not in arguments:
                hint = did_you_mean(key, list(arguments))
                raise ConfigError(f"dataset {name!r} takes no argument {key!r}{hint}")
        missing = [a.name for a in arguments.values() if a.required and a.name not in kwargs]
        if missing:
            raise ConfigError(f"dataset {name!r} needs {', '.join(missing)}")
    return _DATASETS[name](split, **kwargs)


def list_datasets() -> list[str]:
    load_all()
    return sorted(_DATASETS)


# ----------------------------------------------------------------------------------------------
# evaluations


def _scope(applies_to: Callable[[type], bool] | Iterable[str] | None) -> Callable[[type], bool]:
    if applies_to is None:
        return lambda method_cls: True
    if callable(applies_to):
        return applies_to
    names = frozenset(applies_to)
    return lambda method_cls: getattr(method_cls, "name", None) in names


def register_evaluation(
    name: str, applies_to: Callable[[type], bool] | Iterable[str] | None = None
) -> Callable[[type], type]:
    """Decorator registering an evaluation class under ``name`` (``mambajepa eval NAME``).

    The class is built without arguments and has ``configure(parser)`` (adds its flags to the
    ``argparse`` sub-command; ``--checkpoint RUN`` is already there) and ``run(args) -> int``; its
    ``help`` attribute is the line shown by ``mambajepa eval --help``.

    Args:
        name: the sub-command name.
        applies_to: which methods offer it: a predicate on the method class, a list of method
            names, or None for every method.
    """

    def wrap(cls: type) -> type:
        for hook in ("configure", "run"):
            if not callable(getattr(cls, hook, None)):
                raise TypeError(f"evaluation {name!r}: {cls.__name__} has no {hook}() method")
        _claim("evaluation", _EVALUATIONS, name, cls)
        _EVALUATION_SCOPES[name] = _scope(applies_to)
        cls.name = name
        return cls

    return wrap


def get_evaluation(name: str) -> type:
    load_all()
    if name not in _EVALUATIONS:
        raise _unknown("evaluation", name, _EVALUATIONS)
    return _EVALUATIONS[name]


def evaluation_applies(name: str, method: str | type) -> bool:
    """Whether the method (a registered name or a method class) offers evaluation ``name``."""
    get_evaluation(name)
    method_cls = get_method(method) if isinstance(method, str) else method
    return bool(_EVALUATION_SCOPES[name](method_cls))


def list_evaluations(method: str | type | None = None) -> list[str]:
    """Registered evaluations; with ``method`` (a name or class) only those it offers."""
    load_all()
    if method is None:
        return sorted(_EVALUATIONS)
    return [name for name in sorted(_EVALUATIONS) if evaluation_applies(name, method)]


# ----------------------------------------------------------------------------------------------
# discovery


def _register_entry_point(kind: str, name: str, obj: Any) -> None:
    """Register an object an entry point names, unless its module already registered it."""
    if kind == "model":
        if obj not in _MODELS.values():
            register_model(name)(obj)
    elif kind == "method":
        if obj not in _METHODS.values():
            register_method(name)(obj)
    elif kind == "dataset":
        if obj not in _DATASETS.values():
            register_dataset(name)(obj)
    elif obj not in _EVALUATIONS.values():
        register_evaluation(name)(obj)


def _load_entry_points() -> None:
    for group, kind in ENTRY_POINT_GROUPS.items():
        for entry in importlib.metadata.entry_points(group=group):
            dist = getattr(entry, "dist", None)
            where = f"entry point {entry.name!r} = {entry.value!r} (group {group!r}"
            where += f", distribution {dist.name} {dist.version})" if dist is not None else ")"
            try:
                obj = entry.load()
            except Exception as err:  # outside code may fail in any way: name the entry point
                raise EntryPointError(f"{where} failed to load: {type(err).__name__}: {err}") from err
            if isinstance(obj, types.ModuleType):
                continue  # importing it ran its registration decorators
            try:
                _register_entry_point(kind, entry.name, obj)
            except (TypeError, ValueError) as err:
                raise EntryPointError(f"{where} cannot be registered as a {kind}: {err}") from err


def load_all() -> None:
    """Import every registering module of the package, then the entry points (once).

    Raises:
        ImportError: a module of the package failed to import.
        EntryPointError: an outside entry point failed to load or register (it is named).
    """
    global _loaded
    if _loaded:
        return
    _loaded = True  # registering modules may look names up while they are imported
    try:
        modules = list(_REGISTERING_MODULES)
        for package_name in _REGISTERING_PACKAGES:
            package = importlib.import_module(package_name)
            modules += [f"{package_name}.{info.name}" for info in pkgutil.iter_modules(package.__path__)]
        for module_name in modules:
            try:
                importlib.import_module(module_name)
            except ImportError as err:
                raise ImportError(f"registering presets: importing {module_name} failed: {err}") from err
        _load_entry_points()
    except BaseException:
        _loaded = False
        raise


# ----------------------------------------------------------------------------------------------
# pretrained folders


def load_pretrained(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Any:
    """Rebuild whatever model ``save_pretrained`` wrote into ``directory``, whatever its class.

    Args:
        directory: a pretrained folder (``config.json`` naming the architecture + ``model.safetensors``).
        device: where to place the model.

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: for missing files, an unknown architecture or mismatched weights.
    """
    fields, arch = read_config(directory)
    load_all()
    known = architectures()
    if arch not in known:
        raise CheckpointError(
            f"{directory} holds unknown architecture {arch!r} (known: {', '.join(sorted(known))})"
        )
    return build_pretrained(known[arch], directory, fields, device)
