"""The ``vljepa`` training method: Mamba3-JEPA in two stages on a frozen X-encoder.

Stage 1 (query-free captioning) predicts the embedding of an image's caption from the image alone;
stage 2 (supervised fine-tuning) predicts the embedding of an answer from the image and a question.
A recipe lists them as engine stages whose ``data`` overrides switch the task
(``{task: caption}``, then ``{task: mixed}``). Parameter groups follow VL-JEPA: predictor and
Y-decoder at the base learning rate, Y-encoder at ``y_encoder_lr_mult`` (0.05) of it, X-encoder
frozen (no optimizer group, stored once per run).

The X-encoder comes from ``x_encoder_weights``: a ``save_pretrained`` folder, a V-JEPA 2 file or
folder, or the run directory of a ``jepa`` pre-training (its EMA target encoder); without it the
preset starts from a random init (the baseline of every learning criterion).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from mambajepa.config import RunConfig, load_config
from mambajepa.core.checkpoint import load_checkpoint_weights
from mambajepa.core.errors import CheckpointError, ConfigError, DataError
from mambajepa.core.mapping import load_mapped
from mambajepa.data.tokenizers import ByteTokenizer, HFTokenizer, TextTokenizer, load_tokenizer
from mambajepa.methods.base import DataSpec, Method, ParamGroupSpec, ProbeData, held_out_means
from mambajepa.methods.vljepa.model import (
    Mamba3DecoderConfig,
    Mamba3Jepa,
    Mamba3JepaConfig,
    Mamba3PredictorConfig,
    Mamba3TextEncoderConfig,
    VLJEPAOutput,
)
from mambajepa.registry import register_method
from mambajepa.specs import DatasetSpec, EncoderSpec

__all__ = [
    "VLBatch",
    "VLCollate",
    "VLJEPA",
    "VLJEPAConfig",
    "load_x_encoder",
    "model_from_run",
    "normalize_answer",
]


# ----------------------------------------------------------------------------------------------
# config


@dataclass
class TokenizerConfig:
    """The text tokenizer shared by the query, the Y-encoder and the Y-decoder."""

    kind: str = "bpe"  # bpe: trained on the training texts; byte; or a tokenizer.json path
    vocab_size: int = 600  # BPE vocabulary (>= 260); the text models get exactly this many rows
    corpus_items: int = 4000  # training items whose captions, questions and answers train the BPE

    def validate(self) -> None:
        if self.kind == "bpe" and (self.vocab_size < 260 or self.corpus_items < 1):
            raise ConfigError(
                f"bpe needs vocab_size >= 260 and corpus_items >= 1, got {self.vocab_size}, {self.corpus_items}"
            )


@dataclass
class VLJEPALossConfig:
    """InfoNCE between predicted and target embeddings, plus the Y-decoder's cross-entropy."""

    temperature: float = 0.07  # tau
    learnable_temperature: bool = False  # learn tau
    decoder_weight: float = 1.0  # weight of the decoder's teacher-forced cross-entropy
    decoder_input: Literal["predicted", "target"] = "predicted"  # the detached embedding the decoder reads
    same_target_negatives: bool = True  # False: rows with the same target text are not each other's negatives

    def validate(self) -> None:
        if self.temperature <= 0 or self.decoder_weight < 0:
            raise ConfigError(
                f"need temperature > 0 and decoder_weight >= 0, got {self.temperature}, {self.decoder_weight}"
            )


@dataclass
class VLJEPAEvalConfig:
    """What ``mambajepa eval vljepa`` measures (sizes of the held-out sets, decoding)."""

    n_items: int = 256  # test items of zero-shot, retrieval and VQA
    n_streams: int = 20  # test streams of selective decoding
    prompts_per_class: int = 32  # generated captions averaged into each class embedding (prompt ensemble)
    max_tokens: int = 32  # longest decoded text
    batch_size: int = 64  # evaluation batch
    drift_window: int = 8  # SelectiveDecoder window_size
    drift_threshold: float = 0.5  # SelectiveDecoder drift_threshold
    drift_smoothing: float = 0.3  # SelectiveDecoder smoothing
    cut_tolerance: int = 2  # frames after a cut within which a decode counts as catching it
    uniform_every: int = 4  # frames between decodes of the uniform baseline

    def validate(self) -> None:
        if min(self.n_items, self.n_streams, self.prompts_per_class, self.max_tokens, self.batch_size) < 1:
            raise ConfigError(
                "eval sizes (n_items, n_streams, prompts_per_class, max_tokens, batch_size) must be >= 1"
            )


