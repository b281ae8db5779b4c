"""JEPA pre-training of image and video encoders (I-JEPA, V-JEPA) by masked latent prediction.

Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture" (I-JEPA, CVPR 2023) and Bardes et al., "Revisiting Feature Prediction for Learning
Visual Representations from Video" (V-JEPA, 2024). One training step:

1. the EMA *target encoder* reads the full input; its layer-normed tokens are the targets
   (no gradient);
2. the *context encoder* reads only the visible tokens of each mask (strict: hidden pixels
   cannot reach it);
3. the *predictor* predicts the target tokens from the context tokens, given the targets'
   grid positions and one learned mask token per mask generator;
4. the loss is an energy between predictions and targets plus a weighted regularizer
   (VICReg or Barlow Twins between the context encoder's tokens and the full view of the same
   tokens, which keeps the embeddings from collapsing);
5. after the optimizer step the target encoder moves towards the context encoder (EMA).

The backbone is any registered encoder preset with ``forward(x, keep_indices)`` and
``grid_size(shape)`` (the ViT, or VideoMamba); the predictor is a narrow transformer or a
bidirectional Mamba-3 stack.

Dimension legend: ``B`` batch, ``N`` tokens of the full input, ``Kc`` context tokens, ``Kt``
target tokens, ``D`` encoder width, ``(gt, gh, gw)`` token grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.config import RunConfig
from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.data.shapes_render import ShapesConfig
from mambajepa.data.synthetic import ShapesImages, ShapesVideos
from mambajepa.losses import barlow_twins_loss, energy, vicreg_loss
from mambajepa.masks import (
    BatchMasks,
    DuplicateIndex,
    EmptyContext,
    EmptyTarget,
    IndexOutOfBounds,
    MaskCollator,
    MaskedBatch,
    MaskError,
    MaskStrategy,
    MultiBlock2D,
    MultiBlock3D,
    OverlappingMasks,
    RandomTube,
    apply_masks,
    vjepa_mask_generators,
)
from mambajepa.methods.base import DataSpec, Method, ParamGroupSpec, TrainOutput
from mambajepa.nn.ema import EMA
from mambajepa.predictors import PredictorConfig, build_predictor
from mambajepa.registry import create_model, register_method

__all__ = [
    "JEPA",
    "JEPAConfig",
    "JEPADataConfig",
    "JEPAEMAConfig",
    "JEPAEncoderConfig",
    "JEPALossConfig",
    "JEPAMaskConfig",
    "JEPAOutput",
    "JEPAProbeConfig",
    "check_batch_masks",
]


# ----------------------------------------------------------------------------------------------
# config


@dataclass
class JEPAEncoderConfig:
    """The backbone: a registered encoder preset and overrides of its architecture (None keeps the preset's)."""

    name: str = "vit_tiny_patch4"  # registered preset (mambajepa info lists them): a ViT or a VideoMamba
    img_size: int | None = None  # training image side in pixels
    num_frames: int | None = None  # training frames per clip
    patch_size: int | None = None  # spatial patch side
    tubelet_size: int | None = None  # frames per tubelet
    embed_dim: int | None = None  # token width D
    depth: int | None = None  # number of blocks
    num_heads: int | None = None  # attention heads (ViT)
    mlp_ratio: float | None = None  # MLP inner width / D (ViT)
    pos_embed: str | None = None  # ViT position encoding: rope | sincos | learned | none
    drop_path_rate: float | None = None  # stochastic depth
    init_std: float | None = None  # std of the weight initialisation (ViT)

    def overrides(self) -> dict[str, Any]:
        """The architecture fields that are set, as keyword overrides of the preset."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "name" and getattr(self, f.name) is not None
        }


@dataclass
class JEPADataConfig:
    """What the encoder is pre-trained on."""

    dataset: Literal["shapes_images", "shapes_videos", "cifar10", "video_folder"] = "shapes_images"
    root: str | None = None  # cifar10: folder or archive; video_folder: folder of training videos
    val_root: str | None = None  # video_folder: folder of held-out videos (probe evaluation)
    image_size: int = 32  # image / frame side in pixels
    num_frames: int = 8  # frames per clip (videos)
    frame_stride: int = 2  # frame step inside a clip (video files)
    n_train: int = 20_000  # ShapesWorld training items
    n_val: int = 512  # ShapesWorld held-out items for the periodic evaluation
    seed: int = 0  # ShapesWorld world seed
    max_objects: int = 1  # ShapesWorld objects per scene
    augment: bool = False  # random resized crop + flip on training images (cifar10)
    normalize: bool = False  # ImageNet mean/std normalisation of the pixels

    @property
    def is_video(self) -> bool:
        """Whether the items are clips ``(C, T, H, W)`` rather than images."""
        return self.dataset in ("shapes_videos", "video_folder")

    def validate(self) -> None:
        if self.dataset in ("cifar10", "video_folder") and not self.root:
            raise ConfigError(f"dataset={self.dataset!r} needs root (a folder or archive on disk)")
        if self.image_size < 8 or self.num_frames < 1 or self.frame_stride < 1:
            raise ConfigError(
                f"need image_size >= 8, num_frames >= 1, frame_stride >= 1; got {self.image_size}, "
                f"{self.num_frames}, {self.frame_stride}"
            )
        if self.n_train < 1 or self.n_val < 0:
            raise ConfigError(f"need n_train >= 1 and n_val >= 0, got {self.n_train}, {self.n_val}")


@dataclass
class JEPAMaskConfig:
    """How context and targets are drawn."""

    kind: Literal["multiblock2d", "multiblock3d", "vjepa", "tube"] = (
        "multiblock2d"  # vjepa: short + long range
    )
    num_targets: int = 4  # target blocks (multiblock2d / multiblock3d)
    target_scale: tuple[float, float] = (0.15, 0.2)  # area fraction of each target block
    target_aspect: tuple[float, float] = (0.75, 1.5)  # h / w of each target block
    context_scale: tuple[float, float] = (0.85, 1.0)  # area fraction of the context block (multiblock2d)
    tube_ratio: float = 0.9  # hidden fraction of the positions (tube)
    min_keep: int = 4  # fewest context tokens of a mask
    predict_blocks: bool = True  # predict each target block on its own (I-JEPA) rather than their union

    @property
    def num_generators(self) -> int:
        """Mask generators per sample (one mask token each)."""
        return 2 if self.kind == "vjepa" else 1

    def validate(self) -> None:
        if self.num_targets < 1 or self.min_keep < 1:
            raise ConfigError(
                f"need num_targets >= 1 and min_keep >= 1, got {self.num_targets}, {self.min_keep}"
            )


@dataclass
class JEPALossConfig:
    """Energy between predicted and target tokens, plus an optional regularizer."""

    energy: Literal["l2", "l1", "smooth_l1", "cosine"] = "l2"  # I-JEPA: l2; V-JEPA: l1
    beta: float = 1.0  # smooth-L1 threshold
    regularizer: Literal["none", "vicreg", "barlow_twins"] = "none"  # context vs full-input embeddings
    reg_weight: float = 0.0  # weight of the regularizer in the loss
    reg_on: Literal["tokens", "pooled"] = "tokens"  # per visible token, or the per-sample token mean

    def validate(self) -> None:
        if self.reg_weight < 0:
            raise ConfigError(f"reg_weight={self.reg_weight} must be >= 0")
        if self.reg_weight > 0 and self.regularizer == "none":
            raise ConfigError(
                f"reg_weight={self.reg_weight} > 0 needs a regularizer (vicreg or barlow_twins)"
            )


@dataclass
class JEPAEMAConfig:
    """Momentum schedule of the target encoder."""

    start: float = 0.996  # momentum at step 0
    end: float = 1.0  # momentum at the last step
    kind: Literal["linear", "cosine", "constant"] = "linear"  # shape of the schedule

    def validate(self) -> None:
        if not (0.0 <= self.start <= 1.0 and 0.0 <= self.end <= 1.0):
            raise ConfigError(f"EMA momenta must lie in [0, 1], got start={self.start}, end={self.end}")


@dataclass
class JEPAProbeConfig:
    """Frozen-feature evaluation run by ``mambajepa eval probe``."""

    encoder: Literal["target", "context"] = "target"  # which encoder's features are probed
    n_train: int = 2000  # items the probes are fitted on (training split)
    n_eval: int = 1000  # held-out items the probes are scored on
    tasks: list[str] = field(default_factory=list)  # labels to probe; empty: every label the data shows
    batch_size: int = 128  # feature extraction batch
    linear_steps: int = 100  # L-BFGS iterations of the linear probe
    linear_weight_decay: float = 1e-4  # L2 penalty of the linear probe
    knn_k: int = 20  # neighbours of the kNN classifier
    attentive: bool = True  # also fit an attentive probe on the token features
    attentive_steps: int = 150  # AdamW steps of the attentive probe
    attentive_lr: float = 3e-3  # learning rate of the attentive probe
    seed: int = 0  # seeds probe initialisation and mini-batches

    def validate(self) -> None:
        if self.n_train < 2 or self.n_eval < 1 or self.batch_size < 1 or self.knn_k < 1:
            raise ConfigError(
                f"need n_train >= 2, n_eval >= 1, batch_size >= 1, knn_k >= 1; got {self.n_train}, "
                f"{self.n_eval}, {self.batch_size}, {self.knn_k}"
            )


@dataclass
class JEPAConfig(RunConfig):
    """Run config of the ``jepa`` method (I-JEPA on images, V-JEPA on videos)."""

    ALIASES: ClassVar[dict[str, str]] = {
        "encoder": "encoder.name",
        "predictor": "predictor.kind",
        "mask": "mask.kind",
        "image_size": "data.image_size",
        "energy": "loss.energy",
    }

    method: str = "jepa"
    encoder: JEPAEncoderConfig = field(
        default_factory=JEPAEncoderConfig
    )  # context encoder (and its EMA copy)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)  # mask-token predictor
    data: JEPADataConfig = field(default_factory=JEPADataConfig)  # pre-training data
    mask: JEPAMaskConfig = field(default_factory=JEPAMaskConfig)  # context / target masks
    loss: JEPALossConfig = field(default_factory=JEPALossConfig)  # energy and regularizer
    ema: JEPAEMAConfig = field(default_factory=JEPAEMAConfig)  # target-encoder momentum
    probe: JEPAProbeConfig = field(default_factory=JEPAProbeConfig)  # frozen-feature evaluation


# ----------------------------------------------------------------------------------------------
# output and mask checks


@dataclass
class JEPAOutput(TrainOutput):
    """Result of a JEPA step.

    Attributes:
        energy: 0-d mean energy over the predicted token sets.
        regularization: 0-d unweighted regularizer (0 when none).
        predicted: ``(M, D)`` every predicted target token of the step.
        target: ``(M, D)`` the matching target tokens (no gradient).
    """

    energy: torch.Tensor | None = None
    regularization: torch.Tensor | None = None
    predicted: torch.Tensor | None = None
    target: torch.Tensor | None = None


def _check_indices(
    name: str, ids: torch.Tensor, batch: int, total: int, empty_error: type[MaskError]
) -> None:
    if ids.dim() != 2 or ids.shape[0] != batch or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise MaskError(
            f"{name} must be integer indices (B={batch}, K), got {ids.dtype} of shape {tuple(ids.shape)}"
        )
    if ids.shape[1] == 0:
        raise empty_error(f"{name} is empty (total_tokens={total})")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= total:
        raise IndexOutOfBounds(f"{name} spans [{low}, {high}], outside [0, {total}) for total_tokens={total}")
    ordered = ids.sort(dim=1).values  # (B, K)
    repeated = ordered[:, 1:] == ordered[:, :-1]  # (B, K-1)
    if repeated.any():
        row = int(repeated.any(dim=1).nonzero()[0])
        value = int(ordered[row, 1:][repeated[row]][0])
        raise DuplicateIndex(f"{name} of sample {row} repeats index {value}; each token may appear once")


def check_batch_masks(masks: list[BatchMasks], batch: int, total_tokens: int, num_generators: int) -> None:
    """Check a batch's masks against its input before any encoder runs.

    Args:
        masks: one :class:`~mambajepa.masks.BatchMasks` per mask generator.
        batch: batch size B of the input.
        total_tokens: tokens N of the input's grid.
        num_generators: mask generators the predictor has a mask token for.

    Raises:
        MaskError: wrong number of mask sets, or masks over another token count.
        EmptyContext: a context with no index.
        EmptyTarget: a target with no index.
        IndexOutOfBounds: an index outside ``[0, N)``.
        DuplicateIndex: an index repeated within one sample's context or target.
        OverlappingMasks: a token of one sample both in its context and in its target.
    """
    if len(masks) != num_generators:
        raise MaskError(
            f"got {len(masks)} mask sets for a model trained with {num_generators} mask generator(s)"
        )
    for g, m in enumerate(masks):
        if m.total_tokens != total_tokens:
            raise MaskError(f"masks[{g}] index {m.total_tokens} tokens but the input has {total_tokens}")
        _check_indices(f"masks[{g}].context", m.context, batch, total_tokens, EmptyContext)
        targets = [("target", m.target)] + [(f"target_blocks[{i}]", b) for i, b in enumerate(m.target_blocks)]
        for name, ids in targets:
            _check_indices(f"masks[{g}].{name}", ids, batch, total_tokens, EmptyTarget)
            overlap = (m.context.unsqueeze(2) == ids.unsqueeze(1)).any(dim=2)  # (B, Kc)
            if overlap.any():
                row = int(overlap.any(dim=1).nonzero()[0])
                shared = m.context[row][overlap[row]].tolist()[:8]
                raise OverlappingMasks(
                    f"masks[{g}]: indices {shared} of sample {row} are in both the context and {name}; "
                    "they must be disjoint"
                )


# ----------------------------------------------------------------------------------------------
# method


def _layer_norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:])


def _group_by_length(sets: list[torch.Tensor]) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for i, ids in enumerate(sets):
        groups.setdefault(ids.shape[1], []).append(i)
    return list(groups.values())


@register_method("jepa")
class JEPA(Method):
    """Context encoder, EMA target encoder and predictor trained by masked latent prediction.

    Args:
        encoder: online (context) encoder with ``forward(x, keep_indices)`` and ``grid_size(shape)``.
        predictor: mask-token predictor over the encoder's width.
        mask: mask configuration (number of generators, block vs union targets).
        loss: energy and regularizer.
        ema: target momentum schedule.
        max_steps: optimizer updates of the run (the momentum schedule's length).
        input_shape: shape of one item (``(C, H, W)`` or ``(C, T, H, W)``), fixing the token grid.

    Raises:
        ConfigError: an encoder without the strict masked-encoding interface.
    """

    config_cls = JEPAConfig

    def __init__(
        self,
        encoder: nn.Module,
        predictor: nn.Module,
        mask: JEPAMaskConfig,
        loss: JEPALossConfig,
        ema: JEPAEMAConfig,
        max_steps: int,
        input_shape: tuple[int, ...],
    ) -> None:
        super().__init__()
        if not hasattr(encoder, "grid_size") or not hasattr(encoder, "embed_dim"):
            raise ConfigError(
                f"{type(encoder).__name__} cannot back a JEPA: it needs grid_size(shape), embed_dim and "
                "forward(x, keep_indices)"
            )
        self.encoder = encoder
        self.predictor = predictor
        self.target_encoder = EMA(encoder, ema.start, ema.end, max_steps, ema.kind)
        self.mask_cfg = mask
        self.loss_cfg = loss
        self.input_shape = tuple(input_shape)
        self.grid: tuple[int, int, int] = tuple(encoder.grid_size((1, *self.input_shape)))
        self.num_tokens = self.grid[0] * self.grid[1] * self.grid[2]
        self.last_momentum = ema.start

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: JEPAConfig) -> JEPA:
        d = config.data
        encoder = create_model(config.encoder.name, **config.encoder.overrides())
        input_shape = (
            (3, d.num_frames, d.image_size, d.image_size) if d.is_video else (3, d.image_size, d.image_size)
        )
        predictor = build_predictor(config.predictor, encoder.embed_dim, config.mask.num_generators)
        return cls(
            encoder, predictor, config.mask, config.loss, config.ema, config.train.max_steps, input_shape
        )

    def mask_strategies(self) -> list[MaskStrategy]:
        """The mask generators of this model's token grid."""
        m, (gt, gh, gw) = self.mask_cfg, self.grid
        if m.kind == "multiblock2d":
            if gt != 1:
                raise ConfigError(
                    f"mask.kind='multiblock2d' needs one temporal token, the grid is {self.grid}"
                )
            return [
                MultiBlock2D(
                    (gh, gw),
                    m.num_targets,
                    m.target_scale,
                    m.target_aspect,
                    m.context_scale,
                    min_keep=m.min_keep,
                )
            ]
        if m.kind == "multiblock3d":
            return [
                MultiBlock3D(
                    self.grid, m.num_targets, m.target_scale, aspect=m.target_aspect, min_keep=m.min_keep
                )
            ]
        if m.kind == "vjepa":
            return list(vjepa_mask_generators(self.grid, min_keep=m.min_keep))
        return [RandomTube(self.grid, m.tube_ratio)]

    def build_data(self, config: JEPAConfig) -> DataSpec:
        train = build_dataset(config.data, "train", config.data.n_train)
        val = build_dataset(config.data, "val", config.data.n_val) if config.data.n_val else None
        return DataSpec(train=train, val=val, collate_fn=MaskCollator(self.mask_strategies()))

    def param_groups(self) -> list[ParamGroupSpec]:
        return [ParamGroupSpec("encoder", self.encoder), ParamGroupSpec("predictor", self.predictor)]

    # -- the step --------------------------------------------------------------------------

    def target_sets(self, masks: BatchMasks) -> list[torch.Tensor]:
        """The ``(B, Kt)`` index sets predicted for one mask: each target block, or the union."""
        if self.mask_cfg.predict_blocks and masks.target_blocks:
            return list(masks.target_blocks)
        return [masks.target]

    def check_masks(self, batch: MaskedBatch) -> None:
        """Raise the typed :class:`~mambajepa.masks.MaskError` of the first problem of ``batch.masks``."""
        total = self.encoder_tokens(batch.inputs)
        check_batch_masks(batch.masks, batch.inputs.shape[0], total, self.predictor.num_mask_tokens)

    def encoder_tokens(self, x: torch.Tensor) -> int:
        """Tokens N of the encoder's grid for input ``x``."""
        gt, gh, gw = self.encoder.grid_size(x.shape)
        return gt * gh * gw

    def try_training_step(self, batch: MaskedBatch, step: int = 0) -> JEPAOutput | MaskError:
        """A training step that returns the typed mask error instead of raising it.

        Args:
            batch: inputs and masks from the collator.
            step: optimizer step (unused by the loss; kept for the method contract).

        Returns:
            The step's output, or the :class:`~mambajepa.masks.MaskError` that the masks raise.
        """
        try:
            self.check_masks(batch)
        except MaskError as err:
            return err
        return self._step(batch)

    def training_step(self, batch: MaskedBatch, step: int) -> JEPAOutput:
        """Forward pass and loss of one batch.

        Raises:
            MaskError: the batch's masks cannot drive a strict step (see :func:`check_batch_masks`).
        """
        out = self.try_training_step(batch, step)
        if isinstance(out, MaskError):
            raise out
        return out

    def _step(self, batch: MaskedBatch) -> JEPAOutput:
        x = batch.inputs
        grid = tuple(self.encoder.grid_size(x.shape))

        # 1. targets: the EMA encoder on the full input, layer-normed, without gradient
        with torch.no_grad():
            h = _layer_norm(self.target_encoder(x).float())  # (B, N, D)

        predicted, targets, context_views, full_views = [], [], [], []
        for g, masks in enumerate(batch.masks):
            # 2. context: the online encoder sees the visible tokens only
            z = self.encoder(x, keep_indices=masks.context)  # (B, Kc, D)
            context_views.append(z)
            full_views.append(apply_masks(h, masks.context))  # (B, Kc, D): same tokens, full view
            # 3. prediction of every target set (sets of equal size share one predictor call)
            sets = self.target_sets(masks)
            for group in _group_by_length(sets):
                ids = torch.cat([sets[i] for i in group])  # (S*B, Kt)
                reps = len(group)
                pred = self.predictor(z.repeat(reps, 1, 1), masks.context.repeat(reps, 1), ids, grid, g)
                predicted.append(pred)  # (S*B, Kt, D)
                targets.append(apply_masks(h.repeat(reps, 1, 1), ids))  # (S*B, Kt, D)

        # 4. loss: energy over all predicted tokens plus the weighted regularizer
        pred_tokens = torch.cat([p.reshape(-1, p.shape[-1]) for p in predicted]).float()  # (M, D)
        target_tokens = torch.cat([t.reshape(-1, t.shape[-1]) for t in targets])  # (M, D)
        cfg = self.loss_cfg
        e = energy(pred_tokens, target_tokens, cfg.energy, cfg.beta)
        reg = self._regularizer(context_views, full_views)
        loss = e + cfg.reg_weight * reg if cfg.reg_weight > 0 else e
        metrics = {
            "energy": e.detach(),
            "regularization": reg.detach(),
            "pred_std": pred_tokens.detach().std(dim=0).mean(),
            "target_std": target_tokens.std(dim=0).mean(),
            "context_tokens": float(batch.masks[0].context.shape[1]),
            "ema_momentum": self.last_momentum,
        }
        return JEPAOutput(
            loss=loss,
            metrics=metrics,
            energy=e,
            regularization=reg,
            predicted=pred_tokens,
            target=target_tokens,
        )

    def _regularizer(self, context: list[torch.Tensor], full: list[torch.Tensor]) -> torch.Tensor:
        """Collapse regularizer between the context encoder's tokens and the full view of the same tokens.

        Args:
            context: per mask, ``(B, Kc, D)`` context-encoder tokens (with gradient).
            full: per mask, ``(B, Kc, D)`` layer-normed target-encoder tokens at the same positions.

        Returns:
            0-d VICReg or Barlow Twins loss over the visible tokens (``reg_on="tokens"``) or over
            the per-sample token means (``"pooled"``); 0 without a regularizer. The
            variance/covariance (or redundancy) terms keep the embeddings spread out.
        """
        kind = self.loss_cfg.regularizer
        if kind == "none":
            return context[0].new_zeros(())
        if self.loss_cfg.reg_on == "pooled":
            context = torch.cat([z.mean(dim=1) for z in context]).float()  # (G*B, D)
            full = torch.cat([f.mean(dim=1) for f in full])  # (G*B, D)
        else:
            context = torch.cat([z.reshape(-1, z.shape[-1]) for z in context]).float()  # (G*B*Kc, D)
            full = torch.cat([f.reshape(-1, f.shape[-1]) for f in full])  # (G*B*Kc, D)
        if kind == "vicreg":
            return vicreg_loss(context, full)
        return barlow_twins_loss(context, full)

    # 5. EMA update of the target encoder, after the optimizer step
    def after_optimizer_step(self, step: int, max_steps: int) -> None:
        self.last_momentum = self.target_encoder.update(self.encoder, step)

    # -- evaluation and features ---------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, batches: Iterable[MaskedBatch]) -> dict[str, float]:
        loss, energy_sum, count = 0.0, 0.0, 0
        for batch in batches:
            out = self.training_step(batch, 0)
            n = batch.inputs.shape[0]
            loss += float(out.loss) * n
            energy_sum += float(out.energy) * n
            count += n
        return {"val/loss": loss / count, "val/energy": energy_sum / count} if count else {}

    def features(self, x: torch.Tensor, which: Literal["target", "context"] = "target") -> torch.Tensor:
        """Token features of the full input for downstream probes.

        Args:
            x: ``(B, C, H, W)`` or ``(B, C, T, H, W)``.
            which: the EMA target encoder (I-JEPA's evaluation choice) or the context encoder.

        Returns:
            ``(B, N, D)`` encoder output.

        Raises:
            ShapeError: an input whose shape the encoder cannot tokenise.
        """
        if x.dim() != len(self.input_shape) + 1:
            raise ShapeError(
                f"expected inputs of shape (B, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}"
            )
        encoder = self.target_encoder.target if which == "target" else self.encoder
        return encoder(x)


# ----------------------------------------------------------------------------------------------
# data


def build_dataset(data: JEPADataConfig, split: Literal["train", "val", "test"], num_items: int) -> Any:
    """The dataset of ``data`` for ``split``.

    ShapesWorld has three disjoint splits; CIFAR-10 maps ``val`` and ``test`` to its test set;
    video folders map them to ``data.val_root`` (or the training folder when it is unset).

    Args:
        data: the data section of the config.
        split: ``train``, ``val`` or ``test``.
        num_items: ShapesWorld items (ignored by on-disk data sets).

    Returns:
        A map-style dataset.

    Raises:
        DataError: on-disk data that cannot be found or read.
    """
    from mambajepa.data.transforms import Normalize, build_transform

    if data.dataset in ("shapes_images", "shapes_videos"):
        world = ShapesConfig(max_objects=data.max_objects)
        normalize = Normalize() if data.normalize else None
        if data.dataset == "shapes_videos":
            return ShapesVideos(
                split, data.image_size, num_items, data.seed, world, normalize, num_frames=data.num_frames
            )
        return ShapesImages(split, data.image_size, num_items, data.seed, world, normalize)

    train = split == "train"
    if data.dataset == "cifar10":
        from mambajepa.data.cifar10 import CIFAR10

        transform = build_transform(
            data.image_size, train and data.augment, data.normalize, crop_fraction=1.0
        )
        return CIFAR10(data.root, "train" if train else "test", transform=transform)
    from mambajepa.data.video import VideoClips

    folder = data.root if train or not data.val_root else data.val_root
    return VideoClips(
        folder,
        num_frames=data.num_frames,
        stride=data.frame_stride,
        size=data.image_size,
        random_start=train,
        seed=data.seed,
        transform=Normalize() if data.normalize else None,
    )
