"""ShapesWorld scenes: attribute vocabularies, deterministic sampling and vectorised rendering.

A scene is a background plus one or more objects. Each object has a shape, colour, size, a cell of
a 3x3 grid, a texture, and (for video) a motion direction and speed. Scenes are drawn from a
``numpy`` generator seeded by ``(seed, index)``, so the same index always gives the same scene,
whatever the order or the process that asks for it. Rendering is one pass of array arithmetic
per object over the whole pixel grid (and every frame at once for video), with anti-aliased
edges from signed distances.

Dimension legend: ``C`` colour channels (3), ``T`` frames, ``H``/``W`` pixel rows/columns,
``S`` image side in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mambajepa.core.errors import ConfigError

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star")
COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "magenta", "white")
SIZES = ("small", "medium", "large")
POSITIONS = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)  # fmt: skip
TEXTURES = ("solid", "outline", "striped", "checkered")
BACKGROUNDS = ("black", "grey", "navy", "brown")
DIRECTIONS = ("right", "left", "down", "up")
SPEEDS = ("slow", "fast")
#: the 10 classes of the CIFAR-style task: each is one (shape, colour) pair
CLASS10 = (
    ("circle", "red"), ("square", "blue"), ("triangle", "green"), ("diamond", "yellow"),
    ("cross", "magenta"), ("star", "orange"), ("circle", "cyan"), ("square", "white"),
    ("triangle", "orange"), ("star", "blue"),
)  # fmt: skip
CLASS10_NAMES = tuple(f"{colour} {shape}" for shape, colour in CLASS10)

COLOUR_RGB = np.array(
    [
        [0.95, 0.10, 0.10], [1.00, 0.55, 0.00], [0.98, 0.92, 0.10], [0.10, 0.80, 0.20],
        [0.10, 0.88, 0.92], [0.15, 0.35, 1.00], [0.92, 0.15, 0.85], [1.00, 1.00, 1.00],
    ],
    dtype=np.float32,
)  # fmt: skip
BACKGROUND_RGB = np.array(
    [[0.0, 0.0, 0.0], [0.30, 0.30, 0.30], [0.05, 0.07, 0.25], [0.25, 0.15, 0.07]], dtype=np.float32
)
#: object radius as a fraction of the image side, per size class
SIZE_RADIUS = (0.14, 0.19, 0.24)
#: displacement per frame as a fraction of the image side, per speed class
SPEED_STEP = (0.02, 0.045)
#: centre of grid rows/columns as a fraction of the side, pulled in so large objects stay visible
CELL_CENTRES = (0.22, 0.5, 0.78)
DIRECTION_VEC = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=np.float32)

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "colour": COLOURS,
    "size": SIZES,
    "position": POSITIONS,
    "texture": TEXTURES,
    "background": BACKGROUNDS,
    "direction": DIRECTIONS,
    "speed": SPEEDS,
}
MAX_OBJECTS = len(SHAPES)


def attribute_classes(max_objects: int = 1) -> dict[str, tuple[str, ...]]:
    """Class names of every per-scene label, including ``count`` and ``class10``.

    Args:
        max_objects: the most objects a scene may hold (sets the ``count`` classes).

    Returns:
        ``{label: class names}``; ``len(names)`` is the number of classes and
        ``1 / len(names)`` the chance level of a probe on a balanced split.
    """
    classes = dict(ATTRIBUTES)
    classes["count"] = tuple(str(n) for n in range(1, max_objects + 1))
    classes["class10"] = CLASS10_NAMES
    return classes


@dataclass(frozen=True)
class ShapesConfig:
    """How ShapesWorld scenes are drawn."""

    min_objects: int = 1  # fewest objects in a scene
    max_objects: int = 1  # most objects in a scene (distinct shapes, distinct grid cells)
    vary_background: bool = True  # draw the background from BACKGROUNDS, else always black
    ten_class: bool = False  # first object's (shape, colour) drawn from CLASS10, uniformly
    jitter: float = 0.04  # random offset of an object's centre from its cell centre (fraction of side)

    def __post_init__(self) -> None:
        if not 1 <= self.min_objects <= self.max_objects <= MAX_OBJECTS:
            raise ConfigError(
                f"ShapesConfig needs 1 <= min_objects <= max_objects <= {MAX_OBJECTS}, "
                f"got min_objects={self.min_objects}, max_objects={self.max_objects}"
            )
        if not 0.0 <= self.jitter <= 0.1:
            raise ConfigError(f"ShapesConfig.jitter must lie in [0, 0.1], got {self.jitter}")


@dataclass(frozen=True)
class ShapeObject:
    """One object of a scene; every attribute is an index into its vocabulary."""

    shape: int
    colour: int
    size: int
    position: int
    texture: int
    direction: int
    speed: int
    cx: float  # centre x at frame 0, fraction of the side
    cy: float  # centre y at frame 0, fraction of the side


@dataclass(frozen=True)
class Scene:
    """A background and its objects (the first object carries the per-scene labels)."""

    background: int
    objects: tuple[ShapeObject, ...]

    def labels(self) -> dict[str, int]:
        """Integer label of every attribute: the first object's, the background and the count.

        ``count`` is the class index (number of objects - 1, names in :func:`attribute_classes`);
        ``class10`` is the CLASS10 index of the first object's (shape, colour), or -1 when that
        pair is not one of the ten.
        """
        first = self.objects[0]
        pair = (SHAPES[first.shape], COLOURS[first.colour])
        return {
            "shape": first.shape,
            "colour": first.colour,
            "size": first.size,
            "position": first.position,
            "texture": first.texture,
            "background": self.background,
            "direction": first.direction,
            "speed": first.speed,
            "count": len(self.objects) - 1,
            "class10": CLASS10.index(pair) if pair in CLASS10 else -1,
        }


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator that draws scene ``index`` of the world seeded by ``seed``."""
    return np.random.default_rng((int(seed), int(index)))


