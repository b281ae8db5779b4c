"""ShapesWorld language: captions from a small grammar, and questions with their answers.

Every attribute class has a list of words; the first is its canonical name (used in answers and
class prompts), the others are synonyms a caption may use. Captions pick a template and synonyms
with a generator, so the text of a scene index is as deterministic as its pixels.
"""

from __future__ import annotations

import numpy as np

from mambajepa.data.shapes_render import ATTRIBUTES, Scene, ShapeObject

#: words for each class of each attribute; the first word is the canonical one
WORDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "shape": (
        ("circle", "disc", "round shape"), ("square", "box", "block"), ("triangle", "wedge"),
        ("diamond", "rhombus"), ("cross", "plus sign"), ("star", "five-pointed star"),
    ),
    "colour": (
        ("red", "crimson", "scarlet"), ("orange", "amber"), ("yellow", "golden"), ("green", "emerald"),
        ("cyan", "turquoise", "aqua"), ("blue", "cobalt", "azure"), ("magenta", "fuchsia", "pink"),
        ("white", "snowy", "ivory"),
    ),
    "size": (("small", "tiny", "little"), ("medium", "medium-sized", "mid-sized"), ("large", "big", "huge")),
    "position": (
        ("top left", "upper left", "top-left"), ("top", "top middle", "upper middle"),
        ("top right", "upper right", "top-right"), ("left", "middle left", "left side"),
        ("center", "middle", "centre"), ("right", "middle right", "right side"),
        ("bottom left", "lower left", "bottom-left"), ("bottom", "bottom middle", "lower middle"),
        ("bottom right", "lower right", "bottom-right"),
    ),
    "texture": (
        ("solid", "filled", "plain"), ("outlined", "hollow", "outline"), ("striped", "stripy"),
        ("checkered", "chequered", "checked"),
    ),
    "background": (("black",), ("grey", "gray"), ("navy", "dark blue"), ("brown", "dark brown")),
    "direction": (("right", "rightward"), ("left", "leftward"), ("down", "downward"), ("up", "upward")),
    "speed": (("slowly", "gently"), ("quickly", "fast", "rapidly")),
}  # fmt: skip
COUNT_WORDS = ("one", "two", "three", "four", "five", "six")

QUESTION_TYPES = ("colour", "shape", "position", "size", "texture", "count", "direction")
#: every answer a ShapesWorld question can have (canonical words), in a fixed order
ANSWERS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [w[0] for name in ("shape", "colour", "size", "position", "texture") for w in WORDS[name]]
        + list(COUNT_WORDS)
        + [w[0] for w in WORDS["direction"]]
    )
)

if any(len(WORDS[name]) != len(ATTRIBUTES[name]) for name in WORDS):
    raise ImportError("ShapesWorld WORDS must list one entry per class of every attribute")


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _words(rng: np.random.Generator, obj: ShapeObject) -> dict[str, str]:
    return {
        name: _pick(rng, WORDS[name][getattr(obj, name)])
        for name in ("shape", "colour", "size", "position", "texture", "direction", "speed")
    }


def _object_phrase(rng: np.random.Generator, obj: ShapeObject, video: bool) -> str:
    w = _words(rng, obj)
    style = int(rng.integers(3))
    if style == 0:
        head = f"{w['size']} {w['texture']} {w['colour']} {w['shape']}"
        phrase = f"{_article(head)} {head} in the {w['position']}"
    elif style == 1:
        phrase = f"{w['position'].replace(' ', '-')}: {w['size']} {w['colour']} {w['shape']} ({w['texture']})"
    else:
        head = f"{w['colour']} {w['shape']}"
        phrase = f"{_article(head)} {head}, {w['size']} and {w['texture']}, at the {w['position']}"
    if video:
        phrase += f", moving {w['direction']} {w['speed']}"
    return phrase


def caption(scene: Scene, rng: np.random.Generator, video: bool = False) -> str:
    """Describe a scene in one sentence naming every attribute of every object.

    Args:
        scene: the scene to describe.
        rng: picks the template and the synonyms.
        video: also name each object's motion direction and speed.

    Returns:
        e.g. ``"a small solid crimson disc in the top left on a black background"`` or
        ``"two objects on a grey background: top-left: tiny red circle (striped); ..."``.
    """
    background = _pick(rng, WORDS["background"][scene.background])
    phrases = [_object_phrase(rng, obj, video) for obj in scene.objects]
    if len(phrases) == 1:
        return f"{phrases[0]} on a {background} background"
    count = COUNT_WORDS[len(phrases) - 1]
    return f"{count} objects on a {background} background: " + "; ".join(phrases)


def question_answer(scene: Scene, rng: np.random.Generator, video: bool = False) -> tuple[str, str, str]:
    """Ask one question about a scene whose answer is unambiguous.

    Objects of a scene have distinct shapes and cells, so "the circle" or "the object in the top
    left" each name exactly one object.

    Args:
        scene: the scene asked about.
        rng: picks the question type, the object and the wording.
        video: allow questions about motion direction.

    Returns:
        ``(question_type, question, answer)``; ``answer`` is a canonical word from :data:`ANSWERS`.
    """
    types = QUESTION_TYPES if video else QUESTION_TYPES[:-1]
    qtype = types[int(rng.integers(len(types)))]
    obj = scene.objects[int(rng.integers(len(scene.objects)))]
    shape = _pick(rng, WORDS["shape"][obj.shape])
    position = WORDS["position"][obj.position][0]
    if qtype == "colour":
        question = _pick(
            rng, ("what colour is the {s}?", "what color is the {s}?", "which colour is the {s}?")
        )
        return qtype, question.format(s=shape), WORDS["colour"][obj.colour][0]
    if qtype == "shape":
        question = _pick(rng, ("which shape is in the {p}?", "what shape is at the {p}?"))
        return qtype, question.format(p=position), WORDS["shape"][obj.shape][0]
    if qtype == "position":
        colour = _pick(rng, WORDS["colour"][obj.colour])
        question = _pick(rng, ("where is the {c} {s}?", "in which part of the picture is the {c} {s}?"))
        return qtype, question.format(c=colour, s=shape), position
    if qtype == "size":
        question = _pick(rng, ("how big is the {s}?", "what size is the {s}?"))
        return qtype, question.format(s=shape), WORDS["size"][obj.size][0]
    if qtype == "texture":
        question = _pick(rng, ("what pattern does the {s} have?", "how is the {s} filled?"))
        return qtype, question.format(s=shape), WORDS["texture"][obj.texture][0]
    if qtype == "count":
        question = _pick(rng, ("how many objects are there?", "how many shapes can you see?"))
        return qtype, question, COUNT_WORDS[len(scene.objects) - 1]
    question = _pick(rng, ("which way is the {s} moving?", "in which direction does the {s} move?"))
    return qtype, question.format(s=shape), WORDS["direction"][obj.direction][0]


def class_prompts(attribute: str) -> tuple[str, ...]:
    """One text prompt per class of an attribute, for zero-shot classification.

    Args:
        attribute: a key of :data:`WORDS` (e.g. ``"shape"``).

    Returns:
        Prompts in class order, e.g. ``("a picture of a circle", "a picture of a square", ...)``.
    """
    return tuple(f"a picture of {_article(w[0])} {w[0]}" for w in WORDS[attribute])
