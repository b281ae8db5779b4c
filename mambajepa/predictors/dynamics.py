"""Action-conditioned latent dynamics: ``(z_t, a_t) -> z_{t+1}`` by a Mamba-3 stack or a GRU.

Each step's input is ``Linear([z_t, a_t])``; the mixer (causal Mamba-3 blocks, or a GRU for the
ablation) carries the history; the output is a residual update, ``z_{t+1} = z_t + head(h_t)``.
The same weights run a whole sequence at once (teacher forcing) or one O(1) recurrent step at
a time (imagined rollouts: a planner's whole population advances in one batched step).

Dimension legend: ``B`` batch (or candidate sequences), ``T`` time steps, ``Z`` latent width,
``A`` action width, ``D`` mixer width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.ssm.mixer_model import MixerModel

__all__ = ["DynamicsConfig", "LatentDynamics"]


@dataclass
class DynamicsConfig:
    """Architecture of :class:`LatentDynamics` (latent and action widths come from the method)."""

    kind: Literal["mamba3", "gru"] = "mamba3"  # the mixer over time
    d_model: int = 64  # mixer width D
    n_layer: int = 2  # Mamba-3 blocks or GRU layers
    d_state: int = 16  # Mamba-3 state size per head
    expand: int = 2  # Mamba-3 inner width / D
    headdim: int = 16  # Mamba-3 head width

    def validate(self) -> None:
        if self.kind not in ("mamba3", "gru"):
            raise ConfigError(f"predictor.kind={self.kind!r}; expected 'mamba3' or 'gru'")
        if min(self.d_model, self.n_layer, self.d_state, self.expand, self.headdim) < 1:
            raise ConfigError(f"predictor sizes must be positive, got {self}")
        if self.kind == "mamba3" and (self.d_model * self.expand) % self.headdim:
            raise ConfigError(f"d_model * expand = {self.d_model * self.expand} is not divisible by headdim")


class LatentDynamics(nn.Module):
    """Predict the next latent from the latents and actions so far.

    Args:
        latent_dim: Z.
        action_dim: A.
        config: the architecture.
    """

    def __init__(self, latent_dim: int, action_dim: int, config: DynamicsConfig):
        super().__init__()
        config.validate()
        self.latent_dim, self.action_dim, self.config = latent_dim, action_dim, config
        D = config.d_model
        self.inp = nn.Linear(latent_dim + action_dim, D)
        if config.kind == "mamba3":
            ssm = {
                "layer": "Mamba3",
                "d_state": config.d_state,
                "expand": config.expand,
                "headdim": config.headdim,
            }
            self.mixer = MixerModel(D, config.n_layer, vocab_size=None, ssm_cfg=ssm)
        else:
            self.mixer = nn.GRU(D, D, config.n_layer, batch_first=True)
        self.head = nn.Linear(D, latent_dim)

    def _inputs(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if z.shape[-1] != self.latent_dim or a.shape[-1] != self.action_dim or z.shape[:-1] != a.shape[:-1]:
            raise ShapeError(
                f"expected latents (..., {self.latent_dim}) and actions (..., {self.action_dim}) with the same "
                f"leading dims, got {tuple(z.shape)} and {tuple(a.shape)}"
            )
        return self.inp(torch.cat([z, a.to(z.dtype)], dim=-1))

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: ``(B, T, Z)``, ``(B, T, A)`` -> predicted ``z_{t+1}`` for every t, ``(B, T, Z)``."""
        x = self._inputs(z, a)
        h = self.mixer(inputs_embeds=x) if self.config.kind == "mamba3" else self.mixer(x)[0]
        return z + self.head(h)

    def init_state(self, batch_size: int, device=None, dtype=None) -> Any:
        """The empty history of ``batch_size`` sequences."""
        if self.config.kind == "mamba3":
            return self.mixer.init_state(batch_size, device=device, dtype=dtype)
        return torch.zeros(self.config.n_layer, batch_size, self.config.d_model, device=device, dtype=dtype)

    def step(self, state: Any, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """One O(1) step: ``(B, Z)``, ``(B, A)`` -> predicted ``z_{t+1}`` ``(B, Z)`` and the new state."""
        x = self._inputs(z, a)
        if self.config.kind == "mamba3":
            h, state = self.mixer.step(state, inputs_embeds=x)
        else:
            out, state = self.mixer(x.unsqueeze(1), state)
            h = out[:, 0]
        return z + self.head(h), state

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor, state: Any = None) -> torch.Tensor:
        """Imagine ``H`` steps open loop from ``z0`` ``(B, Z)`` under ``actions`` ``(B, H, A)`` -> ``(B, H, Z)``."""
        if actions.ndim != 3:
            raise ShapeError(f"actions must be (B, H, {self.action_dim}), got {tuple(actions.shape)}")
        state = self.init_state(z0.shape[0], device=z0.device, dtype=z0.dtype) if state is None else state
        z, out = z0, []
        for t in range(actions.shape[1]):
            z, state = self.step(state, z, actions[:, t])
            out.append(z)
        return torch.stack(out, dim=1)
