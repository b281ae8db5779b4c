"""Hybrid JEPA + LM: one Mamba-3 language model trained on embedding prediction and next tokens.

The model (:class:`HybridModel`): a ViT encodes the image (when a sample has one); a linear
"cross-modal fusion" projects its tokens into the language model's width as a prefix; token
embeddings follow; a causal Mamba-3 :class:`~mambajepa.ssm.mixer_model.MixerModel` runs over the
joint sequence. Two heads read its hidden states:

* the autoregressive head (untied from the embedding unless ``tie_embeddings``): next-token
  cross-entropy on the shifted text targets (prompt and padding are not predicted);
* the JEPA head: ``prediction_steps`` sub-heads; sub-head ``k`` reads the online hidden state at
  position ``t`` of the *masked* sequence and predicts the target embedding of position ``t + k``
  wherever that position is masked, weighted by ``step_weights[k - 1]``. The targets are an EMA
  copy of the encoder (ViT + fusion + embeddings + backbone) run on the unmasked sequence, its
  hidden states layer-normed without affine parameters, with no gradient.

Masks (ratio 0.15): image tokens by the 16 x 16-pixel block mask (hidden patches never reach the
ViT: it encodes only the visible ones, the hidden ones become the mask token); text of a sample
without an image by the random 15 % mask; the text of a joint (image + text) sequence by spans
of 32 tokens when it is longer than one span, else by the random mask. Masked text tokens are
replaced by the mask token.

``hybrid_loss`` combines both terms, ``alpha`` x JEPA + ``beta`` x LM; the curriculum's stages set
``alpha`` and ``beta`` through their ``loss_weights`` (``jepa``, ``lm``; a stage leaving one out uses
the ``loss`` section's value). Only the passes a stage needs run: the clean online pass for the LM
term, the masked online pass and the target pass for the JEPA term.

Dimension legend: ``B`` batch, ``Nv`` image tokens, ``L`` text tokens, ``T = Nv + L``, ``D`` model
width, ``V`` vocabulary, ``K`` prediction steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.config import RunConfig
from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.data.tokenizers import ByteTokenizer, HFTokenizer, TextTokenizer, load_tokenizer
from mambajepa.masks import BlockGrid, RandomTokens, Span
from mambajepa.methods.base import DataSpec, Method, TrainOutput, held_out_means
from mambajepa.methods.jepa import JEPAEMAConfig
from mambajepa.nn.ema import EMA
from mambajepa.registry import register_method
from mambajepa.specs import DatasetSpec, EncoderSpec
from mambajepa.ssm.mixer_model import MixerModel

__all__ = [
    "HybridBatch",
    "HybridCollator",
    "HybridConfig",
    "HybridEncoder",
    "HybridJEPAConfig",
    "HybridMethod",
    "HybridModel",
    "HybridModelConfig",
    "hybrid_loss",
    "multi_step_pairs",
]

IGNORE = -100  # target id of positions that are not predicted


# ----------------------------------------------------------------------------------------------
# config


@dataclass
class HybridModelConfig:
    """The language model and its heads (the vision encoder is the ``vision`` section)."""

    d_model: int = 256  # width D of the language model (and of the JEPA embeddings)
    n_layer: int = 4  # Mamba-3 blocks
    d_state: int = 32  # Mamba-3 state size per head
    expand: int = 2  # Mamba-3 inner width / D
    headdim: int = 32  # Mamba-3 head width
    d_intermediate: int = 0  # gated MLP width after each mixer (0: none)
    max_length: int = 256  # text tokens per sample (context length), BOS and EOS included
    tie_embeddings: bool = False  # LM head shares the token embedding (the design input: false)

    def validate(self) -> None:
        if (
            min(self.d_model, self.n_layer, self.d_state, self.expand, self.headdim) < 1
            or self.max_length < 4
        ):
            raise ConfigError(
                f"model sizes must be >= 1 and max_length >= 4; got d_model={self.d_model}, "
                f"n_layer={self.n_layer}, max_length={self.max_length}"
            )
        if (self.d_model * self.expand) % self.headdim:
            raise ConfigError(
                f"d_model * expand = {self.d_model * self.expand} is not divisible by headdim={self.headdim}"
            )


@dataclass
class HybridJEPAConfig:
    """The JEPA head and its masks."""

    prediction_steps: int = 3  # sub-heads; sub-head k predicts the target embedding k positions ahead
    step_weights: list[float] = field(default_factory=lambda: [1.0, 0.8, 0.6])  # weight of each sub-head
    mask_ratio: float = 0.15  # fraction of tokens (or image blocks) masked
    block_pixels: int = 16  # side of the image blocks of the vision mask, in pixels
    span_length: int = 32  # tokens per span of a joint sequence's text mask
    head_hidden: int = 0  # hidden width of each sub-head's MLP (0: 2 x d_model)

    def validate(self) -> None:
        if self.prediction_steps < 1 or len(self.step_weights) != self.prediction_steps:
            raise ConfigError(
                f"jepa.step_weights={self.step_weights} must hold prediction_steps={self.prediction_steps} weights"
            )
        if any(w < 0 for w in self.step_weights) or sum(self.step_weights) <= 0:
            raise ConfigError(f"jepa.step_weights={self.step_weights} must be >= 0 with a positive sum")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"jepa.mask_ratio={self.mask_ratio} must lie in (0, 1)")
        if self.block_pixels < 1 or self.span_length < 1 or self.head_hidden < 0:
            raise ConfigError("jepa.block_pixels and span_length must be >= 1, head_hidden >= 0")


@dataclass
class HybridLossConfig:
    """Default weights of the two terms (a stage's ``loss_weights`` override them)."""

    alpha: float = 0.3  # JEPA weight
    beta: float = 0.7  # LM weight

    def validate(self) -> None:
        if self.alpha < 0 or self.beta < 0 or self.alpha + self.beta <= 0:
            raise ConfigError(
                f"loss.alpha={self.alpha}, loss.beta={self.beta}: need >= 0 with a positive sum"
            )


@dataclass
class HybridTokenizerConfig:
    """The run's tokenizer: byte-level BPE trained on the training mixture, bytes, or a file."""

    kind: str = "bpe"  # bpe | byte | path to a tokenizer.json
    vocab_size: int = 2048  # BPE vocabulary (>= 260)
    corpus_items: int = 2000  # training items whose prompts and texts train the BPE

    def validate(self) -> None:
        if self.kind == "bpe" and (self.vocab_size < 260 or self.corpus_items < 1):
            raise ConfigError(
                f"bpe needs vocab_size >= 260 and corpus_items >= 1, got {self.vocab_size}, {self.corpus_items}"
            )


@dataclass
class HybridConfig(RunConfig):
    """Run config of the ``hybrid`` method."""

    ALIASES: ClassVar[dict[str, str]] = {
        "alpha": "loss.alpha",
        "beta": "loss.beta",
        "prediction_steps": "jepa.prediction_steps",
        "step_weights": "jepa.step_weights",
        "mask_ratio": "jepa.mask_ratio",
        "context_length": "model.max_length",
    }

    method: str = "hybrid"
    vision: EncoderSpec = field(
        default_factory=lambda: EncoderSpec(
            "vit_tiny_patch4",
            {"img_size": 32, "num_frames": 1, "tubelet_size": 1, "embed_dim": 64, "depth": 2, "num_heads": 4},
        )
    )  # the vision encoder (a ViT preset and any field of its config)
    model: HybridModelConfig = field(default_factory=HybridModelConfig)  # language model and heads
    jepa: HybridJEPAConfig = field(default_factory=HybridJEPAConfig)  # JEPA head and masks
    loss: HybridLossConfig = field(default_factory=HybridLossConfig)  # alpha and beta
    ema: JEPAEMAConfig = field(default_factory=JEPAEMAConfig)  # target-encoder momentum
    tokenizer: HybridTokenizerConfig = field(default_factory=HybridTokenizerConfig)
    data: DatasetSpec = field(
        default_factory=lambda: DatasetSpec("multimodal_mixture")
    )  # samples {"image" or None, "prompt", "text"}: a registered dataset and its arguments


# ----------------------------------------------------------------------------------------------
# model


class HybridEncoder(nn.Module):
    """ViT + fusion + token embedding + Mamba-3 backbone: what the JEPA target is an EMA copy of.

    Args:
        vision: ViT with ``forward(x, keep_indices)``, ``grid_size`` and ``embed_dim``.
        config: the language model's sizes.
        vocab_size: V.
    """

    def __init__(self, vision: nn.Module, config: HybridModelConfig, vocab_size: int):
        super().__init__()
        D = config.d_model
        self.vision = vision
        self.fusion = nn.Linear(vision.embed_dim, D)  # cross-modal fusion: image tokens -> LM width
        self.no_image = nn.Parameter(torch.zeros(D))  # prefix of a sample without an image
        self.mask_token = nn.Parameter(torch.zeros(D))  # replaces every masked position (online only)
        nn.init.normal_(self.mask_token, std=0.02)
        self.embed = nn.Embedding(vocab_size, D)
        ssm = {
            "layer": "Mamba3",
            "d_state": config.d_state,
            "expand": config.expand,
            "headdim": config.headdim,
        }
        self.backbone = MixerModel(
            D, config.n_layer, vocab_size=None, ssm_cfg=ssm, d_intermediate=config.d_intermediate
        )

    def inputs(
        self,
        images: torch.Tensor | None,
        has_image: torch.Tensor,
        ids: torch.Tensor,
        vision_keep: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The joint input sequence ``(B, T, D)``: the image prefix (when the batch has images), then the text.

        Args:
            images: ``(B, 3, S, S)`` or None (a text-only batch: no prefix).
            has_image: ``(B,)`` bool; samples without an image get the ``no_image`` prefix.
            ids: ``(B, L)`` text ids.
            vision_keep: ``(n, Kv)`` visible image tokens of the ``n`` samples with an image (None:
                all); the others are the mask token and never reach the ViT.
            text_mask: ``(B, L)`` bool, text positions replaced by the mask token (None: none).
        """
        text = self.embed(ids)  # (B, L, D)
        if text_mask is not None:
            text = torch.where(text_mask.unsqueeze(-1), self.mask_token.to(text.dtype), text)
        if images is None:
            return text
        B, D = ids.shape[0], text.shape[-1]
        grid = self.vision.grid_size(images.shape)
        Nv = grid[0] * grid[1] * grid[2]
        prefix = self.no_image.to(text.dtype).expand(B, Nv, D).clone()
        if bool(has_image.any()):
            tokens = self.fusion(self.vision(images[has_image], keep_indices=vision_keep))  # (n, Kv|Nv, D)
            if vision_keep is None:
                prefix[has_image] = tokens
            else:
                rows = self.mask_token.to(text.dtype).expand(tokens.shape[0], Nv, D).clone()
                rows.scatter_(1, vision_keep.unsqueeze(-1).expand(-1, -1, D), tokens)
                prefix[has_image] = rows
        return torch.cat([prefix, text], dim=1)

    def forward(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, T, D)`` of a joint input sequence (after the final norm)."""
        return self.backbone(inputs_embeds=inputs_embeds)


class HybridModel(nn.Module):
    """The encoder, its EMA target, the LM head and the multi-step JEPA head.

    Args:
        vision: the ViT.
        config: language-model sizes.
        jepa: JEPA head settings.
        vocab_size: V.
        ema: target momentum schedule.
        max_steps: updates of the momentum schedule.
    """

    def __init__(
        self,
        vision: nn.Module,
        config: HybridModelConfig,
        jepa: HybridJEPAConfig,
        vocab_size: int,
        ema: JEPAEMAConfig,
        max_steps: int,
    ):
        super().__init__()
        config.validate()
        jepa.validate()
        self.config, self.jepa_cfg, self.vocab_size = config, jepa, vocab_size
        D = config.d_model
        self.encoder = HybridEncoder(vision, config, vocab_size)
        self.target_encoder = EMA(self.encoder, ema.start, ema.end, max_steps, ema.kind)
        self.lm_head = nn.Linear(D, vocab_size, bias=False)  # the autoregressive head
        if config.tie_embeddings:
            self.lm_head.weight = self.encoder.embed.weight
        hidden = jepa.head_hidden or 2 * D
        self.jepa_head = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(D), nn.Linear(D, hidden), nn.GELU(), nn.Linear(hidden, D))
            for _ in range(jepa.prediction_steps)
        )

    def vision_tokens(self, images: torch.Tensor | None) -> int:
        """Nv: image tokens of the prefix (0 without images)."""
        if images is None:
            return 0
        gt, gh, gw = self.encoder.vision.grid_size(images.shape)
        return gt * gh * gw

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(..., D) -> (..., V)``."""
        return self.lm_head(hidden)

    @torch.no_grad()
    def generate(
        self, images: torch.Tensor | None, prompt_ids: list[list[int]], max_new_tokens: int, eos_id: int
    ) -> list[list[int]]:
        """Greedy continuation of each prompt (after its image), one O(1) recurrent step per token.

        Args:
            images: ``(B, 3, S, S)`` or None.
            prompt_ids: per sample the ids of BOS + prompt.
            max_new_tokens: most tokens generated per sample.
            eos_id: stops a sample.

        Returns:
            The generated ids per sample (without the prompt, without EOS).
        """
        out = []
        enc = self.encoder
        for b, ids in enumerate(prompt_ids):
            image = None if images is None else images[b : b + 1]
            has = torch.ones(1, dtype=torch.bool) if image is not None else torch.zeros(1, dtype=torch.bool)
            x = enc.inputs(image, has, torch.tensor([ids]))
            hidden, state = enc.backbone(inputs_embeds=x, return_state=True)
            token = int(self.logits(hidden[0, -1]).argmax())
            generated = []
            while token != eos_id and len(generated) < max_new_tokens:
                generated.append(token)
                h, state = enc.backbone.step(state, inputs_embeds=enc.embed(torch.tensor([token])))
                token = int(self.logits(h[0]).argmax())
            out.append(generated)
        return out


def multi_step_pairs(valid: torch.Tensor, masked: torch.Tensor, k: int) -> torch.Tensor:
    """Where sub-head ``k`` is trained: position ``t`` valid and position ``t + k`` valid and masked.

    Args:
        valid: ``(B, T)`` bool, real positions (not padding, not a missing image).
        masked: ``(B, T)`` bool, masked positions.
        k: steps ahead (>= 1).

    Returns:
        ``(B, T - k)`` bool over source positions ``t``.
    """
    if k < 1 or k >= valid.shape[1]:
        raise ConfigError(f"prediction step k={k} must lie in [1, {valid.shape[1] - 1}]")
    return valid[:, :-k] & valid[:, k:] & masked[:, k:]


def hybrid_loss(
    outputs: dict[str, Any], batch: dict[str, Any], alpha: float = 0.3, beta: float = 0.7
) -> dict:
    """``alpha`` x JEPA + ``beta`` x LM.

    Args:
        outputs: ``{"predicted_emb": [(N_k, D)] per step, "target_emb": [(N_k, D)] per step,
            "step_weights": [w_k], "logits": (B, L, V) or None}``; a term with weight 0 may be None.
        batch: ``{"target_tokens": (B, L)}`` shifted targets (``-100``: not predicted).
        alpha: JEPA weight.
        beta: LM weight.

    Returns:
        ``{"total_loss", "jepa_loss", "lm_loss"}``: the JEPA loss is the ``step_weights``-weighted
        mean over sub-heads of each one's MSE (mean over its pairs and the embedding width; a
        sub-head without pairs is left out); the LM loss the mean next-token cross-entropy.
    """
    zero = torch.zeros(())
    jepa = lm = zero
    if alpha > 0:
        terms, weights = [], []
        for pred, target, w in zip(outputs["predicted_emb"], outputs["target_emb"], outputs["step_weights"]):
            if pred.shape[0]:
                terms.append(F.mse_loss(pred.float(), target.float()))
                weights.append(w)
        if terms:
            jepa = sum(w * t for w, t in zip(weights, terms)) / sum(weights)
    if beta > 0:
        logits, targets = outputs["logits"], batch["target_tokens"]
        lm = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE
        )
    total = alpha * jepa + beta * lm
    return {"total_loss": total, "jepa_loss": jepa, "lm_loss": lm}


# ----------------------------------------------------------------------------------------------
# data


@dataclass
class HybridBatch:
    """A collated batch.

    Attributes:
        images: ``(B, 3, S, S)`` or None (no sample of the batch has an image).
        has_image: ``(B,)`` bool.
        ids: ``(B, L)`` text ids: BOS, prompt, text, EOS, then padding.
        targets: ``(B, L)`` the next token of each position where it is text (not prompt, not
            padding), else ``-100``.
        text_valid: ``(B, L)`` bool, non-padding text positions.
        text_mask: ``(B, L)`` bool, masked text positions.
        vision_keep: ``(n, Kv)`` visible image tokens of the samples with an image, or None.
        vision_masked: ``(n, Nv)`` bool, masked image tokens, or None.
        sources: the source of each sample.
    """

    images: torch.Tensor | None
    has_image: torch.Tensor
    ids: torch.Tensor
    targets: torch.Tensor
    text_valid: torch.Tensor
    text_mask: torch.Tensor
    vision_keep: torch.Tensor | None
    vision_masked: torch.Tensor | None
    sources: list[str]

    def tokens(self, vision_tokens: int) -> int:
        """Tokens of the batch: its text tokens plus the image tokens of the samples with an image."""
        return int(self.text_valid.sum()) + vision_tokens * int(self.has_image.sum())


class HybridCollator:
    """Tokenise, truncate, shift the targets and draw the JEPA masks of each sample.

    Args:
        tokenizer: the run's tokenizer.
        max_length: text tokens per sample.
        jepa: mask settings.
        vision_grid: ``(gh, gw)`` patch grid of the images.
        patch: pixels per patch side.
    """

    def __init__(
        self,
        tokenizer: TextTokenizer,
        max_length: int,
        jepa: HybridJEPAConfig,
        vision_grid: tuple[int, int],
        patch: int,
    ):
        self.tokenizer, self.max_length, self.jepa = tokenizer, max_length, jepa
        block = max(1, jepa.block_pixels // patch)
        self.vision_mask = BlockGrid(vision_grid, (block, block), jepa.mask_ratio)
        self.num_vision = vision_grid[0] * vision_grid[1]

    def encode(self, prompt: str, text: str) -> tuple[list[int], int]:
        """BOS + prompt + text + EOS, truncated to ``max_length`` (EOS kept); and where the text starts."""
        tok = self.tokenizer
        head = [tok.bos_id, *tok.tokenize(prompt)] if prompt else [tok.bos_id]
        body = [*tok.tokenize(text), tok.eos_id]
        ids = (head + body)[: self.max_length]
        if len(head) + len(body) > self.max_length:
            ids[-1] = tok.eos_id
        return ids, min(len(head), len(ids) - 1)

    def _text_mask(self, length: int, joint: bool, generator: torch.Generator) -> torch.Tensor:
        j = self.jepa
        if length < 2:
            return torch.zeros(length, dtype=torch.bool)
        if joint and length > j.span_length:
            spec = Span(length, j.span_length, j.mask_ratio).sample(generator)
        else:
            spec = RandomTokens(length, j.mask_ratio).sample(generator)
        mask = torch.zeros(length, dtype=torch.bool)
        mask[spec.target_indices] = True
        return mask

    def __call__(
        self, samples: list[dict[str, Any]], generator: torch.Generator | None = None
    ) -> HybridBatch:
        generator = generator or torch.Generator().manual_seed(0)
        encoded = [self.encode(s["prompt"], s["text"]) for s in samples]
        B, L = len(samples), max(len(ids) for ids, _ in encoded)
        ids = torch.full((B, L), self.tokenizer.pad_id, dtype=torch.long)
        targets = torch.full((B, L), IGNORE, dtype=torch.long)
        valid = torch.zeros(B, L, dtype=torch.bool)
        text_mask = torch.zeros(B, L, dtype=torch.bool)
        has_image = torch.tensor([s.get("image") is not None for s in samples])
        for b, (row, start) in enumerate(encoded):
            n = len(row)
            ids[b, :n] = torch.tensor(row)
            valid[b, :n] = True
            # position i predicts token i + 1 where that token is text (or the closing EOS)
            targets[b, start - 1 : n - 1] = ids[b, start:n]
            text_mask[b, :n] = self._text_mask(n, bool(has_image[b]), generator)
        images = vision_keep = vision_masked = None
        if bool(has_image.any()):
            shapes = {tuple(s["image"].shape) for s in samples if s.get("image") is not None}
            if len(shapes) != 1:
                raise ShapeError(f"images of one batch must share a shape, got {sorted(shapes)}")
            shape = shapes.pop()
            images = torch.stack(
                [s["image"] if s.get("image") is not None else torch.zeros(shape) for s in samples]
            )
            specs = self.vision_mask.sample_batch(int(has_image.sum()), generator)
            vision_keep = torch.stack([spec.context_indices for spec in specs])
            vision_masked = torch.zeros(len(specs), self.num_vision, dtype=torch.bool)
            for i, spec in enumerate(specs):
                vision_masked[i, spec.target_indices] = True
        return HybridBatch(
            images,
            has_image,
            ids,
            targets,
            valid,
            text_mask,
            vision_keep,
            vision_masked,
            [s["source"] for s in samples],
        )


def _tokenizer_corpus(dataset: Any, count: int) -> Iterable[str]:
    for i in range(min(count, len(dataset))):
        item = dataset[i]
        yield item["prompt"] + item["text"]


def build_tokenizer(config: HybridTokenizerConfig, train: Any) -> TextTokenizer:
    """Bytes, a ``tokenizer.json``, or BPE trained (deterministically) on the first training items."""
    if config.kind == "byte":
        return ByteTokenizer()
    if config.kind != "bpe":
        return load_tokenizer(config.kind)
    return HFTokenizer.train_bpe(_tokenizer_corpus(train, config.corpus_items), vocab_size=config.vocab_size)


# ----------------------------------------------------------------------------------------------
# method


@register_method("hybrid")
class HybridMethod(Method):
    """The hybrid JEPA + LM method (module docstring).

    Args:
        model: the model.
        tokenizer: its tokenizer.
        loss: default weights of the two terms.
        collate: the collator of its batches.
    """

    config_cls = HybridConfig
    loss_terms = ("jepa", "lm")

    def __init__(
        self, model: HybridModel, tokenizer: TextTokenizer, loss: HybridLossConfig, collate: HybridCollator
    ) -> None:
        super().__init__()
        self.model, self.tokenizer, self.loss_cfg, self.collate = model, tokenizer, loss, collate
        self.loss_weights = {"jepa": loss.alpha, "lm": loss.beta}
        self.last_momentum = model.target_encoder.momentum(0)

    @classmethod
    def from_config(cls, config: HybridConfig) -> HybridMethod:
        vision = config.vision.build()
        if not hasattr(vision, "grid_size"):
            raise ConfigError(f"vision.name={config.vision.name!r} is not a ViT preset")
        train = config.data.build("train")
        tokenizer = build_tokenizer(config.tokenizer, train)
        vocab = max(
            tokenizer.vocab_size, config.tokenizer.vocab_size if config.tokenizer.kind == "bpe" else 0
        )
        max_steps = config.planned_steps() or config.train.max_steps
        model = HybridModel(vision, config.model, config.jepa, vocab, config.ema, max_steps)
        patch, size = int(vision.config.patch_size), int(vision.config.img_size)
        collate = HybridCollator(
            tokenizer, config.model.max_length, config.jepa, (size // patch, size // patch), patch
        )
        return cls(model, tokenizer, config.loss, collate)

    def set_stage(self, index: int, name: str, loss_weights: dict[str, float]) -> None:
        """Stage weights are ``alpha`` (``jepa``) and ``beta`` (``lm``); a term left out keeps the ``loss`` default."""
        super().set_stage(index, name, loss_weights)
        defaults = {"jepa": self.loss_cfg.alpha, "lm": self.loss_cfg.beta}
        self.loss_weights = {t: float(loss_weights.get(t, defaults[t])) for t in self.loss_terms}

    def build_data(self, config: HybridConfig) -> DataSpec:
        return DataSpec(config.data.build("train"), config.data.build("val"), self.collate)

    def checkpoint_files(self) -> dict[str, bytes]:
        """``tokenizer.json`` (a BPE or file tokenizer) in every checkpoint."""
        if isinstance(self.tokenizer, HFTokenizer):
            return {"tokenizer.json": self.tokenizer.tokenizer.to_str().encode()}
        return {}

    # -- the step --------------------------------------------------------------------------

    def valid_positions(self, batch: HybridBatch) -> torch.Tensor:
        """``(B, T)`` bool: image tokens of samples with an image, then non-padding text."""
        Nv = self.model.vision_tokens(batch.images)
        vision = batch.has_image.unsqueeze(1).expand(-1, Nv)
        return torch.cat([vision, batch.text_valid], dim=1)

    def masked_positions(self, batch: HybridBatch) -> torch.Tensor:
        """``(B, T)`` bool: the JEPA mask over the joint sequence."""
        Nv = self.model.vision_tokens(batch.images)
        vision = torch.zeros(batch.ids.shape[0], Nv, dtype=torch.bool)
        if batch.vision_masked is not None:
            vision[batch.has_image] = batch.vision_masked
        return torch.cat([vision, batch.text_mask], dim=1)

    def forward_outputs(self, batch: HybridBatch, jepa: bool = True, lm: bool = True) -> dict[str, Any]:
        """The inputs of :func:`hybrid_loss` for ``batch`` (only the passes asked for run)."""
        model, enc = self.model, self.model.encoder
        out: dict[str, Any] = {
            "predicted_emb": [],
            "target_emb": [],
            "step_weights": list(model.jepa_cfg.step_weights),
        }
        out["logits"] = None
        Nv = model.vision_tokens(batch.images)
        if lm:
            hidden = enc(enc.inputs(batch.images, batch.has_image, batch.ids))  # (B, T, D)
            out["logits"] = model.logits(hidden[:, Nv:])  # (B, L, V)
        if jepa:
            with torch.no_grad():
                target = model.target_encoder.target
                h = target(target.inputs(batch.images, batch.has_image, batch.ids)).float()
                h = F.layer_norm(h, h.shape[-1:])  # (B, T, D)
            x = enc.inputs(batch.images, batch.has_image, batch.ids, batch.vision_keep, batch.text_mask)
            online = enc(x)  # (B, T, D)
            valid, masked = self.valid_positions(batch), self.masked_positions(batch)
            for k, head in enumerate(model.jepa_head, start=1):
                if k >= online.shape[1]:
                    break
                pairs = multi_step_pairs(valid, masked, k)  # (B, T - k)
                out["predicted_emb"].append(head(online[:, :-k][pairs]))  # (N_k, D)
                out["target_emb"].append(h[:, k:][pairs])  # (N_k, D)
        return out

    def training_step(self, batch: HybridBatch, step: int) -> TrainOutput:
        alpha, beta = self.loss_weights["jepa"], self.loss_weights["lm"]
        outputs = self.forward_outputs(batch, jepa=alpha > 0, lm=beta > 0)
        losses = hybrid_loss(outputs, {"target_tokens": batch.targets}, alpha, beta)
        metrics = {
            "jepa_loss": losses["jepa_loss"].detach(),
            "lm_loss": losses["lm_loss"].detach(),
            "ema_momentum": self.last_momentum,
        }
        for k, pred in enumerate(outputs["predicted_emb"], start=1):
            metrics[f"jepa_mse_k{k}"] = (
                F.mse_loss(pred.detach().float(), outputs["target_emb"][k - 1]) if pred.shape[0] else 0.0
            )
        return TrainOutput(
            losses["total_loss"], metrics, batch.tokens(self.model.vision_tokens(batch.images))
        )

    def after_optimizer_step(self, step: int, max_steps: int) -> None:
        if self.loss_weights["jepa"] > 0:
            self.last_momentum = self.model.target_encoder.update(self.model.encoder, step)

    @torch.no_grad()
    def evaluate(self, batches: Iterable[HybridBatch]) -> dict[str, float]:
        def losses(batch: HybridBatch) -> dict[str, torch.Tensor]:
            out = hybrid_loss(self.forward_outputs(batch), {"target_tokens": batch.targets}, 1.0, 1.0)
            return {"jepa_loss": out["jepa_loss"], "lm_loss": out["lm_loss"]}

        return held_out_means((b.ids.shape[0], losses(b)) for b in batches)
