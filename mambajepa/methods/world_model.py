"""Action-conditioned JEPA world model: latent dynamics learned from reward-free trajectories.

A frame encoder maps each image to one latent ``z_t``; a :class:`~mambajepa.predictors.dynamics.
LatentDynamics` predictor (Mamba-3 blocks, or a GRU for the ablation) maps ``(z_t, a_t)`` to
``z_{t+1}``. The loss follows the anchors (eb_jepa's action-conditioned video JEPA, PLDM):

* prediction: teacher-forced one-step error over the sequence plus the error of an open-loop
  rollout of ``rollout_steps`` imagined steps from the first frame (squared L2 per latent
  dimension), against targets that are the encoder's latents with the gradient stopped
  (``target: stopgrad``) or those of an EMA copy of the encoder (``target: ema``);
* VICReg variance and covariance of the latents, per time step over the batch (they keep the
  latents from collapsing, since nothing else pushes them apart); with ``variance_of: motion`` the
  variance hinge reads each latent's deviation from its clip's mean instead, so what stays fixed
  within a clip (a random wall) cannot satisfy it and the latents must follow what moves;
* temporal smoothness ``||z_{t+1} - z_t||²``;
* inverse dynamics: an MLP predicts ``a_t`` from ``(z_t, z_{t+1})``, so the latents keep what the
  actions change; with ``inverse_dynamics_spans`` beyond 1 it also predicts the mean action of
  ``a_t .. a_{t+k-1}`` from ``(z_t, z_{t+k}, k / T)``, whose displacement is large enough to be
  seen early in training.

Planning (:mod:`mambajepa.planning`) rolls the predictor out with its O(1) recurrent step.

Dimension legend: ``B`` batch, ``T`` frames, ``S`` image side, ``Z`` latent width, ``A`` action width.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mambajepa.config import RunConfig
from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.envs.trajectories import TwoRoomsTrajectories
from mambajepa.envs.two_rooms import TwoRoomsConfig
from mambajepa.losses import covariance_loss, variance_loss
from mambajepa.methods.base import DataSpec, Method, ParamGroupSpec, TrainOutput, held_out_means
from mambajepa.methods.jepa import JEPAEMAConfig
from mambajepa.nn.ema import EMA
from mambajepa.predictors.dynamics import DynamicsConfig, LatentDynamics
from mambajepa.registry import register_method
from mambajepa.specs import EncoderSpec

__all__ = ["WorldModel", "WorldModelConfig", "WorldModelLossConfig"]

ACTION_DIM = 2


@dataclass
class WorldModelLossConfig:
    """Weights of the loss terms (eb_jepa's: prediction 1, covariance 8, variance 16, time 12, IDM 1)."""

    prediction: float = 1.0  # teacher-forced one-step error
    rollout: float = 1.0  # open-loop multi-step error
    rollout_steps: int = 8  # imagined steps of the rollout term
    variance: float = 16.0  # VICReg variance hinge per time step
    variance_of: Literal["latents", "motion"] = (
        "latents"  # the latents, or their deviation from the clip's mean
    )
    covariance: float = 8.0  # VICReg covariance per time step
    time: float = 12.0  # temporal smoothness
    inverse_dynamics: float = 1.0  # action prediction from consecutive latents
    inverse_dynamics_spans: list[int] = field(default_factory=lambda: [1])  # k of the (z_t, z_{t+k}) pairs
    target: Literal["stopgrad", "ema"] = "stopgrad"  # where the prediction targets come from

    def validate(self) -> None:
        weights = (
            self.prediction,
            self.rollout,
            self.variance,
            self.covariance,
            self.time,
            self.inverse_dynamics,
        )
        if any(w < 0 for w in weights):
            raise ConfigError(f"loss weights must be >= 0, got {weights}")
        if not self.inverse_dynamics_spans or min(self.inverse_dynamics_spans) < 1:
            raise ConfigError(
                f"loss.inverse_dynamics_spans={self.inverse_dynamics_spans} must be integers >= 1"
            )
        if self.rollout_steps < 1:
            raise ConfigError(f"loss.rollout_steps={self.rollout_steps} must be >= 1")
        if self.variance_of not in ("latents", "motion"):
            raise ConfigError(f"loss.variance_of={self.variance_of!r}; expected 'latents' or 'motion'")
        if self.target not in ("stopgrad", "ema"):
            raise ConfigError(f"loss.target={self.target!r}; expected 'stopgrad' or 'ema'")


@dataclass
class TrajectoryDataConfig:
    """Offline random-walk trajectories of the arena (deterministic by seed and index)."""

    n_train: int = 50_000  # training clips
    n_val: int = 256  # held-out clips (another seed)
    length: int = 17  # frames per clip
    seed: int = 0  # seeds the training clips; held-out clips use seed + 1
    cross_fraction: float = 0.35  # share of clips steered through the door
    step_mean: float = 1.0  # mean step length (px)
    step_std: float = 0.4  # step length standard deviation (px)
    angle_noise: float = 0.2  # heading change per step (radians)

    def validate(self) -> None:
        if self.n_train < 1 or self.n_val < 0 or self.length < 2:
            raise ConfigError(
                f"need n_train >= 1, n_val >= 0, length >= 2; got {self.n_train}, {self.n_val}, {self.length}"
            )


@dataclass
class PlanSettings:
    """Defaults of ``mambajepa eval plan`` for this run (flags override them)."""

    horizon: int = 16  # actions per planned sequence
    samples: int = 128  # candidate sequences per iteration
    iterations: int = 4  # refits per plan
    elites: int = 16  # CEM elites
    temperature: float = 0.5  # MPPI temperature (on the latent-distance cost's scale)
    execute: int = 4  # actions executed per replan


@dataclass
class WorldModelConfig(RunConfig):
    """Run config of the ``world_model`` method."""

    ALIASES: ClassVar[dict[str, str]] = {"predictor": "predictor.kind", "target": "loss.target"}

    method: str = "world_model"
    encoder: EncoderSpec = field(default_factory=lambda: EncoderSpec("conv_encoder_64"))  # frame encoder
    predictor: DynamicsConfig = field(default_factory=DynamicsConfig)  # latent dynamics
    idm_hidden: int = 64  # hidden width of the inverse-dynamics MLP
    loss: WorldModelLossConfig = field(default_factory=WorldModelLossConfig)
    ema: JEPAEMAConfig = field(default_factory=JEPAEMAConfig)  # target encoder momentum (target: ema)
    env: TwoRoomsConfig = field(default_factory=TwoRoomsConfig)  # the arena of the data and the episodes
    data: TrajectoryDataConfig = field(default_factory=TrajectoryDataConfig)  # offline trajectories
    plan: PlanSettings = field(default_factory=PlanSettings)  # planner defaults of eval plan


def collate_trajectories(items: list[dict[str, Any]], generator: torch.Generator | None = None) -> dict:
    """Stack trajectories: ``frames`` ``(B, T, 3, S, S)``, ``actions`` ``(B, T - 1, A)``, ``positions``."""
    return {
        key: torch.stack([torch.as_tensor(it[key]) for it in items])
        for key in ("frames", "actions", "positions")
    }


@register_method("world_model")
class WorldModel(Method):
    """Frame encoder + latent dynamics + inverse-dynamics head (module docstring).

    Args:
        encoder: ``(B, 3, S, S) -> (B, Z)``.
        predictor: the latent dynamics.
        idm_hidden: hidden width of the inverse-dynamics MLP.
        loss: term weights and the target choice.
        ema: target momentum schedule (``target: ema``).
        max_steps: updates of the momentum schedule.
    """

    config_cls = WorldModelConfig

    def __init__(
        self,
        encoder: nn.Module,
        predictor: LatentDynamics,
        idm_hidden: int,
        loss: WorldModelLossConfig,
        ema: JEPAEMAConfig,
        max_steps: int,
    ) -> None:
        super().__init__()
        loss.validate()
        self.encoder, self.predictor, self.loss_cfg = encoder, predictor, loss
        Z = encoder.embed_dim
        self.inverse_dynamics = nn.Sequential(
            nn.Linear(2 * Z + 1, idm_hidden), nn.GELU(), nn.Linear(idm_hidden, predictor.action_dim)
        )
        self.target_encoder = (
            EMA(encoder, ema.start, ema.end, max_steps, ema.kind) if loss.target == "ema" else None
        )

    @classmethod
    def from_config(cls, config: WorldModelConfig) -> WorldModel:
        encoder = config.encoder.build()
        predictor = LatentDynamics(encoder.embed_dim, ACTION_DIM, config.predictor)
        max_steps = config.planned_steps() or config.train.max_steps
        return cls(encoder, predictor, config.idm_hidden, config.loss, config.ema, max_steps)

    def build_data(self, config: WorldModelConfig) -> DataSpec:
        d = config.data

        def clips(num: int, seed: int) -> TwoRoomsTrajectories:
            return TwoRoomsTrajectories(
                num, d.length, seed, config.env, d.cross_fraction, d.step_mean, d.step_std, d.angle_noise
            )

        val = clips(d.n_val, d.seed + 1) if d.n_val else None
        return DataSpec(clips(d.n_train, d.seed), val, collate_trajectories)

    def param_groups(self) -> list[ParamGroupSpec]:
        return [
            ParamGroupSpec("encoder", self.encoder),
            ParamGroupSpec("predictor", self.predictor),
            ParamGroupSpec("inverse_dynamics", self.inverse_dynamics),
        ]

    # -- latents ---------------------------------------------------------------------------------

    def encode_frames(self, frames: torch.Tensor, encoder: nn.Module | None = None) -> torch.Tensor:
        """``(B, T, 3, S, S)`` or ``(B, 3, S, S)`` -> ``(B, T, Z)`` or ``(B, Z)``."""
        encoder = encoder or self.encoder
        if frames.ndim == 4:
            return encoder(frames)
        if frames.ndim != 5:
            raise ShapeError(f"frames must be (B, T, 3, S, S) or (B, 3, S, S), got {tuple(frames.shape)}")
        B, T = frames.shape[:2]
        return encoder(frames.flatten(0, 1)).view(B, T, -1)

    @torch.no_grad()
    def imagine(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Open-loop latents ``(N, H, Z)`` of ``actions`` ``(N, H, A)`` from one start ``z0`` ``(Z,)`` or ``(N, Z)``."""
        z0 = z0.expand(actions.shape[0], -1) if z0.ndim == 1 else z0
        return self.predictor.rollout(z0, actions)

    # -- the step --------------------------------------------------------------------------------

    def loss_terms_of(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every unweighted loss term of a batch."""
        frames, actions = batch["frames"], batch["actions"]
        if actions.ndim != 3 or actions.shape[1] != frames.shape[1] - 1:
            raise ShapeError(
                f"a trajectory of {frames.shape[1]} frames needs {frames.shape[1] - 1} actions, got {tuple(actions.shape)}"
            )
        z = self.encode_frames(frames)  # (B, T, Z)
        if self.target_encoder is None:
            target = z.detach()
        else:
            with torch.no_grad():
                target = self.encode_frames(frames, self.target_encoder)
        one_step = F.mse_loss(self.predictor(z[:, :-1], actions), target[:, 1:])
        k = min(self.loss_cfg.rollout_steps, actions.shape[1])
        rollout = F.mse_loss(self.predictor.rollout(z[:, 0], actions[:, :k]), target[:, 1 : k + 1])
        T = z.shape[1]
        spread = z - z.mean(dim=1, keepdim=True) if self.loss_cfg.variance_of == "motion" else z
        var = torch.stack([variance_loss(spread[:, t]) for t in range(T)]).mean()
        cov = torch.stack([covariance_loss(z[:, t]) for t in range(T)]).mean()
        smooth = (z[:, 1:] - z[:, :-1]).pow(2).sum(-1).mean()
        idm = torch.stack(
            [self._inverse_dynamics(z, actions, k) for k in self.loss_cfg.inverse_dynamics_spans if k < T]
        )
        idm = idm.mean()
        return {
            "prediction": one_step,
            "rollout": rollout,
            "variance": var,
            "covariance": cov,
            "time": smooth,
            "inverse_dynamics": idm,
        }

    def _inverse_dynamics(self, z: torch.Tensor, actions: torch.Tensor, k: int) -> torch.Tensor:
        """MSE of the mean action over ``a_t .. a_{t+k-1}`` predicted from ``(z_t, z_{t+k}, k / T)``."""
        T = z.shape[1]
        mean_action = actions.to(z.dtype).unfold(1, k, 1).mean(-1)  # (B, T - k, A)
        span = z.new_full((*z.shape[:1], T - k, 1), k / T)
        pred = self.inverse_dynamics(torch.cat([z[:, :-k], z[:, k:], span], dim=-1))
        return F.mse_loss(pred, mean_action)

    def training_step(self, batch: dict[str, torch.Tensor], step: int) -> TrainOutput:
        terms = self.loss_terms_of(batch)
        cfg = self.loss_cfg
        loss = sum(getattr(cfg, name) * value for name, value in terms.items())
        metrics = {name: value.detach() for name, value in terms.items()}
        return TrainOutput(loss, metrics, tokens=int(batch["frames"].shape[0] * batch["frames"].shape[1]))

    def after_optimizer_step(self, step: int, max_steps: int) -> None:
        if self.target_encoder is not None:
            self.target_encoder.update(self.encoder, step)

    @torch.no_grad()
    def evaluate(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        return held_out_means((b["frames"].shape[0], self.loss_terms_of(b)) for b in batches)