@dataclass
class VLJEPAConfig(RunConfig):
    """Run config of the ``vljepa`` method."""

    ALIASES: ClassVar[dict[str, str]] = {"x_encoder": "x_encoder.name", "image_size": "data.image_size"}

    method: str = "vljepa"
    x_encoder: EncoderSpec = field(
        default_factory=lambda: Mamba3JepaConfig().x_encoder
    )  # frozen vision encoder: a ViT / VideoMamba preset and any field of its config
    x_encoder_weights: str | None = (
        None  # pretrained folder, V-JEPA 2 file or jepa run dir; null: random init
    )
    predictor: Mamba3PredictorConfig = field(default_factory=Mamba3PredictorConfig)
    y_encoder: Mamba3TextEncoderConfig = field(
        default_factory=Mamba3TextEncoderConfig
    )  # vocab_size: tokenizer's
    y_decoder: Mamba3DecoderConfig = field(default_factory=Mamba3DecoderConfig)  # vocab_size: tokenizer's
    y_encoder_lr_mult: float = 0.05  # Y-encoder learning rate / base (VL-JEPA: 0.05)
    # X-encoder learning rate / base: 0 keeps it frozen (VL-JEPA); > 0 trains it, the ceiling a frozen
    # X-encoder is measured against (a variant, not the paper's method)
    x_encoder_lr_mult: float = 0.0
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    loss: VLJEPALossConfig = field(default_factory=VLJEPALossConfig)
    caption_query: Literal["empty", "fixed", "target"] = "empty"  # query of caption items (target: warns)
    fixed_query: str = "describe the picture"  # the query when caption_query is fixed
    data: DatasetSpec = field(
        default_factory=lambda: DatasetSpec("shapes_vl")
    )  # (image, query, target) data; stages switch its task
    eval: VLJEPAEvalConfig = field(default_factory=VLJEPAEvalConfig)

    def validate(self) -> None:
        if self.caption_query == "fixed" and not self.fixed_query.strip():
            raise ConfigError("caption_query=fixed needs a non-empty fixed_query")
        if self.x_encoder_lr_mult < 0:
            raise ConfigError(f"x_encoder_lr_mult={self.x_encoder_lr_mult} must be >= 0 (0: frozen)")


# ----------------------------------------------------------------------------------------------
# data


@dataclass
class VLBatch:
    """A collated batch: pixels and the tokenised query and target texts."""

    images: torch.Tensor  # (B, 3, [T,] H, W)
    query_ids: torch.Tensor  # (B, Lq)
    query_mask: torch.Tensor  # (B, Lq)
    target_ids: torch.Tensor  # (B, Lt)
    target_mask: torch.Tensor  # (B, Lt)
    queries: list[str]
    targets: list[str]

    def to(self, device: torch.device | str) -> VLBatch:
        tensors = {
            k: getattr(self, k).to(device)
            for k in ("images", "query_ids", "query_mask", "target_ids", "target_mask")
        }
        return VLBatch(**tensors, queries=self.queries, targets=self.targets)


def item_texts(item: dict[str, Any], caption_query: str = "empty", fixed_query: str = "") -> tuple[str, str]:
    """``(query, target)`` of a data item in any of the supported layouts.

    ``{"query", "target"}`` (ShapesWorld), ``{"question", "answer"}`` (VQA files) or ``{"caption"}``
    (image-text files). Caption items take the query that ``caption_query`` says.

    Raises:
        DataError: an item with none of those keys, or an empty target.
    """
    if "target" in item:
        query, target, is_caption = item.get("query", ""), item["target"], item.get("task") == "caption"
    elif "answer" in item and "question" in item:
        query, target, is_caption = item["question"], item["answer"], False
    elif "caption" in item:
        query, target, is_caption = "", item["caption"], True
    else:
        raise DataError(f"item with keys {sorted(item)} has no target text (target, answer or caption)")
    if not str(target).strip():
        raise DataError(f"item {item.get('index', '?')} has an empty target text {target!r}")
    if is_caption:
        query = {"empty": "", "fixed": fixed_query, "target": target}[caption_query]
    return str(query), str(target)


class VLCollate:
    """Stack pixels and tokenise (query, target) texts: ``collate(items, generator) -> VLBatch``.

    Args:
        tokenizer: the model's tokenizer.
        caption_query: query of caption items (``empty``, ``fixed``, ``target``).
        fixed_query: the fixed query.
        max_query_len: longest query the predictor accepts (a longer one raises).
    """

    def __init__(
        self, tokenizer: TextTokenizer, caption_query: str, fixed_query: str, max_query_len: int
    ) -> None:
        self.tokenizer = tokenizer
        self.caption_query, self.fixed_query = caption_query, fixed_query
        self.max_query_len = max_query_len

    def __call__(self, items: list[dict[str, Any]], generator: torch.Generator | None = None) -> VLBatch:
        key = "image" if "image" in items[0] else "video"
        if key not in items[0]:
            raise DataError(f"items have no 'image' or 'video' (keys: {sorted(items[0])})")
        texts = [item_texts(item, self.caption_query, self.fixed_query) for item in items]
        queries, targets = [q for q, _ in texts], [t for _, t in texts]
        try:
            q_ids, q_mask = self.tokenizer.batch_encode(
                queries, max_length=self.max_query_len, truncation=False
            )
        except ConfigError as err:
            raise DataError(
                f"a query is longer than the predictor's max_query_len={self.max_query_len}: {err}"
            ) from err
        t_ids, t_mask = self.tokenizer.batch_encode(targets)
        images = torch.stack([item[key] for item in items])
        return VLBatch(images, q_ids, q_mask, t_ids, t_mask, queries, targets)


