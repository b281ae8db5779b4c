"""``save_pretrained(dir)`` / ``from_pretrained(dir)``: a folder with ``config.json`` + ``model.safetensors``.

``config.json`` holds the fields of the model's config dataclass plus ``"architecture"`` (the
class name), so :func:`load_pretrained` can rebuild any model saved this way without being told
its class. A model opts in by subclassing :class:`PretrainedMixin`, setting ``config_class`` and
keeping its config in ``self.config``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

import mambajepa
from mambajepa.core.errors import CheckpointError, ConfigError
from mambajepa.core.files import atomic_write_json, load_state_dict, read_json, save_state_dict
from mambajepa.core.mapping import load_mapped
from mambajepa.core.names import did_you_mean

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_ARCHITECTURES: dict[str, type] = {}

T = TypeVar("T", bound="PretrainedMixin")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as JSON-ready nested dicts.

    Args:
        config: a dataclass instance (fields may be nested dataclasses, tuples, lists, scalars).

    Returns:
        Plain dicts/lists/scalars; tuples become lists.
    """
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _convert(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return config_from_dict(hint, value, path)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if arg is not type(None) and (dataclasses.is_dataclass(arg) or typing.get_origin(arg) is tuple):
                return _convert(value, arg, path) if value is not None else None
        return value
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    return value


def config_from_dict(cls: type, data: dict[str, Any], path: str = "") -> Any:
    """Build dataclass ``cls`` from JSON dicts, recursing into nested dataclass fields.

    Args:
        cls: the config dataclass.
        data: field name -> value, as written by :func:`config_to_dict`.
        path: dotted location used in error messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: for a key that is not a field, naming the closest field.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            hint = did_you_mean(key, fields)
            raise ConfigError(f"unknown config key {path + key!r} for {cls.__name__}{hint}")
        kwargs[key] = _convert(value, hints[key], f"{path}{key}.")
    return cls(**kwargs)


class PretrainedMixin:
    """Adds ``save_pretrained`` / ``from_pretrained`` to an ``nn.Module`` with a dataclass ``config``."""

    config_class: ClassVar[type]
    config: Any

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _ARCHITECTURES[cls.__name__] = cls

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed).

        Args:
            directory: destination folder; existing files of the same names are replaced atomically.

        Returns:
            The folder path.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        assert isinstance(self, nn.Module)
        save_state_dict(self.state_dict(), directory / WEIGHTS_NAME, metadata={"format": "pt"})
        meta = {"architecture": type(self).__name__, "mambajepa_version": mambajepa.__version__}
        atomic_write_json(directory / CONFIG_NAME, {**meta, **config_to_dict(self.config)})
        return directory

    @classmethod
    def from_pretrained(
        cls: type[T], directory: str | os.PathLike, device: str | torch.device = "cpu", **overrides: Any
    ) -> T:
        """Rebuild the model saved in ``directory``.

        Args:
            directory: a folder written by :meth:`save_pretrained`.
            device: where to place the model.
            **overrides: config fields to replace (e.g. ``drop_path_rate``); architecture changes
                that alter tensor shapes fail the weight check.

        Returns:
            The model in eval mode.

        Raises:
            CheckpointError: if files are missing, the folder holds another architecture, or
                weights do not match.
            ConfigError: for unknown config keys.
        """
        config, arch = read_config(directory)
        if arch != cls.__name__:
            raise CheckpointError(f"{directory} holds a {arch}, not a {cls.__name__}")
        return build_pretrained(cls, directory, {**config, **overrides}, device)


def read_config(directory: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """Read ``config.json`` of a pretrained folder.

    Returns:
        ``(config fields, architecture name)``.

    Raises:
        CheckpointError: if the file is missing, malformed or names no architecture.
    """
    path = Path(directory) / CONFIG_NAME
    data = read_json(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, expected a JSON object")
    arch = data.pop("architecture", None)
    data.pop("mambajepa_version", None)
    if not isinstance(arch, str):
        raise CheckpointError(f"{path} names no 'architecture'")
    return data, arch


def architectures() -> dict[str, type]:
    """Every :class:`PretrainedMixin` subclass imported so far, by class name."""
    return dict(_ARCHITECTURES)


def build_pretrained(cls: type, directory: str | os.PathLike, fields: dict[str, Any], device) -> Any:
    """Build ``cls`` from config ``fields`` and load ``directory``'s weights into it (eval mode)."""
    config = config_from_dict(cls.config_class, fields)
    model = cls(config)
    state = load_state_dict(Path(directory) / WEIGHTS_NAME)
    load_mapped(model, state, source=str(Path(directory) / WEIGHTS_NAME))
    return model.to(device).eval()
