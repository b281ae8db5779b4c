"""Config sections that name a registered entry and set its arguments.

A recipe writes such a section as one flat mapping, the name and then any argument::

    encoder:                      # EncoderSpec: a model preset + fields of its config dataclass
      name: videomamba_tiny_cpu
      embed_dim: 64
      bimamba: false
    data:                         # DatasetSpec: a dataset + its factory's keyword arguments
      name: shapes_videos
      image_size: 32
      num_frames: 8

Every key is checked when the recipe is loaded, against the preset's config dataclass (ViTConfig,
VideoMambaConfig, ...) or the dataset factory's signature: an unknown key is a
:class:`~mambajepa.core.errors.ConfigError` naming the closest valid one, a value of the wrong
type one naming its path. So every field of an encoder's config is settable from YAML and from
the command line (``--encoder.bimamba=false``). The sections plug into
:mod:`mambajepa.config` through ``from_mapping`` / ``to_mapping``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mambajepa.config import coerce_value
from mambajepa.core.errors import ConfigError
from mambajepa.core.names import did_you_mean
from mambajepa.registry import (
    Argument,
    build_dataset,
    create_model,
    dataset_arguments,
    model_aliases,
    model_arguments,
    model_config_cls,
)

__all__ = ["DatasetSpec", "EncoderSpec"]


def _prefix(path: str) -> str:
    return f"{path}." if path else ""


def _check_kwargs(
    values: dict[str, Any],
    arguments: dict[str, Argument] | None,
    aliases: dict[str, str],
    path: str,
    owner: str,
) -> dict[str, Any]:
    """Check and convert ``values`` against ``arguments`` (None: accept anything).

    Returns:
        The values under the names they were given, converted to the annotated types.
    """
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}  # field -> the key that set it
    for key, value in values.items():
        key = str(key)
        canonical = aliases.get(key, key)
        full = f"{_prefix(path)}{key}"
        if canonical in spelled:
            raise ConfigError(f"{full}: sets {canonical!r} of {owner}, which {spelled[canonical]!r} sets too")
        if arguments is not None:
            if canonical not in arguments:
                candidates = [f"{_prefix(path)}{name}" for name in [*arguments, *aliases]]
                raise ConfigError(f"{full}: unknown config key of {owner}{did_you_mean(full, candidates)}")
            value = coerce_value(value, arguments[canonical].annotation, full)
        out[key], spelled[canonical] = value, key
    if arguments is not None:
        missing = [a.name for a in arguments.values() if a.required and a.name not in spelled]
        if missing:
            raise ConfigError(f"{_prefix(path)}{missing[0]}: {owner} needs {', '.join(missing)}")
    return out


@dataclass
class _NamedSpec(abc.ABC):
    """A registered name and keyword arguments for its factory (see the module docstring)."""

    #: what the name refers to, for messages
    KIND: ClassVar[str] = ""

    name: str  # the registered name
    kwargs: dict[str, Any] = field(default_factory=dict)  # its arguments, checked against the registry

    @classmethod
    def from_mapping(cls, data: dict[str, Any], path: str = "") -> _NamedSpec:
        """Build the section from its flat mapping, checking every key and type.

        Args:
            data: ``{"name": ..., <argument>: <value>, ...}``.
            path: the section's dotted path in the config (for messages).

        Raises:
            ConfigError: no name, an unknown name or key (closest suggested), a wrong type or a
                missing required argument.
        """
        values = dict(data)
        name = values.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"{_prefix(path)}name: expected the name of a registered {cls.KIND}, got {name!r}"
            )
        spec = cls(name, values)
        return cls(name, spec._checked(path))

    def to_mapping(self) -> dict[str, Any]:
        """The flat mapping :meth:`from_mapping` reads."""
        return {"name": self.name, **self.kwargs}

    def validate(self) -> None:
        """Check a section built in Python the way :meth:`from_mapping` checks a loaded one."""
        self._checked("")

    def _checked(self, path: str) -> dict[str, Any]:
        try:
            arguments, aliases, owner = self._schema()
        except ConfigError as err:
            raise ConfigError(f"{_prefix(path)}name: {err}") from None
        return _check_kwargs(self.kwargs, arguments, aliases, path, owner)

    @abc.abstractmethod
    def _schema(self) -> tuple[dict[str, Argument] | None, dict[str, str], str]:
        """``(arguments, aliases, owner)`` of the named entry (each subclass reads its registry)."""


@dataclass
class EncoderSpec(_NamedSpec):
    """A registered model preset and overrides of any field of its config dataclass.

    The preset's own values stand for every field left out. Preset aliases (a VideoMamba preset
    takes ViT's ``tubelet_size`` for ``kernel_size``) are checked as the field they stand for and
    kept as written, so a recipe can switch between backbones without renaming.
    """

    KIND: ClassVar[str] = "model"

    def _schema(self) -> tuple[dict[str, Argument] | None, dict[str, str], str]:
        config_cls = model_config_cls(self.name)
        owner = f"model {self.name!r}" + (f" ({config_cls.__name__})" if config_cls is not None else "")
        return model_arguments(self.name), model_aliases(self.name), owner

    def build(self, **extra: Any) -> Any:
        """The model: ``create_model(name, **kwargs, **extra)``."""
        return create_model(self.name, **{**self.kwargs, **extra})


@dataclass
class DatasetSpec(_NamedSpec):
    """A registered dataset and keyword arguments of its factory (the factory's defaults fill the rest)."""

    KIND: ClassVar[str] = "dataset"

    def _schema(self) -> tuple[dict[str, Argument] | None, dict[str, str], str]:
        return dataset_arguments(self.name), {}, f"dataset {self.name!r}"

    def arguments(self) -> dict[str, Any]:
        """Every argument the factory receives: the defaults of its signature updated by ``kwargs``."""
        known = dataset_arguments(self.name) or {}
        return {**{n: a.default for n, a in known.items() if not a.required}, **self.kwargs}

    def build(self, split: str) -> Any:
        """The dataset of ``split`` (None when the dataset has no items for it)."""
        return build_dataset(self.name, split=split, **self.kwargs)
