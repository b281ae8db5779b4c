"""Suggestions for unknown names ("did you mean ...?"): config keys, registry entries, recipes.

Candidates may be plain names (``"vit_tiny_patch4"``) or dotted paths (``"train.lr"``). A dotted
name is matched section first, then by its last component:

1. The section is the name's prefix before the last dot (``""`` for a plain name). When no
   candidate lives in that section, the closest existing section stands in for it (a misspelt
   ``trian.lr`` looks in ``train``).
2. Within that section the candidate whose last component is most similar to the name's last
   component wins (``train.max_step`` -> ``train.max_steps``); when none is similar enough, the
   last components of every candidate are compared (``lr`` -> ``train.lr``).

Two last components are similar by :class:`difflib.SequenceMatcher` ratio, or when one
abbreviates the other: it is the initials of the other's ``_``-separated words
(``lr`` / ``learning_rate``) or its words are prefixes of the other's words, one to one
(``max_iter`` / ``maximum_iterations``). An abbreviation scores :data:`ABBREVIATION_SCORE`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = ["ABBREVIATION_SCORE", "closest", "did_you_mean", "similarity"]

ABBREVIATION_SCORE = 0.9  # above any ratio of a one-letter typo in a short name, below a match
_WORD_SPLIT = re.compile(r"[_\-]+")


def _abbreviates(short: str, long: str) -> bool:
    """Whether ``short`` is the initials of ``long``'s words or its words are prefixes of them."""
    words = [w for w in _WORD_SPLIT.split(long) if w]
    if len(short) < 2 or short == long:
        return False
    if len(words) >= 2 and short == "".join(w[0] for w in words):
        return True
    parts = [w for w in _WORD_SPLIT.split(short) if w]
    return len(parts) == len(words) and all(w.startswith(p) for p, w in zip(parts, words))


def similarity(a: str, b: str) -> float:
    """Similarity of two names in ``[0, 1]``, ignoring case (see the module docstring).

    Args:
        a, b: the names (one path component each).

    Returns:
        1 for equal names, :data:`ABBREVIATION_SCORE` when one abbreviates the other (unless their
        ratio is higher), else the :class:`difflib.SequenceMatcher` ratio.
    """
    a, b = a.lower(), b.lower()
    if a == b:
        return 1.0
    ratio = difflib.SequenceMatcher(None, a, b).ratio()
    if _abbreviates(a, b) or _abbreviates(b, a):
        return max(ratio, ABBREVIATION_SCORE)
    return ratio


def _best(leaf: str, pool: list[str], cutoff: float) -> str | None:
    scored = [(similarity(leaf, c.rpartition(".")[2]), c) for c in pool]
    score, best = max(scored, key=lambda sc: sc[0], default=(0.0, None))  # ties: first candidate
    return best if score >= cutoff else None


def closest(name: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate most likely meant by the unknown ``name``.

    Args:
        name: what the user wrote (a plain name or a dotted path).
        candidates: the valid names or dotted paths.
        cutoff: the least similarity (in ``[0, 1]``) worth suggesting.

    Returns:
        The best candidate, or ``None`` when none is similar enough.
    """
    candidates = list(dict.fromkeys(candidates))
    if name in candidates:
        return name
    section, _, leaf = name.rpartition(".")
    sections = list(dict.fromkeys(c.rpartition(".")[0] for c in candidates))
    if section not in sections:
        near = difflib.get_close_matches(section, sections, n=1, cutoff=cutoff)
        section = near[0] if near else None
    if section is not None:
        best = _best(leaf, [c for c in candidates if c.rpartition(".")[0] == section], cutoff)
        if best is not None:
            return best
    return _best(leaf, candidates, cutoff)


def did_you_mean(name: str, candidates: Iterable[str], cutoff: float = 0.6) -> str:
    """The hint to append to an "unknown name" message.

    Args:
        name: what the user wrote.
        candidates: the valid names or dotted paths.
        cutoff: as in :func:`closest`.

    Returns:
        ``"; did you mean 'x'?"`` for the :func:`closest` candidate ``x``, or ``""`` when none.
    """
    best = closest(name, candidates, cutoff)
    return f"; did you mean {best!r}?" if best is not None else ""
