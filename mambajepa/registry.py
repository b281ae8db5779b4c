"""Named presets: models (``create_model``) and training methods (``get_method``).

Modules register themselves on import; :func:`load_all` imports every module of the
packages that hold registrations so that listings are complete.
"""

from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
from collections.abc import Callable
from typing import Any

import torch

from mambajepa.core.errors import CheckpointError, ConfigError
from mambajepa.core.pretrained import architectures, build_pretrained, read_config

_MODELS: dict[str, Callable[..., Any]] = {}
_METHODS: dict[str, type] = {}
_REGISTERING_PACKAGES = ("mambajepa.ssm", "mambajepa.encoders", "mambajepa.methods")
_loaded = False


def _unknown(kind: str, name: str, known: dict[str, Any]) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint} (known: {', '.join(sorted(known)) or 'none'})")


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a factory ``fn(**overrides) -> nn.Module`` under ``name``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _MODELS and _MODELS[name] is not fn:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = fn
        return fn

    return wrap


def register_method(name: str) -> Callable[[type], type]:
    """Decorator registering a :class:`mambajepa.methods.base.Method` subclass under ``name``."""

    def wrap(cls: type) -> type:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is registered twice")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return wrap


def load_all() -> None:
    """Import every module of the registering packages (once)."""
    global _loaded
    if _loaded:
        return
    for package_name in _REGISTERING_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            module_name = f"{package_name}.{info.name}"
            try:
                importlib.import_module(module_name)
            except ImportError as err:
                raise ImportError(f"registering presets: importing {module_name} failed: {err}") from err
    _loaded = True


def create_model(name: str, **overrides: Any) -> Any:
    """Build the named preset, with keyword overrides of its architecture arguments."""
    load_all()
    if name not in _MODELS:
        raise _unknown("model", name, _MODELS)
    return _MODELS[name](**overrides)


def list_models() -> list[str]:
    load_all()
    return sorted(_MODELS)


def get_method(name: str) -> type:
    load_all()
    if name not in _METHODS:
        raise _unknown("method", name, _METHODS)
    return _METHODS[name]


def list_methods() -> list[str]:
    load_all()
    return sorted(_METHODS)


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
