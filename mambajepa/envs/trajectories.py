"""Offline Two Rooms data: noisy random walks of the dot, deterministic by ``(seed, index)``.

Item ``index`` is drawn from ``np.random.default_rng((seed, index))``, so it is the same in every
worker, process and epoch. Each item draws a layout (:func:`sample_layout`), then decides with
probability ``cross_fraction`` whether it is a *crossing* walk:

- a free walk starts uniformly in a random room with a uniform heading; each step turns the
  heading by ``N(0, angle_noise)`` and moves ``max(N(step_mean, step_std), 0)`` px along it.
  A free walk that changes room is drawn again (up to ``MAX_REDRAWS`` times), so that crossings
  come only from crossing walks and their share is ``cross_fraction``;
- a crossing walk starts within ``(length - 1) * step_mean / 2`` px of the door on a random side,
  heads (with the same noise) for a point ``DOOR_APPROACH`` px before the door, then for the point
  as far past it, and walks freely from there on. It crosses whenever its length allows it.

Actions are clipped to ``max_norm`` and applied with the environment's collision rule
(:meth:`TwoRoomsLayout.move`), so the data obey the same dynamics as :class:`TwoRooms`.

Dimension legend: ``T`` = ``length`` frames, ``C`` = 3 channels, ``S`` image side in pixels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mambajepa.core.errors import ConfigError
from mambajepa.envs.two_rooms import TwoRoomsConfig, TwoRoomsLayout, clip_norm, sample_layout

#: a free walk that changes room is redrawn at most this many times (the last draw is then kept)
MAX_REDRAWS = 16
#: a crossing walk aims this many pixels before, then past, the dividing wall at the door's centre
DOOR_APPROACH = 1.5
#: a crossing walk starts within this angle (radians) of the wall's normal, seen from the door
_START_CONE = 1.2


class TwoRoomsTrajectories(Dataset):
    """Random-walk clips of the Two Rooms dot, with the actions that produced them.

    Args:
        num_items: number of clips.
        length: frames per clip ``T`` (``T - 1`` actions).
        seed: seed of the whole data set; item ``i`` comes from ``default_rng((seed, i))``.
        config: the arena (``random_wall`` decides whether the layout varies per clip).
        cross_fraction: share of clips steered through the door.
        step_mean: mean step length (px).
        step_std: standard deviation of the step length (px); lengths are clipped at 0.
        angle_noise: standard deviation of the heading change per step (radians).

    Raises:
        ConfigError: a non-positive ``num_items``, ``length < 2``, a negative ``seed``, a
            ``cross_fraction`` outside ``[0, 1]`` or a negative / non-finite step or angle noise.
    """

    def __init__(
        self,
        num_items: int,
        length: int = 17,
        seed: int = 0,
        config: TwoRoomsConfig = TwoRoomsConfig(),
        cross_fraction: float = 0.35,
        step_mean: float = 1.0,
        step_std: float = 0.4,
        angle_noise: float = 0.2,
    ) -> None:
        if num_items < 1:
            raise ConfigError(f"num_items must be >= 1, got {num_items}")
        if length < 2:
            raise ConfigError(f"length must be >= 2 frames (one action), got {length}")
        if seed < 0:
            raise ConfigError(f"seed must be >= 0 (a numpy SeedSequence entropy), got {seed}")
        if not 0.0 <= cross_fraction <= 1.0:
            raise ConfigError(f"cross_fraction must lie in [0, 1], got {cross_fraction}")
        for name, value in (("step_mean", step_mean), ("step_std", step_std), ("angle_noise", angle_noise)):
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be finite and >= 0, got {value}")
        self.num_items = int(num_items)
        self.length = int(length)
        self.seed = int(seed)
        self.config = config
        self.cross_fraction = float(cross_fraction)
        self.step_mean = float(step_mean)
        self.step_std = float(step_std)
        self.angle_noise = float(angle_noise)

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Clip ``index``.

        Returns:
            ``frames`` ``(T, C, S, S)`` float32, ``actions`` ``(T - 1, 2)`` float32 (the clipped
            actions that were applied), ``positions`` ``(T, 2)`` float32, ``wall_x`` and
            ``door_y`` ints.

        Raises:
            IndexError: ``index`` outside ``[0, num_items)``.
        """
        if not 0 <= index < self.num_items:
            raise IndexError(f"index {index} out of range for {self.num_items} Two Rooms trajectories")
        rng = np.random.default_rng((self.seed, int(index)))
        layout = sample_layout(self.config, rng)
        if rng.random() < self.cross_fraction:
            actions, positions = self._crossing_walk(layout, rng)
        else:
            for _ in range(MAX_REDRAWS):
                actions, positions = self._free_walk(layout, rng)
                if len({layout.room_of(x) for x in positions[:, 0]}) == 1:
                    break
        return {
            "frames": torch.from_numpy(layout.render(positions)),
            "actions": torch.from_numpy(actions.astype(np.float32)),
            "positions": torch.from_numpy(positions.astype(np.float32)),
            "wall_x": layout.wall_x,
            "door_y": layout.door_y,
        }

    def _steps(self, rng: np.random.Generator) -> np.ndarray:
        """``(T - 1,)`` step lengths ``max(N(step_mean, step_std), 0)``."""
        return np.maximum(rng.normal(self.step_mean, self.step_std, self.length - 1), 0.0)

    def _free_walk(self, layout: TwoRoomsLayout, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A smooth random walk from a uniform start: ``(T - 1, 2)`` actions, ``(T, 2)`` positions."""
        start = layout.sample_position(rng, int(rng.integers(2)))
        headings = rng.uniform(-math.pi, math.pi) + np.cumsum(
            rng.normal(0.0, self.angle_noise, self.length - 1)
        )
        steps = self._steps(rng)
        actions = clip_norm(
            steps[:, None] * np.stack([np.cos(headings), np.sin(headings)], axis=-1), self.config.max_norm
        )
        positions = np.empty((self.length, 2))
        positions[0] = start
        for t, action in enumerate(actions):
            positions[t + 1] = layout.move(positions[t], action)
        return actions, positions

    def _crossing_walk(
        self, layout: TwoRoomsLayout, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """A walk steered through the door: ``(T - 1, 2)`` actions, ``(T, 2)`` positions."""
        room = int(rng.integers(2))
        side = -1.0 if room == 0 else 1.0  # direction from the wall into the start room
        centre = layout.door_centre
        half_wall = self.config.wall_width / 2
        waypoints = [
            centre + np.array([side * (half_wall + DOOR_APPROACH), 0.0]),
            centre - np.array([side * (half_wall + DOOR_APPROACH), 0.0]),
        ]
        reach = max(0.5 * (self.length - 1) * self.step_mean, 1.0)
        distance, angle = rng.uniform(0.0, reach), rng.uniform(-_START_CONE, _START_CONE)
        x_lo, x_hi, y_lo, y_hi = layout.room_box(room)
        start = waypoints[0] + distance * np.array([side * math.cos(angle), math.sin(angle)])
        start = np.array([np.clip(start[0], x_lo, x_hi), np.clip(start[1], y_lo, y_hi)])
        heading = 0.0  # set at t = 0: the last waypoint lies in the other room, ahead of the start
        noise, steps = rng.normal(0.0, self.angle_noise, self.length - 1), self._steps(rng)
        actions, positions = np.empty((self.length - 1, 2)), np.empty((self.length, 2))
        positions[0] = start
        for t in range(self.length - 1):
            # a waypoint is passed once the dot is level with it or beyond, seen from the start room
            while waypoints and side * (positions[t, 0] - waypoints[0][0]) <= 0.0:
                waypoints.pop(0)
            if waypoints:
                heading = math.atan2(waypoints[0][1] - positions[t, 1], waypoints[0][0] - positions[t, 0])
            heading += noise[t]
            actions[t] = clip_norm(
                steps[t] * np.array([math.cos(heading), math.sin(heading)]), self.config.max_norm
            )
            positions[t + 1] = layout.move(positions[t], actions[t])
        return actions, positions
