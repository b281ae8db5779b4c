"""Contiguous span masking of a sequence (joint tokens of the hybrid JEPA + LM pipeline).

Joshi et al., "SpanBERT: Improving Pre-training by Representing and Predicting Spans" (TACL
2020): whole spans are hidden so that a token cannot be read off its neighbours. Here every
span has the same length (32 by default) and spans never overlap, so exactly
``num_spans * span_length`` tokens are hidden with ``num_spans = max(1, int(ratio * N / span_length))``.

Dimension legend: ``N`` sequence length, ``S`` number of spans.
"""

from __future__ import annotations

import torch

from mambajepa.core.errors import ConfigError
from mambajepa.masks.base import MaskStrategy, complement
from mambajepa.masks.spec import MaskSpec


class Span(MaskStrategy):
    """Hide non-overlapping spans of ``span_length`` consecutive tokens at random places.

    Args:
        num_tokens: sequence length ``N``.
        span_length: tokens per span.
        ratio: target fraction of hidden tokens (rounded down to whole spans, at least one).

    Raises:
        ConfigError: ``ratio`` outside ``(0, 1)``, ``span_length < 1``, or a sequence not longer
            than one span (nothing would be left as context).
    """

    def __init__(self, num_tokens: int, span_length: int = 32, ratio: float = 0.15) -> None:
        if span_length < 1:
            raise ConfigError(f"span_length={span_length} must be at least 1")
        if num_tokens <= span_length:
            raise ConfigError(f"num_tokens={num_tokens} must exceed span_length={span_length}")
        if not 0.0 < ratio < 1.0:
            raise ConfigError(f"ratio={ratio} must be in (0, 1)")
        self.num_tokens = num_tokens
        self.span_length = span_length
        # leave at least one context token
        self.num_spans = min(max(int(ratio * num_tokens / span_length), 1), (num_tokens - 1) // span_length)

    def sample(self, generator: torch.Generator) -> MaskSpec:
        """Draw one mask.

        Span starts are drawn uniformly among all non-overlapping placements: choosing ``S``
        sorted distinct slots among ``N - S * span_length + S`` and shifting slot ``i`` right by
        ``i * (span_length - 1)`` maps placements one-to-one onto gap arrangements.
        """
        s, length = self.num_spans, self.span_length
        slots = self.num_tokens - s * length + s
        picks = torch.randperm(slots, generator=generator)[:s].sort().values  # (S,)
        starts = picks + torch.arange(s) * (length - 1)  # (S,)
        target = (starts.unsqueeze(1) + torch.arange(length).unsqueeze(0)).reshape(-1)  # (S*length,)
        return MaskSpec(complement(target, self.num_tokens), target, self.num_tokens)
