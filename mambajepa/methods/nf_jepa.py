"""NF-JEPA: JEPA training of a neural-field set encoder on sparse pixel observations.

An ``S x S`` image is ``S²`` (coordinate, RGB) pairs. One training step:

1. draw, per image, a *context* set of ``obs_frac`` of the pixels and a disjoint *target* set of
   ``target_frac`` of them, each sorted in scan order (raster by default: the Mamba scan reads
   pixels in that order);
2. the EMA *target encoder* encodes all pixels; its tokens at the target pixels, layer-normed
   without affine parameters, are the targets (no gradient);
3. the online encoder encodes the context pixels -> tokens and ``z_global`` (their mean);
4. the :class:`~mambajepa.predictors.coord.CoordPredictor` predicts the targets at the target
   coordinates from the context (``cross_attn``) or from ``z_global`` alone (``pool``);
5. loss = JEPA loss (MSE or ``1 - cos``) + ``recon_weight`` x MSE of the
   :class:`~mambajepa.predictors.coord.INRDecoder`'s reconstruction of every pixel from
   ``z_global``. With ``recon_weight = 0`` the encoder is trained by the JEPA loss alone; the
   decoder still learns on the detached code (``monitor_decoder``) so that reconstructions
   can be measured;
6. after the optimizer step the target encoder moves towards the online one (EMA).

Dimension legend: ``B`` batch, ``N = S²`` pixels, ``Kc`` context pixels, ``Kt`` target pixels,
``D`` encoder width.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from mambajepa.config import RunConfig
from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.encoders.field import pixel_grid
from mambajepa.masks import split_sample
from mambajepa.methods.base import (
    DataSpec,
    Method,
    ParamGroupSpec,
    ProbeConfig,
    ProbeData,
    TrainOutput,
    held_out_means,
)
from mambajepa.methods.jepa import JEPAEMAConfig
from mambajepa.nn.ema import EMA
from mambajepa.predictors.coord import CoordPredictor, CoordPredictorConfig, INRDecoder, INRDecoderConfig
from mambajepa.registry import register_method
from mambajepa.specs import DatasetSpec, EncoderSpec

__all__ = [
    "NFBatch",
    "NFCollator",
    "NFJEPA",
    "NFJEPAConfig",
    "NFLossConfig",
    "NFMaskConfig",
    "NFProbeConfig",
    "fraction_count",
    "sample_disjoint_sets",
    "scan_rank",
]

SCAN_ORDERS = ("raster", "snake")


# ----------------------------------------------------------------------------------------------
# config


def _check_fraction(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 < value <= 1.0):
        raise ConfigError(f"{name}={value!r} must lie in (0, 1]")


@dataclass
class NFMaskConfig:
    """Which pixels the online encoder sees and which it predicts."""

    obs_frac: float = 0.1  # fraction of the pixels in the context (0.1 of 1024 ~ 102)
    target_frac: float = 0.2  # fraction of the pixels predicted, disjoint from the context
    scan_order: Literal["raster", "snake"] = "raster"  # pixel order of every sequence (snake: rows alternate)

    def validate(self) -> None:
        _check_fraction("mask.obs_frac", self.obs_frac)
        _check_fraction("mask.target_frac", self.target_frac)
        if self.obs_frac + self.target_frac > 1.0 + 1e-9:
            raise ConfigError(
                f"mask.obs_frac + mask.target_frac = {self.obs_frac} + {self.target_frac} > 1: "
                "context and target pixels must be disjoint"
            )
        if self.scan_order not in SCAN_ORDERS:
            raise ConfigError(f"mask.scan_order={self.scan_order!r}; expected one of {SCAN_ORDERS}")


@dataclass
class NFLossConfig:
    """JEPA loss and reconstruction term."""

    jepa_loss_type: Literal["mse", "cosine"] = "mse"  # distance between predicted and target embeddings
    recon_weight: float = 0.1  # weight of the INR reconstruction MSE in the encoder's loss (0: JEPA only)
    monitor_decoder: bool = True  # with recon_weight 0, still train the INR on the detached code

    def validate(self) -> None:
        if self.jepa_loss_type not in ("mse", "cosine"):
            raise ConfigError(f"loss.jepa_loss_type={self.jepa_loss_type!r}; expected 'mse' or 'cosine'")
        if not (self.recon_weight >= 0 and math.isfinite(self.recon_weight)):
            raise ConfigError(f"loss.recon_weight={self.recon_weight} must be a finite number >= 0")


@dataclass
class NFProbeConfig(ProbeConfig):
    """Frozen-feature evaluation: the probes, how many pixels the encoder sees, and which encoder."""

    obs_frac: float = 0.1  # fraction of the pixels the probed encoder reads
    encoder: Literal["context", "target"] = "context"  # the online encoder or its EMA copy

    def validate(self) -> None:
        super().validate()
        _check_fraction("probe.obs_frac", self.obs_frac)


@dataclass
class NFJEPAConfig(RunConfig):
    """Run config of the ``nf_jepa`` method (the design input's flags are aliases)."""

    ALIASES: ClassVar[dict[str, str]] = {
        "obs_frac": "mask.obs_frac",
        "target_frac": "mask.target_frac",
        "scan_order": "mask.scan_order",
        "pred_mode": "predictor.mode",
        "use_mamba": "encoder.use_mamba",
        "recon_weight": "loss.recon_weight",
        "jepa_loss_type": "loss.jepa_loss_type",
        "image_size": "image_size",
    }

    method: str = "nf_jepa"
    encoder: EncoderSpec = field(
        default_factory=lambda: EncoderSpec("neural_field_cifar10")
    )  # the set encoder (and its EMA copy): a neural-field preset and any field of its config
    predictor: CoordPredictorConfig = field(default_factory=CoordPredictorConfig)  # latent predictor
    decoder: INRDecoderConfig = field(default_factory=INRDecoderConfig)  # INR reconstruction head
    data: DatasetSpec = field(
        default_factory=lambda: DatasetSpec("shapes_images", {"image_size": 32})
    )  # images in [0, 1]: a registered image dataset and its arguments
    image_size: int = 32  # side S of every image (S² pixels); batches of another size are errors
    mask: NFMaskConfig = field(default_factory=NFMaskConfig)  # context / target pixel sets
    loss: NFLossConfig = field(default_factory=NFLossConfig)  # JEPA loss and reconstruction
    ema: JEPAEMAConfig = field(default_factory=JEPAEMAConfig)  # target-encoder momentum
    probe: NFProbeConfig = field(default_factory=NFProbeConfig)  # frozen-feature evaluation

    def validate(self) -> None:
        super().validate()
        if self.image_size < 1:
            raise ConfigError(f"image_size={self.image_size} must be >= 1")
        args = self.data.arguments()
        if "image_size" not in args:
            raise ConfigError(
                f"data.name: dataset {self.data.name!r} takes no image_size; NF-JEPA reads images"
            )
        if args["image_size"] != self.image_size:
            raise ConfigError(
                f"data.image_size={args['image_size']} but the recipe encodes {self.image_size} x "
                f"{self.image_size} images (image_size); set both to the same side"
            )
        if args.get("normalize"):
            raise ConfigError(
                "data.normalize=true: NF-JEPA reads RGB values in [0, 1] (its PSNR assumes that range)"
            )


# ----------------------------------------------------------------------------------------------
# pixel sets


def fraction_count(frac: float, n: int) -> int:
    """Pixels of a set that covers ``frac`` of ``n``: ``round(frac · n)``, at least 1.

    Raises:
        ConfigError: ``frac`` outside (0, 1].
    """
    _check_fraction("fraction", frac)
    return max(1, min(n, round(frac * n)))


def sample_disjoint_sets(
    batch: int, n_pixels: int, sizes: Iterable[int], generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """Disjoint random pixel sets per image, each sorted by pixel index.

    Args:
        batch: B.
        n_pixels: N.
        sizes: size of each set; their sum must not exceed N.
        generator: random source.

    Returns:
        One ``(B, k)`` int64 tensor per size: set ``j`` of image ``b`` shares no pixel with
        any other set of image ``b``.

    Raises:
        ConfigError: a size < 1 or sizes summing beyond ``n_pixels``.
    """
    sizes = [int(k) for k in sizes]
    if any(k < 1 for k in sizes) or sum(sizes) > n_pixels:
        raise ConfigError(f"set sizes {sizes} must be >= 1 and sum to at most {n_pixels} pixels")
    order = torch.rand(batch, n_pixels, generator=generator).argsort(dim=1)  # a permutation per image
    sets, start = [], 0
    for k in sizes:
        sets.append(order[:, start : start + k].sort(dim=1).values)
        start += k
    return sets


def scan_rank(height: int, width: int, order: str = "raster") -> torch.Tensor:
    """Position of each raster-indexed pixel in the scan: ``(H·W,)`` int64.

    ``raster`` reads rows left to right; ``snake`` reads even rows left to right and odd rows
    right to left (neighbours in the sequence stay neighbours in the image).

    Raises:
        ConfigError: an unknown order.
    """
    if order not in SCAN_ORDERS:
        raise ConfigError(f"scan order {order!r}; expected one of {SCAN_ORDERS}")
    rank = torch.arange(height * width).view(height, width)
    if order == "snake":
        rank[1::2] = rank[1::2].flip(1)
    return rank.flatten()


@dataclass
class NFBatch:
    """A collated NF-JEPA batch.

    Attributes:
        images: ``(B, 3, S, S)`` in [0, 1].
        context: ``(B, Kc)`` raster indices of the context pixels, sorted.
        target: ``(B, Kt)`` raster indices of the target pixels, sorted, disjoint from ``context``.
    """

    images: torch.Tensor
    context: torch.Tensor
    target: torch.Tensor


class NFCollator:
    """Stack images and draw the context / target pixel sets of each.

    Args:
        image_size: S (items of another size raise :class:`ShapeError`).
        obs_frac: fraction of the pixels in the context.
        target_frac: fraction of the pixels predicted.
    """

    def __init__(self, image_size: int, obs_frac: float, target_frac: float):
        n = image_size * image_size
        self.image_size = image_size
        self.sizes = (fraction_count(obs_frac, n), fraction_count(target_frac, n))
        if sum(self.sizes) > n:
            raise ConfigError(f"obs_frac + target_frac = {obs_frac} + {target_frac} > 1")

    def __call__(self, samples: list[Any], generator: torch.Generator | None = None) -> NFBatch:
        images = torch.stack([split_sample(s)[0] for s in samples])
        S = self.image_size
        if images.shape[1:] != (3, S, S):
            raise ShapeError(
                f"NF-JEPA reads (3, {S}, {S}) RGB images, got items of shape {tuple(images.shape[1:])}"
            )
        context, target = sample_disjoint_sets(len(samples), S * S, self.sizes, generator)
        return NFBatch(images.float(), context, target)


# ----------------------------------------------------------------------------------------------
# method


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, index[b]]`` for ``x`` ``(B, N, ...)`` and ``index`` ``(B, K)``."""
    return x.gather(1, index.view(*index.shape, *([1] * (x.ndim - 2))).expand(-1, -1, *x.shape[2:]))


def psnr_db(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of a mean squared error of values in [0, 1]."""
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


@register_method("nf_jepa")
class NFJEPA(Method):
    """Neural-field set encoder, its EMA target, a coordinate predictor and an INR decoder.

    Args:
        encoder: a :class:`~mambajepa.encoders.field.NeuralFieldEncoder` (online).
        predictor: the coordinate predictor over the encoder's width.
        decoder: the INR decoder of ``z_global``.
        image_size: S.
        mask: context / target fractions and scan order.
        loss: JEPA loss type and reconstruction weight.
        ema: target momentum schedule.
        max_steps: optimizer updates of the run (the momentum schedule's length).
        probe: what :meth:`encode` reads (fraction of pixels, which encoder).
    """

    config_cls = NFJEPAConfig

    def __init__(
        self,
        encoder: torch.nn.Module,
        predictor: CoordPredictor,
        decoder: INRDecoder,
        image_size: int,
        mask: NFMaskConfig,
        loss: NFLossConfig,
        ema: JEPAEMAConfig,
        max_steps: int,
        probe: NFProbeConfig | None = None,
    ) -> None:
        super().__init__()
        mask.validate()
        loss.validate()
        if encoder.config.coord_dim != 2 or encoder.config.value_dim != 3:
            raise ConfigError(
                f"NF-JEPA encodes 2-D RGB images; the encoder has coord_dim={encoder.config.coord_dim}, "
                f"value_dim={encoder.config.value_dim}"
            )
        self.encoder, self.predictor, self.decoder = encoder, predictor, decoder
        self.target_encoder = EMA(encoder, ema.start, ema.end, max_steps, ema.kind)
        self.image_size, self.mask_cfg, self.loss_cfg = image_size, mask, loss
        self.probe_cfg = probe or NFProbeConfig()
        self.last_momentum = ema.start
        S = image_size
        self.register_buffer("coords", pixel_grid(S, S), persistent=False)  # (N, 2)
        rank = scan_rank(S, S, mask.scan_order)
        self.register_buffer("rank", rank, persistent=False)  # (N,) scan position of each pixel
        self.register_buffer("order", rank.argsort(), persistent=False)  # (N,) pixel at each position

    @classmethod
    def from_config(cls, config: NFJEPAConfig) -> NFJEPA:
        encoder = config.encoder.build()
        if not hasattr(encoder, "latent_slots"):
            raise ConfigError(f"encoder.name={config.encoder.name!r} is not a neural-field encoder")
        predictor = CoordPredictor(encoder.embed_dim, config.predictor)
        decoder = INRDecoder(encoder.embed_dim, config.decoder)
        return cls(
            encoder,
            predictor,
            decoder,
            config.image_size,
            config.mask,
            config.loss,
            config.ema,
            config.planned_steps() or config.train.max_steps,
            config.probe,
        )

    def build_data(self, config: NFJEPAConfig) -> DataSpec:
        collate = NFCollator(config.image_size, config.mask.obs_frac, config.mask.target_frac)
        return DataSpec(train=config.data.build("train"), val=config.data.build("val"), collate_fn=collate)

    def probe_data(self, config: NFJEPAConfig) -> ProbeData:
        """The training split against the test split (``val`` where there is no test split)."""
        train = config.data.build("train")
        test = config.data.build("test") or config.data.build("val")
        if test is None:
            raise ConfigError(f"data: dataset {config.data.name!r} has no held-out items to score probes on")
        tasks = getattr(train, "visible_labels", None)
        return ProbeData(train=train, test=test, tasks=list(tasks) if tasks is not None else None)

    def param_groups(self) -> list[ParamGroupSpec]:
        return [
            ParamGroupSpec("encoder", self.encoder),
            ParamGroupSpec("predictor", self.predictor),
            ParamGroupSpec("decoder", self.decoder),
        ]

    # -- pixels ------------------------------------------------------------------------------

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` -> ``(B, N, 3)`` values in raster order.

        Raises:
            ShapeError: images that are not ``(B, 3, S, S)``.
        """
        S = self.image_size
        if images.ndim != 4 or images.shape[1:] != (3, S, S):
            raise ShapeError(f"expected images (B, 3, {S}, {S}), got {tuple(images.shape)}")
        return images.flatten(2).transpose(1, 2)

    def scan_sorted(self, index: torch.Tensor) -> torch.Tensor:
        """Raster indices ``(B, K)`` reordered into scan order."""
        if self.mask_cfg.scan_order == "raster":
            return index
        return index.gather(1, self.rank[index].argsort(dim=1))

    def encode_pixels(
        self, images: torch.Tensor, index: torch.Tensor, encoder: torch.nn.Module | None = None
    ) -> Any:
        """Encode the pixels ``index`` of each image (in scan order) with ``encoder`` (default: online).

        Args:
            images: ``(B, 3, S, S)``.
            index: ``(B, K)`` raster indices of the observed pixels (any order; sorted here).
            encoder: the encoder to run.

        Returns:
            The :class:`~mambajepa.encoders.field.FieldEncoding` of the observed pixels, tokens in
            scan order.

        Raises:
            ShapeError: bad shapes or indices outside the image.
        """
        values = self.pixels(images)
        N = values.shape[1]
        if index.ndim != 2 or index.shape[0] != images.shape[0] or index.shape[1] < 1:
            raise ShapeError(f"pixel indices must be (B={images.shape[0]}, K>=1), got {tuple(index.shape)}")
        if int(index.min()) < 0 or int(index.max()) >= N:
            raise ShapeError(
                f"pixel indices must lie in [0, {N}), got [{int(index.min())}, {int(index.max())}]"
            )
        index = self.scan_sorted(index)
        coords = self.coords.to(values.dtype)[index]  # (B, K, 2)
        return (encoder or self.encoder)(coords, _gather(values, index))

    def jepa_distance(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean MSE over elements, or mean ``1 - cos`` over tokens."""
        if self.loss_cfg.jepa_loss_type == "cosine":
            return (1.0 - F.cosine_similarity(predicted, target, dim=-1)).mean()
        return F.mse_loss(predicted, target)

    # -- the step ------------------------------------------------------------------------------

    def training_step(self, batch: NFBatch, step: int) -> TrainOutput:
        """One NF-JEPA step (module docstring)."""
        images, context, target = batch.images, batch.context, batch.target
        values = self.pixels(images)  # (B, N, 3)
        B, N, _ = values.shape

        # 2. targets: the EMA encoder on every pixel (in scan order), layer-normed, no gradient
        with torch.no_grad():
            everything = self.order.expand(B, -1)
            h = self.encode_pixels(images, everything, self.target_encoder).tokens.float()  # (B, N, D)
            h = F.layer_norm(h, h.shape[-1:])
            targets = _gather(h, self.rank[target])  # (B, Kt, D)

        # 3. the online encoder on the context pixels
        enc = self.encode_pixels(images, context)
        # 4. prediction at the target coordinates
        predicted = self.predictor(enc.tokens, enc.z_global, self.coords.to(values.dtype)[target]).float()
        jepa = self.jepa_distance(predicted, targets)

        # 5. reconstruction of every pixel from the pooled code
        cfg = self.loss_cfg
        loss = jepa
        recon = values.new_zeros(())
        if cfg.recon_weight > 0 or cfg.monitor_decoder:
            z = enc.z_global if cfg.recon_weight > 0 else enc.z_global.detach()
            recon = F.mse_loss(self.decoder(z, self.coords.to(values.dtype)).float(), values.float())
            loss = loss + (cfg.recon_weight if cfg.recon_weight > 0 else 1.0) * recon
        metrics = {
            "jepa_loss": jepa.detach(),
            "recon_loss": recon.detach(),
            "recon_psnr": psnr_db(recon.detach()),
            "pred_std": predicted.detach().std(dim=(0, 1)).mean(),
            "target_std": targets.std(dim=(0, 1)).mean(),
            "z_std": enc.z_global.detach().float().std(dim=0).mean(),
            "ema_momentum": self.last_momentum,
        }
        return TrainOutput(loss=loss, metrics=metrics, tokens=B * (context.shape[1] + N))

    # 6. EMA update of the target encoder, after the optimizer step
    def after_optimizer_step(self, step: int, max_steps: int) -> None:
        self.last_momentum = self.target_encoder.update(self.encoder, step)

    @torch.no_grad()
    def evaluate(self, batches: Iterable[NFBatch]) -> dict[str, float]:
        def metrics(batch) -> dict:
            out = self.training_step(batch, 0)
            return {k: out.metrics[k] for k in ("jepa_loss", "recon_loss", "z_std")}

        result = held_out_means((b.images.shape[0], metrics(b)) for b in batches)
        if result:
            result["val/recon_psnr"] = float(psnr_db(torch.tensor(result["val/recon_loss"])))
        return result

    # -- inference ------------------------------------------------------------------------------

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Decode every pixel from the online encoding of the observed ones.

        Args:
            images: ``(B, 3, S, S)`` in [0, 1] (only the observed pixels are read).
            observed: ``(B, K)`` raster indices of the observed pixels.

        Returns:
            ``(B, 3, S, S)`` clamped to [0, 1].

        Raises:
            ShapeError: bad shapes or indices.
        """
        enc = self.encode_pixels(images, observed)
        S = self.image_size
        out = self.decoder(enc.z_global, self.coords.to(enc.z_global.dtype))  # (B, N, 3)
        return out.transpose(1, 2).reshape(-1, 3, S, S).clamp(0.0, 1.0)

    def encode(self, batch: torch.Tensor | NFBatch) -> torch.Tensor:
        """Token features ``(B, K, D)`` of ``probe.obs_frac`` of each image's pixels (what probes read).

        The pixels are drawn by a generator seeded with ``probe.seed`` at every call, so the
        trained encoder and its random initialisation read the same pixels of the same items.
        """
        images = batch.images if isinstance(batch, NFBatch) else batch
        N = self.image_size**2
        generator = torch.Generator().manual_seed(self.probe_cfg.seed)
        (index,) = sample_disjoint_sets(
            images.shape[0], N, [fraction_count(self.probe_cfg.obs_frac, N)], generator
        )
        encoder = self.target_encoder if self.probe_cfg.encoder == "target" else self.encoder
        return self.encode_pixels(images, index.to(images.device), encoder).tokens
