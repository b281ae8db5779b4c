"""Text encoder and decoder on Mamba-3 stacks (the VL-JEPA Y-encoder and Y-decoder).

:class:`TextEncoder`: token embedding -> Mamba-3 :class:`~mambajepa.ssm.MixerModel` -> final norm
-> mean over the non-padding positions -> linear projection to the shared embedding space.

:class:`TextDecoder`: a Mamba-3 language model primed by ``prefix_len`` soft tokens that
``embed_to_prefix`` computes from an embedding; trained with teacher-forced cross-entropy and
decoded with the O(1) recurrent step after one prefill pass over the prefix.

Token ids are ``(B, L)`` int64 padded on the right (the tokenizers' layout) with an attention
mask ``(B, L)`` that is 1 on real tokens. The stacks are causal, so right padding never reaches a
real position.

Dimension legend:
    B batch, L text length, P ``prefix_len``, D ``d_model``, V padded vocabulary, Z ``embed_dim``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.core.pretrained import PretrainedMixin
from mambajepa.registry import register_model
from mambajepa.ssm.lm import MambaLMConfig, MambaLMHeadModel
from mambajepa.ssm.mixer_model import MixerModel


def _default_ssm_cfg() -> dict[str, Any]:
    return {"layer": "Mamba3", "d_state": 16, "headdim": 16}


def _check_ids(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
    if input_ids.ndim != 2 or input_ids.dtype not in (torch.int32, torch.int64):
        raise ShapeError(f"input_ids must be integer (B, L), got {input_ids.dtype} {tuple(input_ids.shape)}")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ShapeError(
            f"attention_mask {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}"
        )


@dataclass
class _TextStackConfig:
    """Fields shared by the encoder and decoder configs: the Mamba-3 stack and the vocabulary."""

    vocab_size: int = 256  # tokenizer vocabulary (the table is padded to pad_vocab_size_multiple)
    d_model: int = 64  # width D of the stack
    n_layer: int = 2  # number of blocks
    embed_dim: int = 32  # width Z of the shared embedding space
    ssm_cfg: dict[str, Any] = field(default_factory=_default_ssm_cfg)  # mixer and its arguments
    d_intermediate: int = 0  # gated-MLP width after each mixer (0: none)
    rms_norm: bool = True  # RMSNorm (else LayerNorm)
    norm_epsilon: float = 1e-5  # epsilon of the norms
    residual_in_fp32: bool = True  # keep the residual stream in fp32
    pad_vocab_size_multiple: int = 8  # the embedding table has a multiple of this many rows

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layer", "embed_dim", "pad_vocab_size_multiple"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be positive")

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding table: ``vocab_size`` rounded up to ``pad_vocab_size_multiple``."""
        m = self.pad_vocab_size_multiple
        return (self.vocab_size + m - 1) // m * m

    def stack_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the Mamba stack that do not depend on the vocabulary."""
        return {
            "d_model": self.d_model,
            "n_layer": self.n_layer,
            "ssm_cfg": dict(self.ssm_cfg),
            "d_intermediate": self.d_intermediate,
            "rms_norm": self.rms_norm,
            "norm_epsilon": self.norm_epsilon,
            "residual_in_fp32": self.residual_in_fp32,
        }


@dataclass
class TextEncoderConfig(_TextStackConfig):
    """Architecture of :class:`TextEncoder`: the VL-JEPA ``tiny`` Y-encoder by default; Z is its output."""


class TextEncoder(PretrainedMixin, nn.Module):
    """Mamba-3 text encoder: ids ``(B, L)`` + mask -> embedding ``(B, Z)``.

    Args:
        config: the architecture.
        device, dtype: factory arguments.
    """

    config_class = TextEncoderConfig

    def __init__(self, config: TextEncoderConfig, device=None, dtype=None):
        super().__init__()
        self.config = config
        self.backbone = MixerModel(
            vocab_size=config.padded_vocab_size,
            **config.stack_kwargs(),
            device=device,
            dtype=dtype,
        )
        self.proj = nn.Linear(config.d_model, config.embed_dim, device=device, dtype=dtype)

    @property
    def embedding(self) -> nn.Embedding:
        """The token embedding table (shared with modules that embed text, e.g. a predictor's query)."""
        return self.backbone.embedding

    @property
    def embed_dim(self) -> int:
        """Output width Z."""
        return self.config.embed_dim

    def token_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Per-position features after the final norm: ``(B, L)`` ids -> ``(B, L, D)``.

        Raises:
            ShapeError: ids that are not an integer ``(B, L)`` tensor.
        """
        _check_ids(input_ids, None)
        return self.backbone(input_ids.long())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Embed texts.

        Args:
            input_ids: ``(B, L)`` token ids, padded on the right.
            attention_mask: ``(B, L)``, nonzero on real tokens; None means no padding.

        Returns:
            ``(B, Z)``: the projection of the mean feature over real tokens (a text with no real
            token pools to zeros).

        Raises:
            ShapeError: malformed ids or mask.
        """
        _check_ids(input_ids, attention_mask)
        hidden = self.backbone(input_ids.long())  # (B, L, D)
        if attention_mask is None:
            pooled = hidden.mean(dim=1)
        else:
            mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (B, D)
        return self.proj(pooled)


@dataclass
class TextDecoderConfig(_TextStackConfig):
    """Architecture of :class:`TextDecoder`: the VL-JEPA ``tiny`` Y-decoder by default; Z is its input.

    Decoding never samples beyond ``vocab_size``.
    """

    prefix_len: int = 4  # soft tokens P computed from the embedding
    tie_embeddings: bool = True  # the LM head shares the token embedding table

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prefix_len < 1:
            raise ConfigError(f"prefix_len={self.prefix_len} must be >= 1")


class TextDecoder(PretrainedMixin, nn.Module):
    """Mamba-3 language model conditioned on an embedding through ``prefix_len`` soft tokens.

    Args:
        config: the architecture.
        device, dtype: factory arguments.
    """

    config_class = TextDecoderConfig

    def __init__(self, config: TextDecoderConfig, device=None, dtype=None):
        super().__init__()
        self.config = config
        self.lm = MambaLMHeadModel(
            MambaLMConfig(
                vocab_size=config.vocab_size,
                pad_vocab_size_multiple=config.pad_vocab_size_multiple,
                tie_embeddings=config.tie_embeddings,
                **config.stack_kwargs(),
            ),
            device=device,
            dtype=dtype,
        )
        self.embed_to_prefix = nn.Linear(
            config.embed_dim, config.prefix_len * config.d_model, device=device, dtype=dtype
        )

    def prefix(self, embedding: torch.Tensor) -> torch.Tensor:
        """Soft tokens of an embedding: ``(B, Z) -> (B, P, D)``.

        Raises:
            ShapeError: embedding is not ``(B, embed_dim)``.
        """
        if embedding.ndim != 2 or embedding.shape[1] != self.config.embed_dim:
            raise ShapeError(f"embedding must be (B, {self.config.embed_dim}), got {tuple(embedding.shape)}")
        prefix = self.embed_to_prefix(embedding)  # (B, P·D)
        return prefix.unflatten(1, (self.config.prefix_len, self.config.d_model))  # (B, P, D)

    def forward(self, embedding: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits: position i predicts ``input_ids[:, i]`` from the prefix and ids ``< i``.

        Args:
            embedding: ``(B, Z)`` conditioning embedding.
            input_ids: ``(B, L)`` target ids.

        Returns:
            ``(B, L, V)`` logits.

        Raises:
            ShapeError: malformed embedding or ids, or batch sizes that differ.
        """
        _check_ids(input_ids, None)
        prefix = self.prefix(embedding)  # (B, P, D)
        if prefix.shape[0] != input_ids.shape[0]:
            raise ShapeError(f"embedding batch {prefix.shape[0]} != input_ids batch {input_ids.shape[0]}")
        tokens = self.lm.backbone.embedding(input_ids[:, :-1].long())  # (B, L-1, D)
        hidden = self.lm.backbone(inputs_embeds=torch.cat([prefix, tokens.to(prefix.dtype)], dim=1))
        return self.lm.lm_head(hidden[:, self.config.prefix_len - 1 :])  # (B, L, V)

    def loss(
        self, embedding: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean teacher-forced cross-entropy of ``input_ids`` given ``embedding``.

        Args:
            embedding: ``(B, Z)`` (detach it first to train the decoder alone).
            input_ids: ``(B, L)`` target ids, padded on the right.
            attention_mask: ``(B, L)``, nonzero on real tokens; padding is not scored.

        Returns:
            Scalar loss averaged over the scored tokens.

        Raises:
            ShapeError: malformed inputs.
        """
        _check_ids(input_ids, attention_mask)
        logits = self(embedding, input_ids)  # (B, L, V)
        targets = input_ids.long()
        if attention_mask is not None:
            targets = targets.masked_fill(attention_mask == 0, -100)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)

    def _sample(
        self, logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        logits = logits[:, : self.config.vocab_size].float()  # padding rows are never produced
        if temperature == 0.0 or top_k == 1:
            return logits.argmax(dim=-1)
        logits = logits / temperature
        if top_k > 0:
            kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)

    @torch.no_grad()
    def generate(
        self,
        embedding: torch.Tensor,
        max_new_tokens: int,
        eos: int | None = None,
        temperature: float = 1.0,
        top_k: int = 1,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode text from an embedding: one prefill over the prefix, then O(1) recurrent steps.

        ``top_k=1`` or ``temperature=0`` is greedy; otherwise tokens are sampled from
        ``softmax(logits / temperature)`` over the ``top_k`` most likely (``top_k=0``: all). A
        sequence that produced ``eos`` is padded with it; decoding stops once all have.

        Args:
            embedding: ``(B, Z)``.
            max_new_tokens: most tokens to produce.
            eos: end-of-sequence id, or None.
            temperature: softmax temperature, ``>= 0``.
            top_k: sample among the k most likely tokens (0: all, 1: greedy).
            generator: random generator for sampling.

        Returns:
            ``(B, n)`` int64 ids, ``n <= max_new_tokens``.

        Raises:
            ConfigError: negative ``max_new_tokens``, ``temperature`` or ``top_k``.
            ShapeError: malformed embedding.
        """
        if max_new_tokens < 0 or temperature < 0 or top_k < 0:
            raise ConfigError(
                f"max_new_tokens={max_new_tokens}, temperature={temperature}, top_k={top_k} must be >= 0"
            )
        prefix = self.prefix(embedding)  # (B, P, D)
        B = prefix.shape[0]
        hidden, state = self.lm.backbone(inputs_embeds=prefix, return_state=True)  # prefill
        logits = self.lm.lm_head(hidden[:, -1])  # (B, V)
        finished = torch.zeros(B, dtype=torch.bool, device=prefix.device)
        out: list[torch.Tensor] = []
        for i in range(max_new_tokens):
            token = self._sample(logits, temperature, top_k, generator)  # (B,)
            if eos is not None:
                token = token.masked_fill(finished, eos)
                finished = finished | (token == eos)
            out.append(token)
            if i == max_new_tokens - 1 or bool(finished.all()):
                break
            logits, state = self.lm.step(token, state)  # O(1) in the decoded length
        if not out:
            return torch.zeros(B, 0, dtype=torch.long, device=prefix.device)
        return torch.stack(out, dim=1)


@register_model("text_encoder_tiny", config_cls=TextEncoderConfig)
def text_encoder_tiny(**overrides) -> TextEncoder:
    """The VL-JEPA ``tiny`` Y-encoder (the :class:`TextEncoderConfig` defaults), with overrides."""
    return TextEncoder(TextEncoderConfig(**overrides))


@register_model("text_decoder_tiny", config_cls=TextDecoderConfig)
def text_decoder_tiny(**overrides) -> TextDecoder:
    """The VL-JEPA ``tiny`` answer decoder (the :class:`TextDecoderConfig` defaults), with overrides."""
    return TextDecoder(TextDecoderConfig(**overrides))