def _corpus(dataset: Any, count: int) -> list[str]:
    """Texts of the first ``count`` items of a VL dataset: every caption, question and answer they hold."""
    if not hasattr(dataset, "__len__"):  # a stream (WebDataset shards): its first `count` items
        return [" ".join(item_texts(item)) for item in itertools.islice(dataset, count)]
    n = min(count, len(dataset))
    if hasattr(dataset, "corpus"):  # ShapesWorld: every text of a scene, whatever its task
        return [text for i in range(n) for text in dataset.corpus(i)]
    return [" ".join(item_texts(dataset[i])) for i in range(n)]


def build_tokenizer(config: TokenizerConfig, train_data: Any) -> TextTokenizer:
    """The run's tokenizer: bytes, a ``tokenizer.json`` file, or BPE trained on the training texts.

    BPE training is deterministic, so rebuilding a run from its config gives the same vocabulary.
    """
    if config.kind == "byte":
        return ByteTokenizer()
    if config.kind != "bpe":
        return load_tokenizer(config.kind)
    return HFTokenizer.train_bpe(_corpus(train_data, config.corpus_items), vocab_size=config.vocab_size)


def load_x_encoder(spec: EncoderSpec, weights: str | None) -> nn.Module:
    """Build the X-encoder preset and load ``weights`` into it.

    Args:
        spec: the preset and its fields.
        weights: a ``save_pretrained`` folder, a V-JEPA 2 ``.pt``/``.safetensors`` file or folder, the run
            directory of a ``jepa`` pre-training (its EMA target encoder), or None (random init).

    Raises:
        CheckpointError: missing files or weights that do not fit the preset.
    """
    encoder = spec.build()
    if weights is None:
        return encoder
    path = Path(weights)
    if not path.exists():
        raise CheckpointError(f"x_encoder_weights {path} does not exist")
    if path.is_dir() and (path / "config.yaml").is_file() and (path / "checkpoints").is_dir():
        run_config = load_config(path / "config.yaml")
        if run_config.method != "jepa":
            raise CheckpointError(f"{path} is a {run_config.method!r} run, expected a jepa pre-training run")
        state = load_checkpoint_weights(path)
        prefix = "target_encoder.target."
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        load_mapped(encoder, state, source=str(path))
        return encoder
    if path.is_dir() and (path / "config.json").is_file():
        from mambajepa.core.files import read_json

        if read_json(path / "config.json").get("model_type") != "vjepa2":
            from mambajepa.registry import load_pretrained

            loaded = load_pretrained(path)
            load_mapped(encoder, loaded.state_dict(), source=str(path))
            return encoder
    from mambajepa.io.vjepa2 import load_vjepa2

    loaded = load_vjepa2(path)
    load_mapped(encoder, loaded.state_dict(), source=str(path))
    return encoder


# ----------------------------------------------------------------------------------------------
# method


def model_config(config: VLJEPAConfig, vocab_size: int) -> Mamba3JepaConfig:
    """The :class:`Mamba3JepaConfig` of a run whose tokenizer has ``vocab_size`` ids."""
    y_enc = Mamba3TextEncoderConfig(**{**vars(config.y_encoder), "vocab_size": vocab_size})
    y_dec = Mamba3DecoderConfig(**{**vars(config.y_decoder), "vocab_size": vocab_size})
    return Mamba3JepaConfig(
        x_encoder=config.x_encoder,
        predictor=config.predictor,
        y_encoder=y_enc,
        y_decoder=y_dec,
        temperature=config.loss.temperature,
        learnable_temperature=config.loss.learnable_temperature,
        decoder_weight=config.loss.decoder_weight,
        decoder_input=config.loss.decoder_input,
        same_target_negatives=config.loss.same_target_negatives,
        train_x_encoder=config.x_encoder_lr_mult > 0,
    )


