"""Interpolated Kneser-Ney n-gram baseline: normalisation, hand-computed values, perplexity."""

import math
import random

import pytest
import torch

from mambajepa.core.errors import ConfigError, DataError
from mambajepa.data import ByteTokenizer
from mambajepa.data.code_corpus import CodeCorpus
from mambajepa.eval.ngram import InterpolatedNGram

D = 0.75


def _prob(model, context, token):
    return math.exp(model.log_prob(context, token))


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_distribution_sums_to_one_and_is_positive_for_any_context(order):
    rng = random.Random(order)
    vocab = 7  # token 6 never occurs in training
    train = [[rng.randrange(6) for _ in range(rng.randrange(1, 40))] for _ in range(20)]
    model = InterpolatedNGram(order).fit(train, vocab)
    contexts = [[], [0], [5, 5], [6, 6, 6], [1, 2, 3, 4, 5], train[0][:3], train[1][-4:]]
    for context in contexts:
        probs = [_prob(model, context, w) for w in range(vocab)]
        assert min(probs) > 0.0
        assert math.fsum(probs) == pytest.approx(1.0, abs=1e-9)


def test_unigram_is_discounted_counts_interpolated_with_uniform():
    # P(w) = max(c(w) - D, 0) / N + D * T / N * 1/V, with N tokens and T distinct seen tokens.
    model = InterpolatedNGram(order=1).fit([[0, 1, 1], [2]], vocab_size=4)
    n, t, v = 4, 3, 4
    expected = {0: (1 - D) / n, 1: (2 - D) / n, 2: (1 - D) / n, 3: 0.0}
    for w, discounted in expected.items():
        assert _prob(model, [], w) == pytest.approx(discounted + D * t / n / v, abs=1e-12)
    assert _prob(model, [3, 1], 1) == _prob(model, [], 1)  # order 1 ignores the context


def test_bigram_uses_continuation_counts_below_the_top_order():
    # Corpus 0 1 0 1 2 1, V = 4. Bigrams: (0,1) x2, (1,0), (1,2), (2,1).
    # Continuation unigram counts N1+(. w): w=1 after {0, 2} -> 2, w=0 after {1} -> 1,
    # w=2 after {1} -> 1, w=3 -> 0; total 4, 3 types:
    #   P1(w) = max(N1+(. w) - D, 0) / 4 + D * 3 / 4 * 1/4.
    # (Raw unigram counts would be 3, 2, 1, 0: a different answer.)
    # Top order, context 1: c(1 0) = c(1 2) = 1, total 2, 2 types:
    #   P(w | 1) = max(c(1 w) - D, 0) / 2 + D * 2 / 2 * P1(w).
    # Context 0: c(0 1) = 2, total 2, 1 type:  P(w | 0) = max(c(0 w) - D, 0) / 2 + D * 1 / 2 * P1(w).
    # Context 3 was never seen: P(w | 3) = P1(w).
    model = InterpolatedNGram(order=2).fit([[0, 1, 0, 1, 2, 1]], vocab_size=4)
    cont = {0: 1, 1: 2, 2: 1, 3: 0}
    p1 = {w: max(c - D, 0) / 4 + D * 3 / 4 / 4 for w, c in cont.items()}
    assert p1 == pytest.approx({0: 0.203125, 1: 0.453125, 2: 0.203125, 3: 0.140625})
    after_1 = {0: 1, 1: 0, 2: 1, 3: 0}
    after_0 = {0: 0, 1: 2, 2: 0, 3: 0}
    for w in range(4):
        assert _prob(model, [1], w) == pytest.approx(max(after_1[w] - D, 0) / 2 + D * p1[w], abs=1e-12)
        assert _prob(model, [0], w) == pytest.approx(max(after_0[w] - D, 0) / 2 + D / 2 * p1[w], abs=1e-12)
        assert _prob(model, [3], w) == pytest.approx(p1[w], abs=1e-12)
    assert _prob(model, [2, 2, 1], 0) == _prob(model, [1], 0)  # only the last order - 1 tokens count


