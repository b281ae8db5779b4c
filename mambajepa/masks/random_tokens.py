"""Random token masking of a sequence (language tokens of the hybrid JEPA + LM pipeline).

Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding" (NAACL 2019): a uniformly random 15 % of the tokens are hidden.

Dimension legend: ``N`` sequence length.
"""

from __future__ import annotations

import torch

from mambajepa.core.errors import ConfigError
from mambajepa.masks.base import MaskStrategy, complement
from mambajepa.masks.spec import MaskSpec


class RandomTokens(MaskStrategy):
    """Hide ``int(ratio * N)`` uniformly random tokens (at least one, at most ``N - 1``).

    Args:
        num_tokens: sequence length ``N``.
        ratio: fraction of the tokens hidden.

    Raises:
        ConfigError: ``ratio`` outside ``(0, 1)`` or fewer than two tokens.
    """

    def __init__(self, num_tokens: int, ratio: float = 0.15) -> None:
        if num_tokens < 2:
            raise ConfigError(f"num_tokens={num_tokens} must be at least 2 to hide some and keep some")
        if not 0.0 < ratio < 1.0:
            raise ConfigError(f"ratio={ratio} must be in (0, 1)")
        self.num_tokens = num_tokens
        self.num_hidden = min(max(int(ratio * num_tokens), 1), num_tokens - 1)

    def sample(self, generator: torch.Generator) -> MaskSpec:
        """Draw one mask."""
        target = torch.randperm(self.num_tokens, generator=generator)[: self.num_hidden].sort().values
        return MaskSpec(complement(target, self.num_tokens), target, self.num_tokens)