@register_method("vljepa")
class VLJEPA(Method):
    """Trains :class:`Mamba3Jepa` (``self.model``) with the engine's stages.

    Args:
        model: the model (its X-encoder already holds the pretrained weights).
        config: the run config.
    """

    config_cls = VLJEPAConfig
    loss_terms: ClassVar[tuple[str, ...]] = ("infonce", "decoder")

    def __init__(self, model: Mamba3Jepa, config: VLJEPAConfig) -> None:
        super().__init__()
        self.model = model
        self.y_encoder_lr_mult = config.y_encoder_lr_mult
        self.x_encoder_lr_mult = config.x_encoder_lr_mult
        self.caption_query, self.fixed_query = config.caption_query, config.fixed_query
        if config.caption_query == "target":
            warnings.warn(
                "caption_query=target shows the predictor the caption it must predict (the design input's "
                "code); VL-JEPA's stage 1 predicts it from the image alone (caption_query=empty)",
                stacklevel=2,
            )

    @classmethod
    def from_config(cls, config: VLJEPAConfig, load_weights: bool = True) -> VLJEPA:
        train = config.data.build("train")
        tokenizer = build_tokenizer(config.tokenizer, train)
        vocab = config.tokenizer.vocab_size if config.tokenizer.kind == "bpe" else tokenizer.vocab_size
        x_encoder = load_x_encoder(config.x_encoder, config.x_encoder_weights if load_weights else None)
        model = Mamba3Jepa(
            model_config(config, max(vocab, tokenizer.vocab_size)), tokenizer, x_encoder=x_encoder
        )
        return cls(model, config)

    def collate(self) -> VLCollate:
        return VLCollate(
            self.model.tokenizer,
            self.caption_query,
            self.fixed_query,
            self.model.config.predictor.max_query_len,
        )

    def build_data(self, config: VLJEPAConfig) -> DataSpec:
        return DataSpec(
            train=config.data.build("train"), val=config.data.build("val"), collate_fn=self.collate()
        )

    def probe_data(self, config: VLJEPAConfig) -> ProbeData:
        train, test = config.data.build("train"), config.data.build("test")
        if test is None:
            raise ConfigError(f"data: dataset {config.data.name!r} has no test items")
        labels = getattr(train, "visible_labels", None) or ("shape", "colour", "size", "position", "texture")
        return ProbeData(train=train, test=test, tasks=list(labels))

    def frozen_modules(self) -> dict[str, nn.Module]:
        return {} if self.model.config.train_x_encoder else {"model.x_encoder": self.model.x_encoder}

    def param_groups(self) -> list[ParamGroupSpec]:
        m = self.model
        groups = [
            ParamGroupSpec("predictor", m.predictor),
            ParamGroupSpec("y_encoder", m.y_encoder, lr_mult=self.y_encoder_lr_mult),
            ParamGroupSpec("y_decoder", m.y_decoder),
        ]
        if m.config.train_x_encoder:
            groups.append(ParamGroupSpec("x_encoder", m.x_encoder, lr_mult=self.x_encoder_lr_mult))
        if any(p.requires_grad for p in m.loss_fn.parameters()):
            groups.append(ParamGroupSpec("temperature", m.loss_fn))
        return groups

    def training_step(self, batch: VLBatch, step: int) -> VLJEPAOutput:
        w = self.loss_weights or {"infonce": 1.0, "decoder": 1.0}
        return self.model.train_forward(
            batch.images,
            batch.query_ids,
            batch.target_ids,
            batch.query_mask,
            batch.target_mask,
            infonce_weight=w["infonce"],
            decoder_weight=w["decoder"] * self.model.config.decoder_weight,
        )

    @torch.no_grad()
    def evaluate(self, batches: Iterable[VLBatch]) -> dict[str, float]:
        def metrics(batch) -> dict:
            out = self.training_step(batch, 0)
            return {k: out.metrics[k] for k in ("infonce", "decoder_ce", "batch_top1")}

        return held_out_means((b.images.shape[0], metrics(b)) for b in batches)

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        """Query-free predicted embeddings ``(B, Z)`` of images (what the probes read)."""
        return self.model.embed(batch)


def model_from_run(run_dir: str | Path, device: str | torch.device = "cpu") -> Mamba3Jepa:
    """The :class:`Mamba3Jepa` of a ``vljepa`` run: its config rebuilt, its latest valid checkpoint loaded.

    Raises:
        CheckpointError: a run of another method, or no valid checkpoint.
    """
    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    if not isinstance(config, VLJEPAConfig):
        raise CheckpointError(f"{run_dir} is a {config.method!r} run, not a vljepa run")
    method = VLJEPA.from_config(config, load_weights=False)
    load_mapped(method, load_checkpoint_weights(run_dir), source=str(run_dir))
    return method.model.to(device).eval()


def normalize_answer(text: str) -> str:
    """An answer as exact match compares it: lower case, whitespace collapsed."""
    return " ".join(str(text).lower().split())