def test_sequence_nll_scores_tokens_one_to_l_minus_one_like_an_lm():
    model = InterpolatedNGram(order=3).fit([[0, 1, 2, 0, 1, 3, 0, 2]], vocab_size=5)
    tokens = [4, 0, 1, 2, 0]
    nll, count = model.sequence_nll(tokens)
    assert count == len(tokens) - 1
    by_prefix = -sum(model.log_prob(tokens[:i], tokens[i]) for i in range(1, len(tokens)))
    assert nll == pytest.approx(by_prefix, abs=1e-12)
    assert model.sequence_nll([3]) == (0.0, 0)
    assert model.sequence_nll(torch.tensor(tokens)) == pytest.approx((nll, count))
    assert model.perplexity([tokens, [1]]) == pytest.approx(math.exp(nll / count))


def test_a_short_context_is_scored_by_the_lower_order_model():
    rng = random.Random(0)
    train = [[rng.randrange(5) for _ in range(30)] for _ in range(10)]
    trigram = InterpolatedNGram(order=3).fit(train, 6)
    bigram = InterpolatedNGram(order=2).fit(train, 6)
    unigram = InterpolatedNGram(order=1).fit(train, 6)
    for w in range(6):
        assert trigram.log_prob([2], w) == pytest.approx(bigram.log_prob([2], w), abs=1e-12)
        assert trigram.log_prob([], w) == pytest.approx(unigram.log_prob([], w), abs=1e-12)


def test_trigram_perplexity_approaches_one_on_a_repeating_sequence():
    pattern = [0, 1, 2, 3, 4]
    held_out = [pattern * 10]
    ppl = {}
    for repeats in (4, 40, 400):
        ppl[repeats] = InterpolatedNGram(order=3).fit([pattern * repeats], 8).perplexity(held_out)
    unigram = InterpolatedNGram(order=1).fit([pattern * 400], 8).perplexity(held_out)
    assert ppl[4] > ppl[40] > ppl[400] > 1.0
    assert ppl[400] < 1.005
    assert unigram == pytest.approx(5.0, rel=0.05) and unigram > 4 * ppl[400]


def test_byte_trigram_on_stdlib_code_beats_the_unigram():
    tok = ByteTokenizer()
    train = [tok.tokenize(text) for text in CodeCorpus("train", max_files=40)]
    held_out = [tok.tokenize(text) for text in CodeCorpus("held_out", max_files=5)]
    unigram = InterpolatedNGram(order=1).fit(train, tok.vocab_size).perplexity(held_out)
    trigram = InterpolatedNGram(order=3).fit(train, tok.vocab_size).perplexity(held_out)
    assert 1.0 < trigram < 0.6 * unigram < tok.vocab_size


def test_bad_orders_discounts_and_token_ids_are_named():
    with pytest.raises(ConfigError, match="order must be an integer >= 1, got 0"):
        InterpolatedNGram(order=0)
    with pytest.raises(ConfigError, match="discount must be in"):
        InterpolatedNGram(discount=1.5)
    with pytest.raises(ConfigError, match="not fitted"):
        InterpolatedNGram().perplexity([[0, 1]])
    with pytest.raises(ConfigError, match="vocab_size must be >= 1, got 0"):
        InterpolatedNGram().fit([[0, 0, 0]], 0)
    with pytest.raises(DataError, match=r"token id 9 in training sequence 1 is outside \[0, 5\)"):
        InterpolatedNGram().fit([[0, 1, 2], [3, 9, 4]], 5)
    with pytest.raises(DataError, match="at least order = 3 tokens"):
        InterpolatedNGram(order=3).fit([[0, 1]], 5)
    model = InterpolatedNGram(order=2).fit([[0, 1, 2]], 3)
    with pytest.raises(DataError, match=r"token id -1 in sequence"):
        model.sequence_nll([0, -1])
    with pytest.raises(DataError, match="token id 3 in token"):
        model.log_prob([0], 3)
    with pytest.raises(DataError, match="token id 7 in context"):
        model.log_prob([7], 0)
    with pytest.raises(DataError, match="at least one sequence of two or more tokens"):
        model.perplexity([[1]])
