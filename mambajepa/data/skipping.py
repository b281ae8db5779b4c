"""How loaders treat corrupt or missing items: count and skip with a warning, or raise.

Every loader owns one :class:`BadItems` counter. With ``strict=False`` (the default) a bad item
(unreadable image, truncated tar member, missing caption field, ...) is counted, a warning names
the file and the reason, and the loader moves on. With ``strict=True`` the same event raises
:class:`~mambajepa.core.errors.DataError` with the same message.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

from mambajepa.core.errors import DataError


class BadItemWarning(UserWarning):
    """Warned once per skipped item when a loader runs with ``strict=False``."""


class BadItems:
    """Counts skipped items per reason; raises instead when strict.

    Args:
        strict: raise :class:`DataError` on the first bad item instead of skipping it.
        source: a short name of the loader, used as the prefix of every message.
    """

    def __init__(self, strict: bool = False, source: str = "data") -> None:
        self.strict = bool(strict)
        self.source = source
        self.counts: Counter[str] = Counter()

    @property
    def total(self) -> int:
        """Number of items skipped so far."""
        return sum(self.counts.values())

    def report(self, path: str | Path, reason: str) -> None:
        """Record one bad item.

        Args:
            path: the file (or ``archive:member``) that could not be used.
            reason: why, in a few words (the exception text is fine).

        Raises:
            DataError: when the loader is strict.
        """
        message = f"{self.source}: bad item {path}: {reason}"
        if self.strict:
            raise DataError(message)
        self.counts[reason.split(":", 1)[0]] += 1
        warnings.warn(f"{message} (skipped; pass strict=True to raise)", BadItemWarning, stacklevel=3)
