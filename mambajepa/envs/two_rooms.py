"""Two Rooms: a point mass in a square arena split by a vertical wall with one door.

The benchmark of the action-conditioned JEPA world models (eb_jepa's ``ac_video_jepa``, PLDM,
DINO-WM's "Wall"): the dot moves by a 2-D displacement per step, whose Euclidean norm is clipped
to ``max_norm``, and it passes from one room to the other only through the door.

Coordinates: a position is ``(x, y)`` in pixels, ``x`` along the columns and ``y`` down the rows;
pixel ``(row r, column c)`` covers ``[c, c + 1) x [r, r + 1)`` and its centre is
``(c + 0.5, r + 0.5)``. Walls are closed axis-aligned rectangles with integer edges: the outer
wall ``border`` px thick on every side, and the dividing wall ``x in [wall_x, wall_x +
wall_width]`` except the door ``door_y < y < door_y + door_size``. A position is free when it lies
in no wall rectangle. Room 0 is left of the wall's centre line, room 1 right of it.

Collision rule: a move is the straight segment from the position to position + action; it is cut
exactly (segment against every wall rectangle, slab test) at the first wall it would touch and
the dot stops ``CONTACT_GAP`` px (along the move) short of it, with no sliding along the wall.
So the dot never tunnels through the 3 px wall, whatever the action.

Observation layout ``(C, S, S)`` float32 in ``[0, 1]``, ``C = 3``: channel 0 the dot as a
Gaussian blob (peak 1, std ``blob_std`` px), channel 1 the walls (1 on wall pixels), channel 2 the
goal blob when one is passed to :meth:`TwoRoomsLayout.render`, else zeros. Observations and the
offline data leave channel 2 at zero so both come from one distribution; the goal is given to a
planner as :meth:`TwoRooms.goal_image`, the frame the dot would show standing on the goal.

Dimension legend: ``C`` = 3 channels, ``S`` image side in pixels, ``...`` any leading dims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mambajepa.core.errors import ConfigError, ShapeError

#: a blocked move stops this many pixels (along the move) before the wall it would touch
CONTACT_GAP = 1e-3
#: keys :meth:`TwoRooms.reset` accepts in ``options``
RESET_OPTIONS = ("start", "goal", "wall_x", "door_y")
#: grey level of the walls in the RGB picture
_WALL_GREY = 0.6


@dataclass(frozen=True)
class TwoRoomsConfig:
    """Geometry, dynamics and episode rules of the Two Rooms arena (all lengths in pixels)."""

    size: int = 64  # side of the square arena and of every image
    border: int = 3  # thickness of the outer wall on each side
    wall_width: int = 3  # thickness of the dividing wall
    door_size: int = 8  # height of the opening in the dividing wall
    random_wall: bool = True  # draw wall x and door y per episode; else wall at the centre column
    wall_padding: int = 20  # random wall: wall_x in [wall_padding, size - wall_padding - wall_width]
    door_padding: int = 10  # random door: door_y in [door_padding, size - door_padding - door_size]
    fixed_door_y: int | None = None  # fixed layout: top edge of the door; None centres it
    max_norm: float = 2.45  # actions are clipped to this Euclidean norm (px per step)
    blob_std: float = 1.3  # standard deviation of the Gaussian dot in the images
    max_steps: int = 200  # an episode is truncated after this many steps
    success_radius: float = 4.5  # an episode terminates once the dot is this close to the goal
    spawn_margin: float = 1.0  # sampled starts and goals keep at least this far from every wall

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check ranges and that every layout the config can draw has two usable rooms.

        Raises:
            ConfigError: naming the field(s) and their values.
        """
        for name in ("size", "border", "wall_width", "door_size", "max_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"TwoRoomsConfig.{name}={value!r}; expected an int >= 1")
        for name in ("wall_padding", "door_padding"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"TwoRoomsConfig.{name}={value!r}; expected an int >= 0")
        for name in ("max_norm", "blob_std", "success_radius"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"TwoRoomsConfig.{name}={value!r}; expected a finite number > 0")
        margin = self.spawn_margin
        if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
            raise ConfigError(f"TwoRoomsConfig.spawn_margin={margin!r}; expected a finite number >= 0")
        (wall_lo, wall_hi), (door_lo, door_hi) = self.wall_x_range(), self.door_y_range()
        if wall_lo > wall_hi or door_lo > door_hi:
            raise ConfigError(
                f"TwoRoomsConfig draws wall_x from [{wall_lo}, {wall_hi}] and door_y from "
                f"[{door_lo}, {door_hi}]; both ranges must be non-empty (size={self.size}, "
                f"wall_width={self.wall_width}, wall_padding={self.wall_padding}, "
                f"door_size={self.door_size}, door_padding={self.door_padding}, "
                f"fixed_door_y={self.fixed_door_y})"
            )
        if self.size - 2 * self.border <= 2 * self.spawn_margin:
            raise ConfigError(
                f"TwoRoomsConfig leaves rooms {self.size - 2 * self.border} px tall inside the outer wall "
                f"(size={self.size}, border={self.border}); they must exceed "
                f"2 * spawn_margin={2 * self.spawn_margin}"
            )
        for wall_x in (wall_lo, wall_hi):
            for door_y in (door_lo, door_hi):
                try:
                    check_layout(self, wall_x, door_y)
                except ConfigError as err:
                    raise ConfigError(
                        f"TwoRoomsConfig can draw an unusable layout (random_wall={self.random_wall}, "
                        f"fixed_door_y={self.fixed_door_y!r}): {err}"
                    ) from err

    def wall_x_range(self) -> tuple[int, int]:
        """The inclusive range the dividing wall's left edge is drawn from (one value when fixed)."""
        if self.random_wall:
            return self.wall_padding, self.size - self.wall_padding - self.wall_width
        centre = (self.size - self.wall_width) // 2
        return centre, centre

    def door_y_range(self) -> tuple[int, int]:
        """The inclusive range the door's top edge is drawn from (one value when fixed)."""
        if self.random_wall:
            return self.door_padding, self.size - self.door_padding - self.door_size
        door_y = (self.size - self.door_size) // 2 if self.fixed_door_y is None else self.fixed_door_y
        return door_y, door_y


def check_layout(config: TwoRoomsConfig, wall_x: Any, door_y: Any) -> None:
    """Check that a wall position and door position make two usable rooms.

    Args:
        config: the arena.
        wall_x: left edge of the dividing wall; an int.
        door_y: top edge of the door; an int.

    Raises:
        ConfigError: ``wall_x`` or ``door_y`` is not an int, leaves a room narrower than twice
            ``spawn_margin``, or puts the door outside the arena's interior.
    """
    for name, value in (("wall_x", wall_x), ("door_y", door_y)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"{name} must be an int, got {value!r}")
    b, s, m = config.border, config.size, config.spawn_margin
    lo, hi = b + math.floor(2 * m) + 1, s - b - config.wall_width - math.floor(2 * m) - 1
    if not lo <= wall_x <= hi:
        raise ConfigError(
            f"wall_x={wall_x} must lie in [{lo}, {hi}] so that both rooms are wider than "
            f"2 * spawn_margin={2 * m} inside the {b} px outer wall of a {s} px arena"
        )
    if not b <= door_y <= s - b - config.door_size:
        raise ConfigError(
            f"door_y={door_y} must lie in [{b}, {s - b - config.door_size}] so that the "
            f"{config.door_size} px door opens inside the outer wall"
        )


def clip_norm(action: np.ndarray, max_norm: float) -> np.ndarray:
    """Scale a displacement down to Euclidean norm ``max_norm`` when it is longer.

    Args:
        action: ``(..., 2)`` displacements.
        max_norm: the largest norm kept.

    Returns:
        ``(..., 2)`` float64 displacements of norm at most ``max_norm``, same directions.
    """
    action = np.asarray(action, dtype=np.float64)
    norm = np.linalg.norm(action, axis=-1, keepdims=True)
    return action * np.minimum(1.0, max_norm / np.maximum(norm, 1e-12))


def frame_to_rgb(frame: np.ndarray) -> np.ndarray:
    """A picture of a ``(C, S, S)`` frame: red dot, green goal, grey walls on black.

    Args:
        frame: ``(3, S, S)`` frame in ``[0, 1]`` as :meth:`TwoRoomsLayout.render` draws it.

    Returns:
        ``(S, S, 3)`` uint8 picture.
    """
    dot, walls, goal = np.asarray(frame, dtype=np.float32)
    grey = _WALL_GREY * walls
    rgb = np.stack([np.maximum(grey, dot), np.maximum(grey, goal), grey], axis=-1)  # (S, S, 3)
    return np.round(255.0 * np.clip(rgb, 0.0, 1.0)).astype(np.uint8)


def _entry_time(start: np.ndarray, delta: np.ndarray, rect: np.ndarray) -> float | None:
    """The fraction ``t`` in ``[0, 1]`` of the move at which it first touches a closed rectangle.

    Slab test: the segment ``start + t * delta`` is inside the rectangle for ``t`` in the
    intersection of the per-axis intervals; ``None`` when that intersection misses ``[0, 1]``.
    """
    t_enter, t_leave = 0.0, 1.0
    for axis in range(2):
        lo, hi = rect[axis], rect[axis + 2]
        if delta[axis] == 0.0:
            if not lo <= start[axis] <= hi:
                return None
            continue
        t_lo, t_hi = sorted(((lo - start[axis]) / delta[axis], (hi - start[axis]) / delta[axis]))
        t_enter, t_leave = max(t_enter, t_lo), min(t_leave, t_hi)
        if t_enter > t_leave:
            return None
    return t_enter


@dataclass(frozen=True)
class TwoRoomsLayout:
    """One arrangement of the arena: where the dividing wall and its door are.

    Raises:
        ConfigError: from :func:`check_layout` when the wall or door position is unusable.
    """

    config: TwoRoomsConfig
    wall_x: int  # left edge of the dividing wall (px)
    door_y: int  # top edge of the door (px); the opening is door_y < y < door_y + door_size

    def __post_init__(self) -> None:
        check_layout(self.config, self.wall_x, self.door_y)

    @cached_property
    def walls(self) -> np.ndarray:
        """``(6, 4)`` closed wall rectangles ``(x0, y0, x1, y1)``: 4 outer sides, 2 wall halves."""
        s, b, x = self.config.size, self.config.border, self.wall_x
        x_end, door_end = x + self.config.wall_width, self.door_y + self.config.door_size
        return np.array(
            [
                [0, 0, b, s], [s - b, 0, s, s], [0, 0, s, b], [0, s - b, s, s],
                [x, 0, x_end, self.door_y], [x, door_end, x_end, s],
            ],
            dtype=np.float64,
        )  # fmt: skip

    @cached_property
    def wall_mask(self) -> np.ndarray:
        """``(S, S)`` float32, 1 on the pixels whose centre lies in a wall."""
        centres = np.arange(self.config.size) + 0.5
        x, y = centres[None, :], centres[:, None]  # columns, rows
        mask = np.zeros((self.config.size, self.config.size), dtype=bool)
        for x0, y0, x1, y1 in self.walls:
            mask |= (x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1)
        return mask.astype(np.float32)

    @property
    def door_centre(self) -> np.ndarray:
        """``(2,)`` the centre of the door opening."""
        return np.array(
            [self.wall_x + self.config.wall_width / 2, self.door_y + self.config.door_size / 2],
            dtype=np.float64,
        )

    def is_free(self, x: float, y: float) -> bool:
        """Whether the point lies inside the arena and in no wall."""
        if not (0.0 <= x <= self.config.size and 0.0 <= y <= self.config.size):
            return False
        walls = self.walls
        inside = (walls[:, 0] <= x) & (x <= walls[:, 2]) & (walls[:, 1] <= y) & (y <= walls[:, 3])
        return not bool(inside.any())

    def room_of(self, x: float) -> int:
        """0 left of the dividing wall's centre line, 1 right of it."""
        return int(x >= self.wall_x + self.config.wall_width / 2)

    def room_box(self, room: int) -> tuple[float, float, float, float]:
        """``(x_lo, x_hi, y_lo, y_hi)`` where starts and goals of ``room`` are drawn (``spawn_margin`` in)."""
        c, m = self.config, self.config.spawn_margin
        x_lo, x_hi = (c.border, self.wall_x) if room == 0 else (self.wall_x + c.wall_width, c.size - c.border)
        return x_lo + m, x_hi - m, c.border + m, c.size - c.border - m

    def sample_position(self, rng: np.random.Generator, room: int) -> np.ndarray:
        """A position drawn uniformly in a room, ``spawn_margin`` away from its walls.

        Args:
            rng: the generator to draw from.
            room: 0 (left) or 1 (right).

        Returns:
            ``(2,)`` float64 position.
        """
        x_lo, x_hi, y_lo, y_hi = self.room_box(room)
        return np.array([rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)], dtype=np.float64)

    def check_point(self, name: str, point: Any) -> np.ndarray:
        """A user-given position as a ``(2,)`` float64 array, checked to be a free point.

        Args:
            name: what the point is (``"start"``, ``"goal"``), for the error message.
            point: two finite numbers.

        Returns:
            ``(2,)`` float64 copy of the point.

        Raises:
            ConfigError: the point is not two finite numbers, lies outside the arena's interior,
                or inside the dividing wall.
        """
        array = np.array(point, dtype=np.float64)
        if array.shape != (2,) or not np.isfinite(array).all():
            raise ConfigError(f"{name} must be two finite numbers (x, y), got {point!r}")
        c, (x, y) = self.config, array
        lo, hi = c.border, c.size - c.border
        if not (lo < x < hi and lo < y < hi):
            raise ConfigError(
                f"{name}={tuple(array.tolist())} lies outside the arena's interior ({lo}, {hi})^2"
            )
        if not self.is_free(x, y):
            raise ConfigError(
                f"{name}={tuple(array.tolist())} lies inside the wall x in [{self.wall_x}, "
                f"{self.wall_x + c.wall_width}]; the door spans "
                f"{self.door_y} < y < {self.door_y + c.door_size}"
            )
        return array

    def move(self, position: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Displace a free position by an action, stopping short of the first wall on the way.

        Args:
            position: ``(2,)`` free position.
            action: ``(2,)`` displacement, already clipped.

        Returns:
            ``(2,)`` float64 new free position: ``position + action`` when the segment touches no
            wall, else the point ``CONTACT_GAP`` px before the first contact (no sliding), or the
            unchanged position when that point would not be free.
        """
        position, action = np.asarray(position, dtype=np.float64), np.asarray(action, dtype=np.float64)
        length = float(np.hypot(action[0], action[1]))
        if length == 0.0:
            return position.copy()
        hits = [t for t in (_entry_time(position, action, rect) for rect in self.walls) if t is not None]
        if not hits:
            return position + action
        stop = position + max(min(hits) - CONTACT_GAP / length, 0.0) * action
        return stop if self.is_free(stop[0], stop[1]) else position.copy()

    def render(self, positions: np.ndarray, goal: np.ndarray | None = None) -> np.ndarray:
        """Frames of the dot at ``positions`` (see the module docstring for the channel layout).

        Args:
            positions: ``(..., 2)`` dot positions.
            goal: optional ``(2,)`` goal drawn in channel 2; zeros there when ``None``.

        Returns:
            ``(..., 3, S, S)`` float32 frames in ``[0, 1]``.

        Raises:
            ShapeError: ``positions`` does not end in a dimension of 2.
        """
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape[-1:] != (2,):
            raise ShapeError(f"positions must have shape (..., 2), got {positions.shape}")
        s = self.config.size
        frames = np.zeros((*positions.shape[:-1], 3, s, s), dtype=np.float32)
        frames[..., 0, :, :] = self._blob(positions)
        frames[..., 1, :, :] = self.wall_mask
        if goal is not None:
            frames[..., 2, :, :] = self._blob(np.asarray(goal, dtype=np.float64))
        return frames

    def _blob(self, positions: np.ndarray) -> np.ndarray:
        """``(..., S, S)`` separable Gaussian of peak 1 centred on each ``(..., 2)`` position."""
        centres = np.arange(self.config.size) + 0.5
        inv = -0.5 / self.config.blob_std**2
        gx = np.exp(inv * (centres - positions[..., 0:1]) ** 2)  # (..., S) over columns
        gy = np.exp(inv * (centres - positions[..., 1:2]) ** 2)  # (..., S) over rows
        return gy[..., :, None] * gx[..., None, :]  # (..., S, S)


def sample_layout(config: TwoRoomsConfig, rng: np.random.Generator) -> TwoRoomsLayout:
    """The wall and door of one episode: drawn uniformly from the config's ranges, or fixed.

    Args:
        config: the arena.
        rng: the generator to draw from (two integers are drawn even for a fixed layout, so the
            draws that follow do not depend on ``random_wall``).

    Returns:
        the layout.
    """
    (wall_lo, wall_hi), (door_lo, door_hi) = config.wall_x_range(), config.door_y_range()
    wall_x, door_y = int(rng.integers(wall_lo, wall_hi + 1)), int(rng.integers(door_lo, door_hi + 1))
    return TwoRoomsLayout(config, wall_x, door_y)


class TwoRooms(gym.Env):
    """The Two Rooms goal-reaching task as a gymnasium environment.

    Each episode draws a layout (:func:`sample_layout`), a start uniformly in a random room and a
    goal uniformly in the other room. The reward is minus the distance to the goal; the episode
    terminates within ``success_radius`` of the goal and is truncated after ``max_steps`` steps.
    ``info`` carries ``position``, ``goal``, ``distance``, ``room``, ``wall_x``, ``door_y`` (and
    after a step the clipped ``action`` that was applied).

    Args:
        config: the arena; the default :class:`TwoRoomsConfig` when ``None``.
        render_mode: ``None`` or ``"rgb_array"`` (``render()`` then returns an ``(S, S, 3)``
            uint8 picture with the goal in green).

    Raises:
        ConfigError: an unknown ``render_mode``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: TwoRoomsConfig | None = None, render_mode: str | None = None) -> None:
        self.config = config or TwoRoomsConfig()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode={render_mode!r}; expected None or one of {self.metadata['render_modes']}"
            )
        self.render_mode = render_mode
        s, max_norm = self.config.size, self.config.max_norm
        self.observation_space = spaces.Box(0.0, 1.0, (3, s, s), np.float32)
        self.action_space = spaces.Box(-max_norm, max_norm, (2,), np.float32)
        self._layout: TwoRoomsLayout | None = None
        self._position = np.zeros(2)
        self._goal = np.zeros(2)
        self._steps = 0

    @property
    def layout(self) -> TwoRoomsLayout:
        """The current episode's layout.

        Raises:
            gymnasium.error.ResetNeeded: before the first :meth:`reset`.
        """
        if self._layout is None:
            raise gym.error.ResetNeeded("TwoRooms has no episode yet; call reset() first")
        return self._layout

    @property
    def position(self) -> np.ndarray:
        """``(2,)`` copy of the dot's position."""
        return self._position.copy()

    @property
    def goal(self) -> np.ndarray:
        """``(2,)`` copy of the goal position."""
        return self._goal.copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode.

        Args:
            seed: seeds the episode generator (same seed, same layout, start and goal).
            options: optional overrides ``start`` / ``goal`` (``(x, y)``), ``wall_x`` / ``door_y``
                (ints). A drawn goal lies in the room other than the start's.

        Returns:
            ``(observation, info)``.

        Raises:
            ConfigError: an unknown option, an unusable wall or door position, or a start or goal
                outside the arena's interior or inside the wall.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown TwoRooms reset options {unknown}; expected a subset of {list(RESET_OPTIONS)}"
            )
        # every draw is made whatever the options, so an override does not shift the others
        drawn = sample_layout(self.config, self.np_random)
        layout = TwoRoomsLayout(
            self.config, options.get("wall_x", drawn.wall_x), options.get("door_y", drawn.door_y)
        )
        start_room = int(self.np_random.integers(2))
        start = layout.sample_position(self.np_random, start_room)
        if "start" in options:
            start = layout.check_point("start", options["start"])
        goal = layout.sample_position(self.np_random, 1 - layout.room_of(start[0]))
        if "goal" in options:
            goal = layout.check_point("goal", options["goal"])
        self._layout, self._position, self._goal, self._steps = layout, start, goal, 0
        return self._observation(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one displacement.

        Args:
            action: ``(2,)`` displacement in pixels; its norm is clipped to ``max_norm``.

        Returns:
            ``(observation, reward, terminated, truncated, info)``: reward is minus the distance
            to the goal after the move; terminated within ``success_radius``; truncated once
            ``max_steps`` steps were taken.

        Raises:
            ShapeError: the action is not a real ``(2,)`` array.
            ConfigError: the action holds NaN or infinity.
            gymnasium.error.ResetNeeded: before the first :meth:`reset`.
        """
        layout = self.layout
        array = np.asarray(action)
        if array.shape != (2,) or not (
            np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
        ):
            raise ShapeError(
                f"TwoRooms action must be a real array of shape (2,), got shape {array.shape} ({array.dtype})"
            )
        if not np.isfinite(array).all():
            raise ConfigError(f"TwoRooms action must be finite, got {array.tolist()}")
        applied = clip_norm(array, self.config.max_norm)
        self._position = layout.move(self._position, applied)
        self._steps += 1
        info = self._info()
        info["action"] = applied
        terminated = info["distance"] <= self.config.success_radius
        truncated = self._steps >= self.config.max_steps
        return self._observation(), -info["distance"], bool(terminated), bool(truncated), info

    def render(self) -> np.ndarray | None:
        """The ``(S, S, 3)`` uint8 picture (dot red, goal green, walls grey) in ``"rgb_array"`` mode.

        Returns:
            the picture, or ``None`` when ``render_mode`` is ``None``.
        """
        if self.render_mode is None:
            return None
        return frame_to_rgb(self.layout.render(self._position, goal=self._goal))

    def room_of(self, x: float) -> int:
        """The room (0 left, 1 right) of abscissa ``x`` in the current layout."""
        return self.layout.room_of(x)

    def is_free(self, x: float, y: float) -> bool:
        """Whether ``(x, y)`` lies in no wall of the current layout."""
        return self.layout.is_free(x, y)

    def render_state(
        self, position: np.ndarray, wall_x: int | None = None, door_y: int | None = None
    ) -> np.ndarray:
        """The frame(s) the dot shows at ``position`` (goal channel zero), as observations are.

        Args:
            position: ``(..., 2)`` positions.
            wall_x: the wall's left edge; the current episode's when ``None``.
            door_y: the door's top edge; the current episode's when ``None``.

        Returns:
            ``(..., 3, S, S)`` float32 frames.

        Raises:
            ShapeError: ``position`` does not end in a dimension of 2.
            ConfigError: an unusable ``wall_x`` / ``door_y``.
            gymnasium.error.ResetNeeded: ``wall_x`` or ``door_y`` is ``None`` before the first reset.
        """
        if wall_x is None or door_y is None:
            layout = self.layout
            wall_x = layout.wall_x if wall_x is None else wall_x
            door_y = layout.door_y if door_y is None else door_y
        return TwoRoomsLayout(self.config, wall_x, door_y).render(position)

    def goal_image(self) -> np.ndarray:
        """``(3, S, S)`` float32: the frame of the dot standing on the goal (a planner's target)."""
        return self.layout.render(self._goal)

    def _observation(self) -> np.ndarray:
        return self.layout.render(self._position)

    def _info(self) -> dict[str, Any]:
        layout = self.layout
        return {
            "position": self._position.copy(),
            "goal": self._goal.copy(),
            "distance": float(np.linalg.norm(self._position - self._goal)),
            "room": layout.room_of(self._position[0]),
            "wall_x": int(layout.wall_x),
            "door_y": int(layout.door_y),
        }
