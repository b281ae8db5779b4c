"""Mamba3-JEPA: VL-JEPA (Chen et al., arXiv 2512.10942) with Mamba-3 predictor, Y-encoder and Y-decoder.

Four parts:

* **X-encoder**: a frozen vision encoder (our ViT in the V-JEPA 2 layout, or VideoMamba for clips)
  turning pixels into visual tokens.
* **Predictor**: ``vision_proj`` on the visual tokens, the query embedded with the Y-encoder's token
  table then ``query_proj``, the sequence ``[visual; query]`` through Mamba-3 blocks (the query comes
  after the image so that, the scan being causal, every query position has seen it), final norm,
  mean over the non-padding positions, ``pred_head`` into the shared embedding space.
* **Y-encoder**: a Mamba-3 text encoder embedding the target text into the same space.
* **Y-decoder**: a Mamba-3 language model primed by soft tokens computed from an embedding; it
  turns a predicted embedding into text only when text is wanted.

Training pulls the predicted embedding of (image, query) towards the Y-encoder's embedding of the
target text with a bidirectional InfoNCE loss (in-batch negatives, gathered across ranks), and
teaches the Y-decoder to read the (detached) predicted embedding back into the target text.

Dimension legend: ``B`` batch, ``N`` visual tokens, ``Dv`` X-encoder width, ``Lq`` query tokens,
``Lt`` target tokens, ``Dt`` Y-encoder width, ``D`` predictor width, ``Z`` shared embedding width.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.core.errors import CheckpointError, ConfigError, ShapeError
from mambajepa.core.files import atomic_write_json, load_state_dict, read_json, save_state_dict
from mambajepa.core.mapping import load_mapped
from mambajepa.core.pretrained import config_from_dict, config_to_dict
from mambajepa.data.tokenizers import ByteTokenizer, HFTokenizer, TextTokenizer, load_tokenizer
from mambajepa.encoders.text import TextDecoder, TextDecoderConfig, TextEncoder, TextEncoderConfig
from mambajepa.encoders.vit import ViTConfig
from mambajepa.losses.infonce import InfoNCE
from mambajepa.methods.base import TrainOutput
from mambajepa.specs import EncoderSpec
from mambajepa.ssm.mixer_model import MixerModel, MixerState

__all__ = [
    "Mamba3DecoderConfig",
    "Mamba3Jepa",
    "Mamba3JepaConfig",
    "Mamba3Predictor",
    "Mamba3PredictorConfig",
    "Mamba3TextEncoderConfig",
    "VLJEPAOutput",
    "VitConfig",
    "target_groups",
]

#: the X-encoder's architecture: our ViT config (V-JEPA 2 layout)
VitConfig = ViTConfig

MODEL_CONFIG = "vljepa.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
X_ENCODER_DIR = "x_encoder"


# ----------------------------------------------------------------------------------------------
# configs


def _mamba3_cfg(d_state: int, headdim: int, expand: int = 2, trapezoidal_alpha: float | None = None) -> dict:
    cfg: dict[str, Any] = {"layer": "Mamba3", "d_state": d_state, "headdim": headdim, "expand": expand}
    if trapezoidal_alpha is not None:
        cfg["trapezoidal_alpha"] = trapezoidal_alpha
    return cfg


@dataclass
class Mamba3PredictorConfig:
    """Architecture of :class:`Mamba3Predictor` (the design input's ``tiny`` by default)."""

    d_model: int = 64  # width D of the Mamba-3 stack
    n_layers: int = 2  # Mamba-3 blocks
    d_state: int = 16  # state size N per head
    expand: int = 2  # inner width / D
    headdim: int = 16  # head dim P
    trapezoidal_alpha: float | None = None  # fixed trapezoid weight lambda; null: data-dependent
    embed_dim: int = 32  # shared embedding width Z
    bidirectional: bool = False  # forward + reversed scans (cannot stream)
    visual_pool: int = 0  # average-pool the visual token grid to this side first (0: keep every token)
    max_query_len: int = 64  # longest query (tokens, with BOS/EOS) the predictor accepts
    mixer: Literal["mamba3", "mamba2", "transformer"] = "mamba3"  # block type (others: baselines)

    def validate(self) -> None:
        for name in ("d_model", "n_layers", "d_state", "expand", "headdim", "embed_dim", "max_query_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"predictor.{name}={getattr(self, name)} must be positive")
        if self.visual_pool < 0:
            raise ConfigError(f"predictor.visual_pool={self.visual_pool} must be >= 0")
        if (self.d_model * self.expand) % self.headdim:
            raise ConfigError(
                f"predictor: d_model*expand={self.d_model * self.expand} is not a multiple of headdim={self.headdim}"
            )


@dataclass
class Mamba3TextEncoderConfig:
    """Architecture of the Y-encoder (a Mamba-3 :class:`~mambajepa.encoders.text.TextEncoder`)."""

    vocab_size: int = 260  # tokenizer vocabulary (256 bytes + 4 special ids of the default byte tokenizer)
    d_model: int = 64  # width Dt
    n_layers: int = 2  # Mamba-3 blocks
    d_state: int = 16  # state size per head
    headdim: int = 16  # head dim
    embed_dim: int = 32  # shared embedding width Z

    def text_config(self) -> TextEncoderConfig:
        """The equivalent :class:`TextEncoderConfig`."""
        return TextEncoderConfig(
            vocab_size=self.vocab_size,
            d_model=self.d_model,
            n_layer=self.n_layers,
            embed_dim=self.embed_dim,
            ssm_cfg=_mamba3_cfg(self.d_state, self.headdim),
        )


@dataclass
class Mamba3DecoderConfig:
    """Architecture of the Y-decoder (a Mamba-3 :class:`~mambajepa.encoders.text.TextDecoder`)."""

    d_model: int = 64  # width of the language model
    n_layers: int = 2  # Mamba-3 blocks
    vocab_size: int = 260  # tokenizer vocabulary (as the Y-encoder's)
    prefix_len: int = 4  # soft tokens computed from the embedding
    embed_dim: int = 32  # shared embedding width Z (its input)
    d_state: int = 16  # state size per head
    headdim: int = 16  # head dim

    def text_config(self) -> TextDecoderConfig:
        """The equivalent :class:`TextDecoderConfig`."""
        return TextDecoderConfig(
            vocab_size=self.vocab_size,
            d_model=self.d_model,
            n_layer=self.n_layers,
            embed_dim=self.embed_dim,
            prefix_len=self.prefix_len,
            ssm_cfg=_mamba3_cfg(self.d_state, self.headdim),
        )


def _tiny_x_encoder() -> EncoderSpec:
    return EncoderSpec(
        "vit_tiny_patch4",
        {"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_frames": 1,
         "tubelet_size": 1},
    )  # fmt: skip


@dataclass
class Mamba3JepaConfig:
    """The whole model: X-encoder preset, the three Mamba-3 parts, the loss."""

    x_encoder: EncoderSpec = field(default_factory=_tiny_x_encoder)  # frozen vision encoder preset
    predictor: Mamba3PredictorConfig = field(default_factory=Mamba3PredictorConfig)
    y_encoder: Mamba3TextEncoderConfig = field(default_factory=Mamba3TextEncoderConfig)
    y_decoder: Mamba3DecoderConfig = field(default_factory=Mamba3DecoderConfig)
    temperature: float = 0.07  # InfoNCE tau
    learnable_temperature: bool = False  # learn tau (CLIP's logit scale)
    decoder_weight: float = 1.0  # weight of the Y-decoder's cross-entropy
    decoder_input: Literal["predicted", "target"] = "predicted"  # the (detached) embedding it reads
    # True: every other row of the batch is a negative, as in CLIP; False: rows whose target text is
    # the same (VQA answers repeat within a batch) are not each other's negatives
    same_target_negatives: bool = True
    # True: the X-encoder trains with the rest (not VL-JEPA; the ceiling a frozen one is measured against)
    train_x_encoder: bool = False

    def validate(self) -> None:
        self.predictor.validate()
        z = {self.predictor.embed_dim, self.y_encoder.embed_dim, self.y_decoder.embed_dim}
        if len(z) != 1:
            raise ConfigError(
                f"predictor, y_encoder and y_decoder must share embed_dim, got {self.predictor.embed_dim}, "
                f"{self.y_encoder.embed_dim}, {self.y_decoder.embed_dim}"
            )
        if self.y_encoder.vocab_size != self.y_decoder.vocab_size:
            raise ConfigError(
                f"y_encoder.vocab_size={self.y_encoder.vocab_size} != y_decoder.vocab_size={self.y_decoder.vocab_size}"
            )
        if self.temperature <= 0 or self.decoder_weight < 0:
            raise ConfigError(
                f"need temperature > 0 and decoder_weight >= 0, got {self.temperature}, {self.decoder_weight}"
            )

    @classmethod
    def tiny(cls) -> Mamba3JepaConfig:
        """The design input's ``tiny``: ViT d 32 x 2, patch 4, 16 px; Mamba-3 parts d 64 x 2; Z 32.

        Its vocabulary of 256 becomes 260 so that the default byte tokenizer's BOS / EOS / PAD / UNK fit.
        """
        return cls()

    @classmethod
    def small(cls) -> Mamba3JepaConfig:
        """The design input's ``small``: the V-JEPA 2 ViT-L (224 px) X-encoder, frozen (303.9M parameters).

        Its numbers give 188.6M trainable parameters (predictor 83.7M, Y-encoder 71.6M, Y-decoder
        33.2M); the design input rounds them to "~150M".

        Predictor d 1024 x 12 (d_state 128, headdim 64), Y-encoder d 768 x 12 with a 32000 vocabulary,
        Y-decoder d 512 x 6 with 8 prefix tokens, shared embedding 1536.
        """
        return cls(
            x_encoder=EncoderSpec("vit_l16_vjepa2", {"img_size": 224}),
            predictor=Mamba3PredictorConfig(
                d_model=1024, n_layers=12, d_state=128, headdim=64, embed_dim=1536
            ),
            y_encoder=Mamba3TextEncoderConfig(
                vocab_size=32000, d_model=768, n_layers=12, d_state=128, headdim=64, embed_dim=1536
            ),
            y_decoder=Mamba3DecoderConfig(
                d_model=512,
                n_layers=6,
                vocab_size=32000,
                prefix_len=8,
                embed_dim=1536,
                d_state=128,
                headdim=64,
            ),
        )


# ----------------------------------------------------------------------------------------------
# predictor


class _Transformer(nn.Module):
    """Pre-norm causal (or bidirectional) transformer stack with the MixerModel call signature."""

    def __init__(self, d_model: int, n_layer: int, num_heads: int, causal: bool) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, 4 * d_model, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.norm_f = nn.LayerNorm(d_model)
        self.causal = causal

    def forward(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        L = inputs_embeds.shape[1]
        mask = (
            nn.Transformer.generate_square_subsequent_mask(L, device=inputs_embeds.device)
            if self.causal
            else None
        )
        return self.norm_f(self.layers(inputs_embeds, mask=mask, is_causal=self.causal))


class Mamba3Predictor(nn.Module):
    """Visual tokens + query embeddings -> L2-normalised predicted embedding ``(B, Z)``.

    Args:
        config: the architecture.
        vision_dim: width ``Dv`` of the X-encoder's tokens.
        text_dim: width ``Dt`` of the Y-encoder's token embeddings (the query is embedded with them).
    """

    def __init__(self, config: Mamba3PredictorConfig, vision_dim: int, text_dim: int) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d = config.d_model
        self.vision_proj = nn.Linear(vision_dim, d)
        self.query_proj = nn.Linear(text_dim, d)
        if config.mixer == "transformer":
            self.backbone: nn.Module = _Transformer(
                d, config.n_layers, max(1, d // 32), not config.bidirectional
            )
        else:
            layer = "Mamba3" if config.mixer == "mamba3" else "Mamba2"
            ssm_cfg = _mamba3_cfg(config.d_state, config.headdim, config.expand, config.trapezoidal_alpha)
            if layer == "Mamba2":
                ssm_cfg.pop("trapezoidal_alpha", None)
            self.backbone = MixerModel(
                d,
                config.n_layers,
                ssm_cfg={**ssm_cfg, "layer": layer},
                residual_in_fp32=True,
                bidirectional=config.bidirectional,
            )
        self.pred_head = nn.Linear(d, config.embed_dim)

    def pool_visual(self, visual: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """Average-pool ``(B, N, Dv)`` tokens on their ``(gt, gh, gw)`` grid to ``visual_pool`` per side."""
        side = self.config.visual_pool
        gt, gh, gw = grid
        if side == 0 or (gh <= side and gw <= side):
            return visual
        x = visual.transpose(1, 2).reshape(visual.shape[0] * 1, visual.shape[2], gt, gh, gw)
        x = F.adaptive_avg_pool3d(x, (gt, min(side, gh), min(side, gw)))  # (B, Dv, gt, s, s)
        return x.flatten(2).transpose(1, 2)  # (B, gt*s*s, Dv)

    def forward(
        self, visual: torch.Tensor, query_embeds: torch.Tensor, query_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict the target embedding.

        Args:
            visual: ``(B, N, Dv)`` visual tokens (already pooled).
            query_embeds: ``(B, Lq, Dt)`` query token embeddings (``Lq`` may be 0).
            query_mask: ``(B, Lq)``, nonzero on real query tokens; None: all real.

        Returns:
            ``(B, Z)`` L2-normalised embeddings.

        Raises:
            ShapeError: batch sizes that differ, a query longer than ``max_query_len``.
        """
        if visual.dim() != 3 or query_embeds.dim() != 3 or visual.shape[0] != query_embeds.shape[0]:
            raise ShapeError(
                f"predictor needs visual (B, N, Dv) and query (B, Lq, Dt) of one batch, got "
                f"{tuple(visual.shape)} and {tuple(query_embeds.shape)}"
            )
        if query_embeds.shape[1] > self.config.max_query_len:
            raise ShapeError(
                f"query of {query_embeds.shape[1]} tokens is longer than the predictor's context "
                f"max_query_len={self.config.max_query_len}"
            )
        B, N = visual.shape[:2]
        seq = torch.cat([self.vision_proj(visual), self.query_proj(query_embeds).to(visual.dtype)], dim=1)
        hidden = self.backbone(inputs_embeds=seq)  # (B, N+Lq, D)
        valid = torch.ones(B, seq.shape[1], device=seq.device, dtype=hidden.dtype)
        if query_mask is not None:
            valid[:, N:] = (query_mask != 0).to(hidden.dtype)
        pooled = (hidden * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)  # (B, D)
        return F.normalize(self.pred_head(pooled), dim=-1)

    # -- streaming -----------------------------------------------------------------------------

    def init_state(self, batch_size: int, device=None) -> MixerState:
        """Zero streaming state of the (causal Mamba) stack."""
        if not isinstance(self.backbone, MixerModel) or self.config.bidirectional:
            raise ConfigError("only a causal Mamba predictor streams (bidirectional / transformer do not)")
        return self.backbone.init_state(batch_size, device=device)

    def step_frame(self, visual: torch.Tensor, state: MixerState) -> tuple[torch.Tensor, MixerState]:
        """Feed one frame's visual tokens ``(B, N, Dv)``, continuing ``state``.

        Returns:
            ``(B, N, D)`` hidden states of the frame and the state after it (O(1) in the stream length).
        """
        hidden, state = self.backbone(inputs_embeds=self.vision_proj(visual), state=state, return_state=True)
        return hidden, state


def state_vector(state: MixerState) -> torch.Tensor:
    """The SSM states of every layer of a Mamba-3/Mamba-2 stack flattened per sequence: ``(B, S)``."""
    parts = [getattr(layer, "ssm", None) for layer in state.layers]
    if any(p is None for p in parts):
        raise ConfigError("state_vector needs Mamba-2/3 layer states (with an 'ssm' tensor)")
    return torch.cat([p.flatten(1) for p in parts], dim=1)


# ----------------------------------------------------------------------------------------------
# the model


@dataclass
class VLJEPAOutput(TrainOutput):
    """A training step of :class:`Mamba3Jepa`.

    Attributes:
        predicted: ``(B, Z)`` normalised predicted embeddings.
        target: ``(B, Z)`` normalised Y-encoder embeddings of the targets.
        infonce: 0-d contrastive loss.
        decoder_loss: 0-d teacher-forced cross-entropy of the Y-decoder (0 when its weight is 0).
    """

    predicted: torch.Tensor | None = None
    target: torch.Tensor | None = None
    infonce: torch.Tensor | None = None
    decoder_loss: torch.Tensor | None = None


def _default_tokenizer(vocab_size: int) -> TextTokenizer:
    tokenizer = ByteTokenizer()
    if tokenizer.vocab_size > vocab_size:
        raise ConfigError(f"the byte tokenizer needs vocab_size >= {tokenizer.vocab_size}, got {vocab_size}")
    return tokenizer


def target_groups(ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(B,)`` int64 ids equal for rows whose real tokens are equal, the same on every rank.

    A polynomial hash of the real tokens modulo the prime ``2**31 - 1``: padding adds nothing, so
    batches padded to different lengths agree, and it needs no exchange between ranks.
    """
    key = ids.long() + 1
    if mask is not None:
        key = key.masked_fill(~mask.bool(), 0)
    modulus = 2**31 - 1
    powers = torch.ones(ids.shape[-1], dtype=torch.long, device=ids.device)
    for k in range(1, ids.shape[-1]):
        powers[k] = powers[k - 1] * 1_000_003 % modulus
    return (key % modulus * powers % modulus).sum(-1) % modulus


class Mamba3Jepa(nn.Module):
    """X-encoder (frozen) + Mamba-3 predictor + Mamba-3 Y-encoder + Mamba-3 Y-decoder, with a tokenizer.

    Args:
        config: the architecture and loss.
        tokenizer: text tokenizer (its ``vocab_size`` must fit the text models); default: bytes.
        x_encoder: a built vision encoder to use instead of building ``config.x_encoder`` (e.g. one
            loaded from a V-JEPA 2 file or a JEPA pre-training run).
        gather: gather InfoNCE negatives across ranks in a distributed run.

    Raises:
        ConfigError: inconsistent widths or vocabularies.
    """

    def __init__(
        self,
        config: Mamba3JepaConfig,
        tokenizer: TextTokenizer | None = None,
        x_encoder: nn.Module | None = None,
        gather: bool = True,
    ) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.tokenizer = tokenizer or _default_tokenizer(config.y_encoder.vocab_size)
        if self.tokenizer.vocab_size > config.y_encoder.vocab_size:
            raise ConfigError(
                f"tokenizer has {self.tokenizer.vocab_size} ids, the text models only "
                f"vocab_size={config.y_encoder.vocab_size}"
            )
        self.x_encoder = x_encoder if x_encoder is not None else config.x_encoder.build()
        if not config.train_x_encoder:
            for p in self.x_encoder.parameters():
                p.requires_grad_(False)
            self.x_encoder.eval()
        self.y_encoder = TextEncoder(config.y_encoder.text_config())
        self.predictor = Mamba3Predictor(config.predictor, self.x_encoder.embed_dim, config.y_encoder.d_model)
        self.y_decoder = TextDecoder(config.y_decoder.text_config())
        self.loss_fn = InfoNCE(config.temperature, learnable=config.learnable_temperature, gather=gather)

    def train(self, mode: bool = True) -> Mamba3Jepa:
        super().train(mode)
        if not self.config.train_x_encoder:
            self.x_encoder.eval()  # frozen: dropout / drop-path stay off
        return self

    # -- text ----------------------------------------------------------------------------------

    def tokenize(
        self, texts: Sequence[str], max_length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids, mask)`` of ``texts``, ``[BOS] ... [EOS]`` padded on the right, on the model's device.

        Raises:
            ConfigError: ``texts`` is a single string, or a text is longer than ``max_length``.
        """
        if isinstance(texts, str):
            raise ConfigError("pass a list of texts, got one string")
        ids, mask = self.tokenizer.batch_encode(list(texts), max_length=max_length, truncation=False)
        device = self.device
        return ids.to(device), mask.to(device)

    def check_ids(self, ids: torch.Tensor, what: str) -> None:
        """Raise a :class:`ShapeError` for token ids outside the text models' vocabulary."""
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.y_encoder.vocab_size):
            raise ShapeError(
                f"{what} holds token id {int(ids.max()) if int(ids.max()) >= 0 else int(ids.min())} outside "
                f"the vocabulary [0, {self.config.y_encoder.vocab_size})"
            )

    def _target_texts(self, texts: Sequence[str]) -> None:
        empty = [i for i, t in enumerate(texts) if not str(t).strip()]
        if empty:
            raise ConfigError(f"target text {empty[0]} is empty: a caption or answer needs at least one word")

    @property
    def device(self) -> torch.device:
        return self.pred_head_weight.device

    @property
    def pred_head_weight(self) -> torch.Tensor:
        return self.predictor.pred_head.weight

    # -- vision --------------------------------------------------------------------------------

    def visual_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """X-encoder tokens (no graph unless it trains), pooled as the predictor asks: ``(B, C, [T,] H, W) -> (B, N, Dv)``.

        Raises:
            ShapeError: an input the X-encoder cannot read (wrong size or layout).
        """
        expected = self.expected_input_size
        if (
            images.dim() not in (4, 5)
            or images.shape[1] != 3
            or (expected is not None and tuple(images.shape[-2:]) != (expected, expected))
        ):
            raise ShapeError(
                f"images must be (B, 3, [T,] {expected}, {expected}) for this X-encoder, got {tuple(images.shape)}"
            )
        with torch.set_grad_enabled(self.config.train_x_encoder and torch.is_grad_enabled()):
            tokens = self.x_encoder(images)  # (B, N, Dv)
            grid = tuple(self.x_encoder.grid_size(images.shape))
            return self.predictor.pool_visual(tokens, grid)

    @property
    def expected_input_size(self) -> int | None:
        """Side in pixels the X-encoder was built for (its ``img_size``), or None if it takes any."""
        cfg = getattr(self.x_encoder, "config", None)
        return getattr(cfg, "img_size", None)

    # -- training ------------------------------------------------------------------------------

    def predict(
        self, visual: torch.Tensor, query_ids: torch.Tensor, query_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predicted embedding ``(B, Z)`` from visual tokens and query ids (embedded with the Y-encoder's table)."""
        self.check_ids(query_ids, "query_ids")
        embeds = self.y_encoder.embedding(query_ids.long())  # (B, Lq, Dt)
        return self.predictor(visual, embeds, query_mask)

    def encode_targets(
        self, target_ids: torch.Tensor, target_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Normalised Y-encoder embeddings ``(B, Z)`` of target ids."""
        self.check_ids(target_ids, "target_ids")
        return F.normalize(self.y_encoder(target_ids, target_mask), dim=-1)

    def train_forward(
        self,
        images: torch.Tensor,
        query_ids: torch.Tensor,
        target_ids: torch.Tensor,
        query_mask: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
        decoder_weight: float | None = None,
        infonce_weight: float = 1.0,
    ) -> VLJEPAOutput:
        """One training forward: InfoNCE between predicted and target embeddings + the Y-decoder's CE.

        Args:
            images: ``(B, 3, [T,] H, W)``.
            query_ids: ``(B, Lq)`` query ids (right-padded); ``query_mask`` marks real tokens.
            target_ids: ``(B, Lt)`` target ids; ``target_mask`` marks real tokens.
            decoder_weight: weight of the decoder's cross-entropy (default ``config.decoder_weight``).
            infonce_weight: weight of the contrastive loss.

        Returns:
            :class:`VLJEPAOutput` with the weighted loss.
        """
        visual = self.visual_tokens(images)
        predicted = self.predict(visual, query_ids, query_mask)  # (B, Z)
        target = self.encode_targets(target_ids, target_mask)  # (B, Z)
        groups = None if self.config.same_target_negatives else target_groups(target_ids, target_mask)
        contrastive = self.loss_fn(predicted, target, groups)
        weight = self.config.decoder_weight if decoder_weight is None else decoder_weight
        source = predicted if self.config.decoder_input == "predicted" else target
        loss = infonce_weight * contrastive
        if weight > 0:
            dec = self.y_decoder.loss(source.detach(), target_ids, target_mask)
            loss = loss + weight * dec
        else:
            dec = contrastive.new_zeros(())
        with torch.no_grad():
            accuracy = (
                (predicted @ target.T).argmax(1) == torch.arange(len(target), device=target.device)
            ).float()
        metrics = {
            "infonce": contrastive.detach(),
            "decoder_ce": dec.detach(),
            "batch_top1": accuracy.mean(),
            "temperature": self.loss_fn.temperature.detach(),
        }
        tokens = int(target_mask.sum()) if target_mask is not None else target_ids.numel()
        return VLJEPAOutput(
            loss=loss,
            metrics=metrics,
            tokens=tokens,
            predicted=predicted,
            target=target,
            infonce=contrastive,
            decoder_loss=dec,
        )

    # -- inference -----------------------------------------------------------------------------

    @torch.no_grad()
    def embed(self, images: torch.Tensor, queries: Sequence[str] | str | None = None) -> torch.Tensor:
        """Predicted embeddings ``(B, Z)`` of images with their queries (None / ``""``: no query)."""
        B = images.shape[0]
        if queries is None or isinstance(queries, str):
            queries = [queries or ""] * B
        if len(queries) != B:
            raise ShapeError(f"{len(queries)} queries for {B} images")
        ids, mask = self.tokenize(queries, max_length=self.config.predictor.max_query_len)
        return self.predict(self.visual_tokens(images.to(self.device)), ids, mask)

    @torch.no_grad()
    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Normalised Y-encoder embeddings ``(B, Z)`` of texts."""
        self._target_texts(texts)
        ids, mask = self.tokenize(texts)
        return self.encode_targets(ids, mask)

    @staticmethod
    def classify(predicted: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Index ``(B,)`` of the candidate ``(K, Z)`` most cosine-similar to each prediction ``(B, Z)``."""
        if predicted.dim() != 2 or candidates.dim() != 2 or predicted.shape[1] != candidates.shape[1]:
            raise ShapeError(
                f"classify needs (B, Z) and (K, Z), got {tuple(predicted.shape)} and {tuple(candidates.shape)}"
            )
        return (F.normalize(predicted, dim=-1) @ F.normalize(candidates, dim=-1).T).argmax(dim=1)

    @staticmethod
    def retrieve(queries: torch.Tensor, gallery: torch.Tensor, k: int = 5) -> torch.Tensor:
        """Indices ``(B, k)`` of the ``k`` gallery rows ``(G, Z)`` most cosine-similar to each query, best first."""
        if queries.dim() != 2 or gallery.dim() != 2 or queries.shape[1] != gallery.shape[1]:
            raise ShapeError(
                f"retrieve needs (B, Z) and (G, Z), got {tuple(queries.shape)} and {tuple(gallery.shape)}"
            )
        sims = F.normalize(queries, dim=-1) @ F.normalize(gallery, dim=-1).T
        return sims.topk(min(k, gallery.shape[0]), dim=1).indices

    @torch.no_grad()
    def decode(self, embeddings: torch.Tensor, max_tokens: int = 32) -> list[str]:
        """Greedy Y-decoder text of embeddings ``(B, Z)`` (O(1) recurrent steps per token)."""
        ids = self.y_decoder.generate(embeddings, max_tokens, eos=self.tokenizer.eos_id, top_k=1)
        return self.tokenizer.batch_decode(ids.cpu())

    @torch.no_grad()
    def answer(
        self, images: torch.Tensor, questions: Sequence[str] | str | None = None, max_tokens: int = 16
    ) -> list[str]:
        """Decoded answers (strings) to questions about images (None: a description of each image)."""
        return self.decode(self.embed(images, questions), max_tokens)

    @torch.no_grad()
    def infer(
        self,
        image: torch.Tensor,
        query: str | None = None,
        mode: Literal["embedding", "decode"] = "embedding",
        max_tokens: int = 32,
    ) -> torch.Tensor | str:
        """The design input's one-item entry point: ``(3, [T,] H, W)`` + query -> embedding ``(Z,)`` or text.

        Raises:
            ConfigError: an unknown ``mode``.
        """
        if mode not in ("embedding", "decode"):
            raise ConfigError(f"infer mode {mode!r} is not 'embedding' or 'decode'")
        emb = self.embed(image[None], [query or ""])
        return emb[0] if mode == "embedding" else self.decode(emb, max_tokens)[0]

    # -- streaming -----------------------------------------------------------------------------

    @torch.no_grad()
    def stream_states(
        self, video: torch.Tensor, frames_per_step: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed a video frame by frame through the predictor, as a live stream would.

        Each frame's visual tokens advance the predictor's Mamba-3 state by O(1) recurrent work; the
        query-free embedding of every frame is computed too (the frame's tokens with an empty query).

        Args:
            video: ``(3, T, H, W)`` frames.
            frames_per_step: frames the X-encoder reads at once (its tubelet depth for video encoders).

        Returns:
            ``(states (T', S), embeddings (T', Z))`` per step: the flattened SSM state after the step and
            the predicted embedding of that step's frames.
        """
        if video.dim() != 4 or video.shape[0] != 3:
            raise ShapeError(f"video must be (3, T, H, W), got {tuple(video.shape)}")
        T = video.shape[1] // frames_per_step * frames_per_step
        state = self.predictor.init_state(1, device=self.device)
        empty_ids, empty_mask = self.tokenize([""])
        states, embeddings = [], []
        for t in range(0, T, frames_per_step):
            clip = video[:, t : t + frames_per_step].to(self.device)
            frame = clip[:, 0][None] if frames_per_step == 1 else clip[None]  # (1, 3, [f,] H, W)
            visual = self.visual_tokens(frame)  # (1, N, Dv)
            _, state = self.predictor.step_frame(visual, state)
            states.append(state_vector(state)[0])
            embeddings.append(self.predict(visual, empty_ids, empty_mask)[0])
        return torch.stack(states), torch.stack(embeddings)

    # -- files ---------------------------------------------------------------------------------

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights of the predictor, Y-encoder, Y-decoder (and the temperature): all but the X-encoder."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("x_encoder.")}

    def save_pretrained(self, directory: str | os.PathLike, include_x_encoder: bool = True) -> Path:
        """Write ``vljepa.json``, ``model.safetensors`` (predictor + Y-encoder + Y-decoder) and ``tokenizer.json``.

        Args:
            directory: destination folder (created).
            include_x_encoder: also write the X-encoder as a ``save_pretrained`` folder ``x_encoder/``;
                otherwise :meth:`from_pretrained` rebuilds it from its preset (or takes it as an argument).

        Returns:
            The folder.
        """
        directory = Path(directory)
        if not isinstance(self.tokenizer, (HFTokenizer, ByteTokenizer)):
            raise ConfigError(
                f"cannot save a {type(self.tokenizer).__name__}; use a byte or tokenizer.json tokenizer"
            )
        if self.config.train_x_encoder and not include_x_encoder:
            raise ConfigError("the X-encoder of this model was trained: save it (include_x_encoder=True)")
        if include_x_encoder and not hasattr(self.x_encoder, "save_pretrained"):
            raise ConfigError(f"{type(self.x_encoder).__name__} has no save_pretrained")
        directory.mkdir(parents=True, exist_ok=True)  # only once the inputs are known to be good
        if isinstance(self.tokenizer, HFTokenizer):
            self.tokenizer.save(directory / TOKENIZER)
        save_state_dict(self.trainable_state_dict(), directory / WEIGHTS, metadata={"format": "pt"})
        if include_x_encoder:
            self.x_encoder.save_pretrained(directory / X_ENCODER_DIR)
        meta = {
            "architecture": type(self).__name__,
            "tokenizer": TOKENIZER if isinstance(self.tokenizer, HFTokenizer) else "byte",
            "x_encoder": X_ENCODER_DIR if include_x_encoder else None,
            "config": config_to_dict(self.config),
        }
        atomic_write_json(directory / MODEL_CONFIG, meta)
        return directory

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", x_encoder: nn.Module | None = None
    ) -> Mamba3Jepa:
        """Load a :meth:`save_pretrained` folder, or the latest checkpoint of a ``vljepa`` run directory.

        Args:
            path: a folder with ``vljepa.json``, or a run directory (``config.yaml`` + ``checkpoints/``).
            device: where to place the model.
            x_encoder: the X-encoder to use when the folder does not include one.

        Returns:
            The model in eval mode.

        Raises:
            CheckpointError: missing or mismatched files.
        """
        path = Path(path)
        if not (path / MODEL_CONFIG).is_file():
            if (path / "config.yaml").is_file() or (path / "trainer.json").is_file():
                from mambajepa.methods.vljepa.method import model_from_run

                return model_from_run(path, device)
            raise CheckpointError(
                f"{path} is neither a Mamba3Jepa folder ({MODEL_CONFIG}) nor a run directory"
            )
        meta = read_json(path / MODEL_CONFIG, CheckpointError)
        if not isinstance(meta, dict) or meta.get("architecture") != cls.__name__:
            raise CheckpointError(f"{path / MODEL_CONFIG} does not describe a {cls.__name__}")
        config = config_from_dict(Mamba3JepaConfig, meta["config"])
        config.x_encoder = EncoderSpec.from_mapping(
            {"name": meta["config"]["x_encoder"]["name"], **meta["config"]["x_encoder"]["kwargs"]},
            "x_encoder",
        )
        tokenizer = load_tokenizer(path / meta["tokenizer"] if meta["tokenizer"] != "byte" else "byte")
        if x_encoder is None and meta.get("x_encoder"):
            from mambajepa.registry import load_pretrained

            x_encoder = load_pretrained(path / meta["x_encoder"])
        model = cls(config, tokenizer, x_encoder=x_encoder)
        state = load_state_dict(path / WEIGHTS)
        if x_encoder is None:
            warnings.warn(
                f"{path} holds no X-encoder: using a freshly initialised {config.x_encoder.name}",
                stacklevel=2,
            )
        state.update({f"x_encoder.{k}": v for k, v in model.x_encoder.state_dict().items()})
        load_mapped(model, state, source=str(path / WEIGHTS))
        return model.to(device).eval()

    def num_trainable_parameters(self) -> int:
        """Parameters VL training updates (the X-encoder's only with ``train_x_encoder``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