def sample_scene(rng: np.random.Generator, config: ShapesConfig = ShapesConfig()) -> Scene:
    """Draw one scene.

    Args:
        rng: source of randomness (see :func:`scene_rng`).
        config: number of objects, background and class options.

    Returns:
        A :class:`Scene` whose objects have distinct shapes and distinct grid cells.
    """
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    background = int(rng.integers(len(BACKGROUNDS))) if config.vary_background else 0
    shapes = rng.permutation(len(SHAPES))[:count]
    cells = rng.permutation(len(POSITIONS))[:count]
    colours = rng.integers(len(COLOURS), size=count)
    if config.ten_class:
        shape_name, colour_name = CLASS10[int(rng.integers(len(CLASS10)))]
        first_shape = SHAPES.index(shape_name)
        # keep shapes distinct: the object that held the class shape swaps with the first one
        shapes = np.where(shapes == first_shape, shapes[0], shapes)
        shapes[0] = first_shape
        colours[0] = COLOURS.index(colour_name)
    sizes = rng.integers(len(SIZES), size=count)
    textures = rng.integers(len(TEXTURES), size=count)
    directions = rng.integers(len(DIRECTIONS), size=count)
    speeds = rng.integers(len(SPEEDS), size=count)
    offsets = rng.uniform(-config.jitter, config.jitter, size=(count, 2))
    objects = []
    for k in range(count):
        row, col = divmod(int(cells[k]), 3)
        objects.append(
            ShapeObject(
                shape=int(shapes[k]),
                colour=int(colours[k]),
                size=int(sizes[k]),
                position=int(cells[k]),
                texture=int(textures[k]),
                direction=int(directions[k]),
                speed=int(speeds[k]),
                cx=CELL_CENTRES[col] + float(offsets[k, 0]),
                cy=CELL_CENTRES[row] + float(offsets[k, 1]),
            )
        )
    return Scene(background=background, objects=tuple(objects))


def _box(u: np.ndarray, v: np.ndarray, a: float, b: float) -> np.ndarray:
    return np.maximum(np.abs(u) - a, np.abs(v) - b)


