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
bidirectional Mamba-3 stack; the data are any registered image or video dataset
(:mod:`mambajepa.data.datasets`). Masks are validated by the collator that draws them.

Dimension legend: ``B`` batch, ``N`` tokens of the full input, ``Kc`` context tokens, ``Kt``
target tokens, ``D`` encoder width, ``(gt, gh, gw)`` token grid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.config import RunConfig
from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.losses import barlow_twins_loss, energy, vicreg_loss
from mambajepa.masks import (
    BatchMasks,
    MaskCollator,
    MaskedBatch,
    MaskError,
    MaskStrategy,
    MultiBlock2D,
    MultiBlock3D,
    RandomTube,
    apply_masks,
    check_batch_masks,
    vjepa_mask_generators,
)
from mambajepa.methods.base import DataSpec, Method, ParamGroupSpec, ProbeConfig, ProbeData, TrainOutput
from mambajepa.nn.ema import EMA
from mambajepa.predictors import PredictorConfig, build_predictor
from mambajepa.registry import register_method
from mambajepa.specs import DatasetSpec, EncoderSpec

__all__ = [
    "JEPA",
    "JEPAConfig",
    "JEPAEMAConfig",
    "JEPALossConfig",
    "JEPAMaskConfig",
    "JEPAOutput",
    "JEPAProbeConfig",
    "check_batch_masks",
    "item_shape",
]


# ----------------------------------------------------------------------------------------------
# config


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
class JEPAProbeConfig(ProbeConfig):
    """Frozen-feature evaluation run by ``mambajepa eval probe``: which encoder, and the probes."""

    encoder: Literal["target", "context"] = "target"  # which encoder's features are probed


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
    encoder: EncoderSpec = field(
        default_factory=lambda: EncoderSpec("vit_tiny_patch4")
    )  # context encoder (and its EMA copy): a ViT or VideoMamba preset and any field of its config
    predictor: PredictorConfig = field(default_factory=PredictorConfig)  # mask-token predictor
    data: DatasetSpec = field(
        default_factory=lambda: DatasetSpec("shapes_images")
    )  # pre-training data: a registered image or video dataset and its arguments
    mask: JEPAMaskConfig = field(default_factory=JEPAMaskConfig)  # context / target masks
    loss: JEPALossConfig = field(default_factory=JEPALossConfig)  # energy and regularizer
    ema: JEPAEMAConfig = field(default_factory=JEPAEMAConfig)  # target-encoder momentum
    probe: JEPAProbeConfig = field(default_factory=JEPAProbeConfig)  # frozen-feature evaluation
    debug: bool = False  # re-check every batch's masks in training_step (reads indices back to the host)


def item_shape(data: DatasetSpec) -> tuple[int, ...]:
    """Shape of one item of an image or video dataset, from its arguments.

    Image and video datasets take ``image_size``; clip datasets also take ``num_frames``.

    Returns:
        ``(3, H, W)`` or ``(3, T, H, W)``.

    Raises:
        ConfigError: a dataset that takes no ``image_size`` (not an image or video dataset).
    """
    args = data.arguments()
    if "image_size" not in args:
        raise ConfigError(
            f"data.name: dataset {data.name!r} takes no image_size; a JEPA trains on image or video datasets"
        )
    size, frames = args["image_size"], args.get("num_frames")
    return (3, size, size) if frames is None else (3, frames, size, size)


# ----------------------------------------------------------------------------------------------
# output


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
        debug: re-check every batch's masks in :meth:`training_step` (the collator already
            validates the masks it draws; this reads the indices back to the host each step).
        feature_encoder: the encoder whose features :meth:`encode` returns (``target``: the EMA
            copy, I-JEPA's evaluation choice; or ``context``).

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
        debug: bool = False,
        feature_encoder: Literal["target", "context"] = "target",
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
        self.debug = debug
        self.feature_encoder = feature_encoder

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: JEPAConfig) -> JEPA:
        encoder = config.encoder.build()
        predictor = build_predictor(config.predictor, encoder.embed_dim, config.mask.num_generators)
        return cls(
            encoder,
            predictor,
            config.mask,
            config.loss,
            config.ema,
            config.planned_steps() or config.train.max_steps,
            item_shape(config.data),
            debug=config.debug,
            feature_encoder=config.probe.encoder,
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
        # the collator validates every mask it draws, on the CPU in the data-loader workers
        collate = MaskCollator(self.mask_strategies(), validate=True)
        return DataSpec(train=config.data.build("train"), val=config.data.build("val"), collate_fn=collate)

    def probe_data(self, config: JEPAConfig) -> ProbeData:
        """The training split against the test split, on the labels the inputs show."""
        train, test = config.data.build("train"), config.data.build("test")
        if test is None:
            raise ConfigError(f"data: dataset {config.data.name!r} has no test items to score probes on")
        tasks = getattr(train, "visible_labels", None)
        return ProbeData(train=train, test=test, tasks=list(tasks) if tasks is not None else None)

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
        """A training step that checks the masks first and returns their typed error instead of raising it.

        The check runs whatever ``debug`` says: this is the entry point for batches whose masks
        did not come from the collator.

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

        The collator validated the masks when it drew them; with ``debug`` they are checked
        again against the input here (see :func:`~mambajepa.masks.check_batch_masks`).

        Raises:
            MaskError: with ``debug``, masks that cannot drive a strict step.
        """
        if self.debug:
            self.check_masks(batch)
        return self._step(batch)

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

    def encode(self, batch: torch.Tensor | MaskedBatch) -> torch.Tensor:
        """Token features ``(B, N, D)`` of the full inputs from :attr:`feature_encoder` (what probes read).

        Args:
            batch: ``(B, C, H, W)`` / ``(B, C, T, H, W)`` inputs, or a :class:`MaskedBatch` (its
                masks are ignored).
        """
        x = batch.inputs if isinstance(batch, MaskedBatch) else batch
        return self.features(x, self.feature_encoder)
