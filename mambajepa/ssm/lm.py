"""``MambaLMHeadModel``: a :class:`MixerModel` with a tied LM head and recurrent generation.

Dimensions: ``B`` batch, ``L`` prompt length, ``D`` ``d_model``, ``V`` padded vocabulary size.

Keys follow ``mamba_ssm.models.mixer_seq_simple.MambaLMHeadModel``: ``backbone.*`` and
``lm_head.weight`` (the same tensor as ``backbone.embedding.weight`` when tied).
:meth:`MambaLMHeadModel.generate` prefills the prompt with one chunked forward pass and then
advances one token at a time with O(1) recurrent steps.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mambajepa.core.errors import CheckpointError, ConfigError
from mambajepa.ssm.mixer_model import MixerModel, MixerState


@dataclass
class MambaLMConfig:
    """Architecture of a :class:`MambaLMHeadModel` (the fields of ``mamba_ssm``'s ``MambaConfig``)."""

    d_model: int = 256  # width
    n_layer: int = 4  # number of blocks
    vocab_size: int = 256  # vocabulary size before padding
    d_intermediate: int = 0  # gated-MLP width after each mixer (0: none)
    ssm_cfg: dict[str, Any] = field(default_factory=dict)  # {"layer": "Mamba1"|"Mamba2"|"Mamba3", ...}
    rms_norm: bool = True  # RMSNorm (else LayerNorm)
    norm_epsilon: float = 1e-5  # epsilon of the norms
    residual_in_fp32: bool = True  # residual stream in fp32
    fused_add_norm: bool = True  # compatibility flag (same math either way)
    pad_vocab_size_multiple: int = 8  # the embedding has a multiple of this many rows
    tie_embeddings: bool = True  # lm_head.weight is backbone.embedding.weight

    def __post_init__(self):
        if self.d_model <= 0 or self.n_layer <= 0 or self.vocab_size <= 0:
            raise ConfigError(
                f"d_model={self.d_model}, n_layer={self.n_layer}, vocab_size={self.vocab_size} must be positive"
            )

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_size_multiple
        return (self.vocab_size + m - 1) // m * m


@dataclass
class LMOutput:
    """Result of :meth:`MambaLMHeadModel.forward`.

    Attributes:
        logits: ``(B, L, V)`` (or the last ``num_last_tokens`` positions).
        state: streaming state after the last position when requested, else None.
    """

    logits: torch.Tensor
    state: MixerState | None = None


class MambaLMHeadModel(nn.Module):
    """Causal language model on a Mamba stack.

    Args:
        config: architecture.
        initializer_cfg: keyword arguments of :func:`~mambajepa.ssm.mixer_model.init_mixer_weights`.
        device, dtype: factory arguments.
    """

    def __init__(
        self, config: MambaLMConfig, initializer_cfg: dict[str, Any] | None = None, device=None, dtype=None
    ):
        super().__init__()
        self.config = config
        self.backbone = MixerModel(
            d_model=config.d_model,
            n_layer=config.n_layer,
            vocab_size=config.padded_vocab_size,
            ssm_cfg=config.ssm_cfg,
            d_intermediate=config.d_intermediate,
            rms_norm=config.rms_norm,
            norm_epsilon=config.norm_epsilon,
            residual_in_fp32=config.residual_in_fp32,
            fused_add_norm=config.fused_add_norm,
            initializer_cfg=initializer_cfg,
            device=device,
            dtype=dtype,
        )
        self.lm_head = nn.Linear(
            config.d_model, config.padded_vocab_size, bias=False, device=device, dtype=dtype
        )
        if config.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight

    def init_state(self, batch_size: int, device=None, dtype=None) -> MixerState:
        """Zero streaming state for ``batch_size`` sequences."""
        return self.backbone.init_state(batch_size, device=device, dtype=dtype)

    def forward(
        self,
        input_ids: torch.Tensor,
        state: MixerState | None = None,
        return_state: bool = False,
        num_last_tokens: int = 0,
    ) -> LMOutput:
        """Logits for every position of ``input_ids`` ``(B, L)``.

        Args:
            input_ids: token ids ``(B, L)``.
            state: state to continue from (None: start of the sequences).
            return_state: also return the state after the last position.
            num_last_tokens: if > 0, only the logits of the last this many positions.

        Returns:
            :class:`LMOutput`.
        """
        if return_state or state is not None:
            hidden, state = self.backbone(input_ids, state=state, return_state=True)
        else:
            hidden = self.backbone(input_ids)
        if num_last_tokens > 0:
            hidden = hidden[:, -num_last_tokens:]
        return LMOutput(self.lm_head(hidden), state if return_state else None)

    def step(self, input_ids: torch.Tensor, state: MixerState) -> tuple[torch.Tensor, MixerState]:
        """Logits ``(B, V)`` for one new token per sequence, ``input_ids`` ``(B,)``, in O(1)."""
        hidden, state = self.backbone.step(state, input_ids=input_ids)
        return self.lm_head(hidden), state

    def _sample(self, logits: torch.Tensor, temperature: float, top_k: int, generator) -> torch.Tensor:
        logits = logits[:, : self.config.vocab_size]  # never sample padding rows
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        if temperature == 0.0 or top_k == 1:
            return logits.argmax(-1)
        logits = logits / temperature
        if top_k > 0:
            kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    @torch.inference_mode()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int = 1,
        eos_token_id: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Extend each prompt by up to ``max_new_tokens`` tokens.

        ``top_k=1`` or ``temperature=0`` is greedy decoding; otherwise tokens are sampled from the
        softmax of ``logits / temperature`` restricted to the ``top_k`` most likely (``top_k=0``:
        all). A sequence that produced ``eos_token_id`` is padded with it; generation stops when
        every sequence has finished.

        Args:
            input_ids: prompts ``(B, L)``, ``L >= 1``.
            max_new_tokens: most tokens to add.
            temperature: softmax temperature (``>= 0``).
            top_k: sample among the k most likely tokens (0: no restriction, 1: greedy).
            eos_token_id: end-of-sequence token, or None.
            generator: random generator for sampling.

        Returns:
            ``(B, L + n)`` token ids, ``n <= max_new_tokens``.

        Raises:
            ConfigError: empty prompt, negative temperature/top_k/max_new_tokens.
        """
        if input_ids.ndim != 2 or input_ids.shape[1] < 1:
            raise ConfigError(f"input_ids must be (B, L) with L >= 1, got {tuple(input_ids.shape)}")
        if temperature < 0 or top_k < 0 or max_new_tokens < 0:
            raise ConfigError(
                f"temperature={temperature}, top_k={top_k}, max_new_tokens={max_new_tokens} must be >= 0"
            )
        out = self(input_ids, return_state=True, num_last_tokens=1)
        logits, state = out.logits[:, -1], out.state
        tokens = [input_ids]
        finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for i in range(max_new_tokens):
            nxt = self._sample(logits, temperature, top_k, generator)  # (B,)
            if eos_token_id is not None:
                nxt = nxt.masked_fill(finished, eos_token_id)
                finished = finished | (nxt == eos_token_id)
            tokens.append(nxt.unsqueeze(1))
            if bool(finished.all()) or i == max_new_tokens - 1:
                break
            logits, state = self.step(nxt, state)
        return torch.cat(tokens, dim=1)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` (tied weights stored once)."""
        from safetensors.torch import save_model

        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(dataclasses.asdict(self.config), f, indent=2)
        save_model(self, os.path.join(directory, "model.safetensors"))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device=None, dtype=None) -> MambaLMHeadModel:
        """Load a model written by :meth:`save_pretrained`.

        Raises:
            CheckpointError: missing files, or keys/shapes that do not match the config.
        """
        from safetensors.torch import load_model

        cfg_path = os.path.join(directory, "config.json")
        weights = os.path.join(directory, "model.safetensors")
        for path in (cfg_path, weights):
            if not os.path.isfile(path):
                raise CheckpointError(f"{path} does not exist")
        with open(cfg_path) as f:
            config = MambaLMConfig(**json.load(f))
        model = cls(config, device=device, dtype=dtype)
        try:
            load_model(model, weights, strict=True, device=str(device or "cpu"))
        except RuntimeError as err:
            raise CheckpointError(f"{weights} does not match {config}: {err}") from err
        return model