def _signed_distance(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) to a shape of unit radius at the origin, y pointing down."""
    name = SHAPES[shape]
    if name == "circle":
        return np.sqrt(u * u + v * v) - 1.0
    if name == "square":
        return _box(u, v, 0.82, 0.82)
    if name == "diamond":
        return (np.abs(u) + np.abs(v) - 1.05) * 0.7071
    if name == "triangle":  # pointing up; inradius 0.58
        side = 0.866 * np.abs(u) - 0.5 * v
        return np.maximum(v, side) - 0.58
    if name == "cross":
        return np.minimum(_box(u, v, 1.0, 0.28), _box(u, v, 0.28, 1.0))
    # five-pointed star, one point up: radius moves linearly between inner and outer with angle
    rho = np.sqrt(u * u + v * v)
    sector = 2.0 * np.pi / 5.0
    frac = np.mod(np.arctan2(v, u) + np.pi / 2.0, sector) / sector  # 0 at a point, 0.5 between
    tip = np.abs(2.0 * frac - 1.0)  # 1 at a point, 0 between two points
    return (rho - (0.45 + 0.65 * tip)) * 0.6


def render(scene: Scene, size: int, num_frames: int | None = None) -> np.ndarray:
    """Rasterise a scene as an image or, with ``num_frames``, a clip of moving objects.

    In a clip each object moves by its speed along its direction every frame and wraps around the
    borders, so its direction stays a clean label. A still image never wraps.

    Args:
        scene: the scene to draw.
        size: side ``S`` of the square frame in pixels (>= 8).
        num_frames: number of frames ``T``; ``None`` renders one still image.

    Returns:
        ``(3, S, S)`` float32 in [0, 1] for an image, ``(3, T, S, S)`` for a clip.

    Raises:
        ConfigError: when ``size`` < 8 or ``num_frames`` < 1.
    """
    if size < 8:
        raise ConfigError(f"ShapesWorld images need size >= 8 pixels, got {size}")
    if num_frames is not None and num_frames < 1:
        raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
    frames = 1 if num_frames is None else num_frames
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    px = grid[None, None, :]  # (1, 1, W)
    py = grid[None, :, None]  # (1, H, 1)
    t = np.arange(frames, dtype=np.float32)[:, None, None]  # (T, 1, 1)
    image = np.broadcast_to(BACKGROUND_RGB[scene.background][:, None, None, None], (3, frames, size, size))
    image = image.copy()  # (C, T, H, W)
    for obj in scene.objects:
        radius = SIZE_RADIUS[obj.size]
        dx = px - obj.cx  # (T, 1, W) once moved
        dy = py - obj.cy  # (T, H, 1) once moved
        if num_frames is not None:
            step = SPEED_STEP[obj.speed] * DIRECTION_VEC[obj.direction]
            dx = np.mod(dx - step[0] * t + 0.5, 1.0) - 0.5
            dy = np.mod(dy - step[1] * t + 0.5, 1.0) - 0.5
        dist_px = _signed_distance(obj.shape, dx / radius, dy / radius) * (radius * size)  # (T, H, W)
        texture = TEXTURES[obj.texture]
        if texture == "outline":
            width = max(1.2, 0.22 * radius * size)
            alpha = np.clip(0.5 + width / 2 - np.abs(dist_px + width / 2), 0.0, 1.0)
        else:
            alpha = np.clip(0.5 - dist_px, 0.0, 1.0)
        colour = COLOUR_RGB[obj.colour][:, None, None, None]  # (C, 1, 1, 1)
        if texture in ("striped", "checkered"):
            # pattern cells of 1/9 of the side (at least 2 px), fixed to the object so they move with it
            cells = (size / max(2.0, size / 9.0)) * np.stack(np.broadcast_arrays(dx, dy))  # (2, T, H, W)
            if texture == "checkered":
                on = np.mod(np.floor(cells[0]) + np.floor(cells[1]), 2.0)
            else:  # diagonal stripes
                on = np.mod(np.floor(cells[0] + cells[1]), 2.0)
            shade = 0.5 + 0.5 * on  # (T, H, W); dark half bright enough to keep the silhouette
            paint = colour * shade[None]
        else:
            paint = colour
        image += alpha[None] * (paint - image)
    image = np.clip(image, 0.0, 1.0, out=image)
    return image[:, 0] if num_frames is None else image
