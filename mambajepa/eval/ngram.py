"""An interpolated Kneser-Ney n-gram language model: the count-based baseline for LM perplexity.

Plain interpolated Kneser-Ney (Kneser & Ney 1995; the interpolated form of Chen & Goodman 1998,
"An Empirical Study of Smoothing Techniques for Language Modeling", eq. 26) with one fixed
absolute discount ``D`` for every order, not the modified variant with three estimated
discounts. With ``h`` a context of ``k - 1`` tokens and ``h'`` the same context without its
oldest token,

    P_k(w | h) = max(c_k(h w) - D, 0) / c_k(h .)  +  D * N_k(h .) / c_k(h .) * P_{k-1}(w | h')
    P_0(w)     = 1 / V

where ``c_k(h .) = sum_w c_k(h w)`` and ``N_k(h .)`` is the number of distinct ``w`` with
``c_k(h w) > 0``. At the top order of a prediction ``c_k`` is the raw count of the k-gram;
below it ``c_k`` is the continuation count ``N1+(. h w)``, the number of distinct tokens seen
just before ``h w``. A context never seen at order ``k`` (``c_k(h .) = 0``) passes ``P_{k-1}`` through. As
``0 < D <= 1`` and every counted n-gram has a count >= 1, each order sums to exactly one over
the vocabulary, and since every order hands a share ``D * N_k(h .) / c_k(h .) > 0`` of its mass
down to the uniform ``1 / V``, every token of the vocabulary has a probability > 0.

Counting convention, the same as an LM's next-token cross-entropy: a sequence of ``L`` tokens
scores tokens ``1 .. L-1``, each from the up to ``n - 1`` tokens before it within the sequence
(no BOS padding; token 0 is never predicted). Near the start the context is shorter: a context
of ``j - 1 < n - 1`` tokens is scored by the order-``j`` model, raw counts at order ``j`` and
continuation counts below, exactly what ``InterpolatedNGram(order=j)`` fitted on the same data
would give. Training n-grams never cross from one sequence to the next.

Complexity: :meth:`InterpolatedNGram.fit` takes ``O(n * N)`` time for ``N`` training tokens
(counting runs in C through :class:`collections.Counter`; the per-type passes are Python loops
over at most ``N`` distinct k-grams per order) and memory ``O(n * distinct n-grams)``: well
under a second per million byte tokens for ``n = 3``, a few seconds when nearly every trigram
is new (a large BPE vocabulary). Scoring one token costs ``2 n`` dictionary look-ups.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Iterable, Sequence

from mambajepa.core.errors import ConfigError, DataError

NGram = tuple[int, ...]
_CONTEXT = operator.itemgetter(slice(None, -1))  # an n-gram's context: all but its last token
_SUFFIX = operator.itemgetter(slice(1, None))  # the (n-1)-gram an n-gram ends with


class InterpolatedNGram:
    """Interpolated Kneser-Ney language model over integer token ids in ``[0, vocab_size)``.

    Args:
        order: ``n``, the longest n-gram; 1 is absolute discounting of unigram counts
            interpolated with the uniform distribution.
        discount: the absolute discount ``D`` of every order, in (0, 1].

    Raises:
        ConfigError: when ``order`` < 1 or ``discount`` is outside (0, 1].
    """

    def __init__(self, order: int = 3, discount: float = 0.75) -> None:
        if not isinstance(order, int) or order < 1:
            raise ConfigError(f"order must be an integer >= 1, got {order!r}")
        if not 0.0 < discount <= 1.0:
            raise ConfigError(f"discount must be in (0, 1], got {discount}")
        self.order = order
        self.discount = float(discount)
        self.vocab_size = 0
        # Per order k (index k - 1): (k-gram -> c_k, context h -> (1 / c_k(h .), D * N_k(h .) / c_k(h .)))
        # of raw counts (orders 1 .. n) and of continuation counts (orders 1 .. n-1).
        self._raw: list[tuple[Counter[NGram], dict[NGram, tuple[float, float]]]] = []
        self._continuation: list[tuple[Counter[NGram], dict[NGram, tuple[float, float]]]] = []

    @staticmethod
    def _check(tokens: Sequence[int], vocab_size: int, where: str) -> list[int]:
        """``tokens`` as a list of ints, checked to lie in ``[0, vocab_size)``."""
        ids = tokens.tolist() if hasattr(tokens, "tolist") else list(tokens)
        if ids and not (0 <= min(ids) and max(ids) < vocab_size):
            bad = next(t for t in ids if not 0 <= t < vocab_size)
            raise DataError(f"token id {bad} in {where} is outside [0, {vocab_size})")
        return ids

    def fit(self, sequences: Iterable[Sequence[int]], vocab_size: int) -> InterpolatedNGram:
        """Count the n-grams of ``sequences``, replacing any earlier fit.

        Args:
            sequences: training token sequences (lists, tuples, arrays or 1-D tensors of ids).
            vocab_size: ``V``; every id must lie in ``[0, V)``.

        Returns:
            The model itself.

        Raises:
            ConfigError: when ``vocab_size`` < 1.
            DataError: on a token id outside the vocabulary, or when no sequence has ``order``
                tokens (nothing to count at the highest order).
        """
        if vocab_size < 1:
            raise ConfigError(f"vocab_size must be >= 1, got {vocab_size}")
        n = self.order
        raw: list[Counter[NGram]] = [Counter() for _ in range(n)]  # raw[k - 1]: k-gram counts
        for index, sequence in enumerate(sequences):
            ids = self._check(sequence, vocab_size, f"training sequence {index}")
            for k, grams in enumerate(raw, start=1):
                grams.update(zip(*(ids[i:] for i in range(k))))
        if not raw[-1]:
            raise DataError(f"no training sequence has at least order = {n} tokens")
        # Continuation count of a k-gram: the number of distinct (k+1)-grams it ends.
        continuation = [Counter(map(_SUFFIX, raw[k])) for k in range(1, n)]
        self.vocab_size = int(vocab_size)
        self._raw = [(grams, self._context_stats(grams)) for grams in raw]
        self._continuation = [(grams, self._context_stats(grams)) for grams in continuation]
        return self

    def _context_stats(self, counts: Counter[NGram]) -> dict[NGram, tuple[float, float]]:
        """Context -> ``(1 / total, D * distinct / total)`` of one order's counts."""
        distinct = Counter(map(_CONTEXT, counts))  # in C
        totals = distinct.copy()
        for gram, count in counts.items():  # most n-grams occur once: add only the excess over 1
            if count > 1:
                totals[gram[:-1]] += count - 1
        return {h: (1.0 / total, self.discount * distinct[h] / total) for h, total in totals.items()}

    def _prob(self, context: NGram, token: int) -> float:
        """``P(token | context)`` for a checked context of at most ``order - 1`` tokens."""
        top = len(context) + 1
        p = 1.0 / self.vocab_size
        for k in range(1, top + 1):
            counts, contexts = self._raw[k - 1] if k == top else self._continuation[k - 1]
            h = context[top - k :]
            stats = contexts.get(h)
            if stats is not None:
                inv_total, backoff = stats
                p = max(counts.get((*h, token), 0) - self.discount, 0.0) * inv_total + backoff * p
        return p

    def _fitted(self) -> None:
        if not self._raw:
            raise ConfigError("InterpolatedNGram is not fitted; call fit(sequences, vocab_size) first")

    def log_prob(self, context: Sequence[int], token: int) -> float:
        """Natural log of ``P(token | context)``.

        Args:
            context: the tokens before ``token``; only the last ``order - 1`` of them count.
            token: the id to score.

        Returns:
            ``log P(token | context)`` in nats, always finite.

        Raises:
            ConfigError: before :meth:`fit`.
            DataError: on a context or token id outside the vocabulary.
        """
        self._fitted()
        ids = self._check(context, self.vocab_size, "context")
        (token,) = self._check([token], self.vocab_size, "token")
        return math.log(self._prob(tuple(ids[max(0, len(ids) - self.order + 1) :]), token))

    def sequence_nll(self, tokens: Sequence[int]) -> tuple[float, int]:
        """Summed negative log-likelihood (nats) of tokens ``1 .. L-1`` of one sequence.

        Args:
            tokens: the ``L`` ids of the sequence; token ``i`` is predicted from tokens
                ``max(0, i - order + 1) .. i - 1``.

        Returns:
            ``(total_nll, L - 1)``; ``(0.0, 0)`` for a sequence of fewer than two tokens.

        Raises:
            ConfigError: before :meth:`fit`.
            DataError: on a token id outside the vocabulary.
        """
        self._fitted()
        ids = self._check(tokens, self.vocab_size, "sequence")
        width = self.order - 1
        total = 0.0
        for i in range(1, len(ids)):
            total -= math.log(self._prob(tuple(ids[max(0, i - width) : i]), ids[i]))
        return total, max(len(ids) - 1, 0)

    def perplexity(self, sequences: Iterable[Sequence[int]]) -> float:
        """``exp(total nll / total count)`` over every predicted token of ``sequences``.

        Args:
            sequences: evaluation token sequences, each scored by :meth:`sequence_nll`.

        Returns:
            The perplexity, >= 1.

        Raises:
            ConfigError: before :meth:`fit`.
            DataError: on a token id outside the vocabulary, or when no sequence has two tokens.
        """
        total, count = 0.0, 0
        for sequence in sequences:
            nll, n = self.sequence_nll(sequence)
            total, count = total + nll, count + n
        if count == 0:
            raise DataError("perplexity needs at least one sequence of two or more tokens")
        return math.exp(total / count)
