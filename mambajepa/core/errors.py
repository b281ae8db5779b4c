"""Typed exceptions shared across the package.

Every error names the offending value and what was expected. Domain-specific families
(``MaskError`` in :mod:`mambajepa.masks`) subclass :class:`MambaJepaError` too.
"""

from __future__ import annotations


class MambaJepaError(Exception):
    """Base class of every error raised on purpose by mambajepa."""


class ConfigError(MambaJepaError, ValueError):
    """An unknown key, a wrong type or inconsistent values in a configuration."""


class ShapeError(MambaJepaError, ValueError):
    """A tensor whose shape or dtype does not match what a layer expects."""


class CheckpointError(MambaJepaError, RuntimeError):
    """A checkpoint that is missing, corrupt, or whose keys/shapes do not match a model."""


class DataError(MambaJepaError, RuntimeError):
    """A data file that is missing, unreadable or malformed."""


class TrainingDiverged(MambaJepaError, RuntimeError):
    """Training produced too many non-finite losses in a row."""
