"""ShapesWorld programs: a tiny drawing language whose interpreter is the ShapesWorld renderer.

A program is one ``draw`` statement per object plus exactly one ``background`` statement::

    draw(shape="star", colour="green", size="medium", at="top left", texture="outline"); background("brown")

Grammar (whitespace between tokens is free; statements are separated by ``;`` and/or newlines)::

    program   := sep* statement (sep+ statement)* sep*
    statement := NAME "(" [argument ("," argument)*] ")"
    argument  := NAME "=" STRING | STRING
    STRING    := '"' any characters but '"' and newline '"'

``draw`` takes the keywords ``shape``, ``colour``, ``size``, ``at`` and ``texture``, each exactly once and
in any order, with values from :data:`SHAPES`, :data:`COLOURS`, :data:`SIZES`, :data:`POSITIONS` and
:data:`TEXTURES`. ``background`` takes one positional value from :data:`BACKGROUNDS` and may appear
anywhere; objects keep the order of their ``draw`` statements. Positions are spelled as in
:data:`POSITIONS` (``"top left"``, ``"center"``, ...); the hyphenated ``"top-left"`` is read as the same
cell. Objects need distinct shapes and distinct cells, as :func:`sample_scene` draws them.

A program fixes only what a still image shows. The fields of :class:`ShapeObject` it does not name get
canonical defaults: ``direction`` 0 (``"right"``), ``speed`` 0 (``"slow"``) and a centre exactly at its
cell centre (no jitter), so ``execute(program_of(scene))`` equals ``render(scene, 32)`` for such scenes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from mambajepa.core.errors import MambaJepaError
from mambajepa.data.shapes_render import (
    BACKGROUNDS,
    CELL_CENTRES,
    COLOURS,
    MAX_OBJECTS,
    POSITIONS,
    SHAPES,
    SIZES,
    TEXTURES,
    Scene,
    ShapeObject,
    ShapesConfig,
    render,
)
from mambajepa.data.shapes_text import WORDS


class ProgramError(MambaJepaError, ValueError):
    """A ShapesWorld program that does not tokenize, parse or describe a valid scene."""


#: ``draw`` keyword -> (ShapeObject field, allowed values), in canonical argument order
DRAW_KEYWORDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "shape": ("shape", SHAPES),
    "colour": ("colour", COLOURS),
    "size": ("size", SIZES),
    "at": ("position", POSITIONS),
    "texture": ("texture", TEXTURES),
}
#: attributes scored by :func:`program_accuracy`, besides ``count`` and ``all``
SCORED_ATTRIBUTES = ("shape", "colour", "size", "position", "texture", "background")
FUNCTIONS = ("draw", "background")
#: canonical values of the fields a program does not name (a still image does not show them)
DEFAULT_DIRECTION = 0
DEFAULT_SPEED = 0

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PUNCTUATION = "(),=;"
_OBJECT_FIELDS = tuple(field for field, _ in DRAW_KEYWORDS.values())


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f'"{v}"' for v in values)


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "string", "newline", "end", or the punctuation character itself
    text: str
    line: int
    column: int

    @property
    def where(self) -> str:
        return f"line {self.line}, column {self.column}"

    def describe(self) -> str:
        if self.kind == "end":
            return "end of the program"
        if self.kind == "newline":
            return "newline"
        if self.kind == "string":
            return f'string "{self.text}"'
        return f"'{self.text}'"


@dataclass(frozen=True)
class _Argument:
    keyword: _Token | None  # None for a positional argument
    value: _Token


@dataclass(frozen=True)
class _Statement:
    function: _Token
    arguments: tuple[_Argument, ...]


def _tokenize(text: str) -> list[_Token]:
    """Split a program into tokens, ending with one ``end`` token."""
    tokens: list[_Token] = []
    line, line_start, i = 1, 0, 0
    while i < len(text):
        char, column = text[i], i - line_start + 1
        if char == "\n":
            tokens.append(_Token("newline", "\n", line, column))
            line, line_start, i = line + 1, i + 1, i + 1
        elif char in " \t\r":
            i += 1
        elif char == '"':
            end = text.find('"', i + 1)
            newline = text.find("\n", i + 1)
            if end == -1 or newline != -1 and newline < end:
                raise ProgramError(
                    f"unterminated string starting at line {line}, column {column}: "
                    "expected a closing '\"' before the end of the line"
                )
            tokens.append(_Token("string", text[i + 1 : end], line, column))
            i = end + 1
        elif char in _PUNCTUATION:
            tokens.append(_Token(char, char, line, column))
            i += 1
        elif match := _NAME.match(text, i):
            tokens.append(_Token("name", match.group(), line, column))
            i = match.end()
        else:
            raise ProgramError(
                f"unexpected character {char!r} at line {line}, column {column}: expected a name, "
                "a double-quoted string, a newline or one of ( ) , = ;"
            )
    tokens.append(_Token("end", "", line, len(text) - line_start + 1))
    return tokens


class _Parser:
    """Recursive descent over the token list, following the grammar of the module docstring."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.index += 1
        return token

    def expect(self, kind: str, expected: str) -> _Token:
        token = self.take()
        if token.kind != kind:
            raise ProgramError(f"unexpected {token.describe()} at {token.where}: expected {expected}")
        return token

    def skip_separators(self) -> None:
        while self.peek().kind in (";", "newline"):
            self.index += 1

    def program(self) -> list[_Statement]:
        statements = []
        self.skip_separators()
        while self.peek().kind != "end":
            statements.append(self.statement())
            after = self.peek()
            if after.kind not in (";", "newline", "end"):
                raise ProgramError(
                    f"trailing garbage {after.describe()} at {after.where} after a statement: "
                    "expected ';', a newline or the end of the program"
                )
            self.skip_separators()
        return statements

    def statement(self) -> _Statement:
        function = self.expect("name", "a statement such as draw(...) or background(...)")
        if function.text not in FUNCTIONS:
            raise ProgramError(
                f"unknown function '{function.text}' at {function.where}: expected one of {_quoted(FUNCTIONS)}"
            )
        self.expect("(", f"'(' after '{function.text}'")
        arguments = []
        if self.peek().kind == ")":
            self.take()
            return _Statement(function, ())
        while True:
            arguments.append(self.argument())
            token = self.take()
            if token.kind == ")":
                return _Statement(function, tuple(arguments))
            if token.kind != ",":
                raise ProgramError(
                    f"unexpected {token.describe()} at {token.where}: expected ',' or ')' "
                    f"in the arguments of '{function.text}'"
                )

    def argument(self) -> _Argument:
        token = self.peek()
        if token.kind == "string":
            return _Argument(None, self.take())
        if token.kind == "name" and self.peek(1).kind == "=":
            keyword = self.take()
            self.take()
            value = self.expect("string", f"a double-quoted string after '{keyword.text}='")
            return _Argument(keyword, value)
        raise ProgramError(
            f'unexpected {token.describe()} at {token.where}: expected an argument keyword="value" or "value"'
        )


def _lookup(what: str, value: _Token, allowed: tuple[str, ...]) -> int:
    if value.text not in allowed:
        raise ProgramError(
            f'unknown {what} "{value.text}" at {value.where}: expected one of {_quoted(allowed)}'
        )
    return allowed.index(value.text)


def _canonical_object(shape: int, colour: int, size: int, position: int, texture: int) -> ShapeObject:
    """An object with the given drawn attributes and the canonical defaults for the rest."""
    row, col = divmod(position, 3)
    return ShapeObject(
        shape=shape,
        colour=colour,
        size=size,
        position=position,
        texture=texture,
        direction=DEFAULT_DIRECTION,
        speed=DEFAULT_SPEED,
        cx=CELL_CENTRES[col],
        cy=CELL_CENTRES[row],
    )


def _draw(statement: _Statement) -> ShapeObject:
    given: dict[str, tuple[_Token, _Token]] = {}  # keyword -> (keyword token, value token)
    for argument in statement.arguments:
        if argument.keyword is None:
            raise ProgramError(
                f'positional argument "{argument.value.text}" at {argument.value.where}: draw takes '
                f"keyword arguments only, expected one of {', '.join(DRAW_KEYWORDS)}"
            )
        keyword = argument.keyword
        if keyword.text not in DRAW_KEYWORDS:
            raise ProgramError(
                f"unknown keyword '{keyword.text}' at {keyword.where}: expected one of "
                f"{', '.join(DRAW_KEYWORDS)}"
            )
        if keyword.text in given:
            raise ProgramError(
                f"duplicate keyword '{keyword.text}' at {keyword.where} (first given at "
                f"{given[keyword.text][0].where}): expected each draw keyword once"
            )
        given[keyword.text] = (keyword, argument.value)
    missing = [keyword for keyword in DRAW_KEYWORDS if keyword not in given]
    if missing:
        raise ProgramError(
            f"draw at {statement.function.where} is missing keyword(s) {', '.join(missing)}: expected all of "
            f"{', '.join(DRAW_KEYWORDS)}"
        )
    values = {}
    for keyword, (field, allowed) in DRAW_KEYWORDS.items():
        value = given[keyword][1]
        if field == "position":
            value = replace(value, text=value.text.replace("-", " "))
        values[field] = _lookup(field, value, allowed)
    return _canonical_object(**values)


def _background(statement: _Statement) -> int:
    arguments = statement.arguments
    if len(arguments) != 1 or arguments[0].keyword is not None:
        raise ProgramError(
            f"background at {statement.function.where} got {len(arguments)} argument(s): expected one "
            f'positional value, e.g. background("black")'
        )
    return _lookup("background", arguments[0].value, BACKGROUNDS)


def parse_program(text: str, config: ShapesConfig | None = None) -> Scene:
    """Read a program into the scene it draws.

    Args:
        text: the program (see the module docstring for the grammar).
        config: bounds the number of objects by ``min_objects``/``max_objects``; ``None`` allows
            1 to :data:`MAX_OBJECTS`.

    Returns:
        The :class:`Scene`, objects in the order of their ``draw`` statements, with the canonical
        ``direction``, ``speed`` and cell-centred ``cx``/``cy``.

    Raises:
        ProgramError: naming the offending token and its line and column, or the broken rule, for an
            unterminated string, an unexpected character or token, trailing garbage, an unknown
            function, keyword or value, a missing or duplicate keyword, a missing or repeated
            background, no draw statement, too few or too many objects for ``config``, or two
            objects sharing a shape or a position.
    """
    statements = _Parser(_tokenize(text)).program()
    objects: list[ShapeObject] = []
    where: list[str] = []  # where each object's draw statement starts
    background: int | None = None
    background_at = ""
    for statement in statements:
        function = statement.function
        if function.text == "background":
            if background is not None:
                raise ProgramError(
                    f"repeated background at {function.where} (first at {background_at}): expected "
                    "exactly one background statement"
                )
            background, background_at = _background(statement), function.where
            continue
        obj = _draw(statement)
        for other, other_at in zip(objects, where):
            for field, names in (("shape", SHAPES), ("position", POSITIONS)):
                if getattr(obj, field) == getattr(other, field):
                    raise ProgramError(
                        f'draw at {function.where} repeats the {field} "{names[getattr(obj, field)]}" of '
                        f"the draw at {other_at}: expected objects with distinct shapes and positions"
                    )
        objects.append(obj)
        where.append(function.where)
    if not objects:
        raise ProgramError("the program has no draw statement: expected at least one draw(...)")
    if background is None:
        raise ProgramError("the program has no background statement: expected exactly one background(...)")
    low, high = (1, MAX_OBJECTS) if config is None else (config.min_objects, config.max_objects)
    if not low <= len(objects) <= high:
        raise ProgramError(
            f"the program draws {len(objects)} object(s): the config allows between {low} and {high}"
        )
    return Scene(background=background, objects=tuple(objects))


def program_of(scene: Scene) -> str:
    """The canonical program of a scene.

    Args:
        scene: the scene to write down; only its drawn attributes reach the program.

    Returns:
        One ``draw`` per object in scene order with keywords in :data:`DRAW_KEYWORDS` order, then
        ``background``, joined by ``"; "`` on one line, e.g.
        ``'draw(shape="star", colour="green", size="medium", at="top left", texture="outline");
        background("brown")'``.
    """
    statements = [
        "draw("
        + ", ".join(
            f'{keyword}="{allowed[getattr(obj, field)]}"'
            for keyword, (field, allowed) in DRAW_KEYWORDS.items()
        )
        + ")"
        for obj in scene.objects
    ]
    statements.append(f'background("{BACKGROUNDS[scene.background]}")')
    return "; ".join(statements)


def execute(text: str, size: int = 32, config: ShapesConfig | None = None) -> np.ndarray:
    """Run a program: parse it and render the scene it draws as a still image.

    Args:
        text: the program.
        size: side ``S`` of the image in pixels (>= 8).
        config: bounds the number of objects, as in :func:`parse_program`.

    Returns:
        ``(3, S, S)`` float32 in [0, 1], equal to ``render(parse_program(text, config), size)``.

    Raises:
        ProgramError: when the program does not parse (see :func:`parse_program`).
        ConfigError: when ``size`` < 8.
    """
    return render(parse_program(text, config), size)


def program_accuracy(predicted: str, truth_scene: Scene) -> dict[str, bool]:
    """Score a predicted program against the scene it should draw.

    Objects are matched in order. An object attribute is right when the program draws as many objects
    as the scene and every object has that attribute right.

    Args:
        predicted: the program text, e.g. decoded from a model.
        truth_scene: the scene the program should draw.

    Returns:
        ``{"parsed", "shape", "colour", "size", "position", "texture", "background", "count", "all"}``
        to booleans; ``"all"`` is every attribute and the count right. A program that raises
        :class:`ProgramError` scores ``False`` everywhere.
    """
    try:
        scene = parse_program(predicted)
    except ProgramError:
        return {key: False for key in ("parsed", *SCORED_ATTRIBUTES, "count", "all")}
    count = len(scene.objects) == len(truth_scene.objects)
    scores = {"parsed": True}
    for field in _OBJECT_FIELDS:
        scores[field] = count and all(
            getattr(a, field) == getattr(b, field) for a, b in zip(scene.objects, truth_scene.objects)
        )
    scores["background"] = scene.background == truth_scene.background
    scores["count"] = count
    scores["all"] = all(scores[key] for key in (*SCORED_ATTRIBUTES, "count"))
    return scores


def _instruction(field: str, subject: str, value: int) -> str:
    if field == "shape":
        new = SHAPES[value]
        return f"edit this program so that the {subject} becomes {'an' if new[0] in 'aeiou' else 'a'} {new}"
    if field == "position":
        return f"edit this program so that the {subject} is in the {POSITIONS[value]}"
    return f"edit this program so that the {subject} is {WORDS[field][value][0]}"


def edit_instruction(scene: Scene, rng: np.random.Generator) -> tuple[str, str, str]:
    """An instruction to change one attribute of one object, with the program before and after.

    The object is named by its shape, which is unique within a scene. The new value differs from the
    old one and, for shape and position, from every other object's, so the edited program parses.

    Args:
        scene: the scene whose program is edited.
        rng: picks the object, the attribute and the new value.

    Returns:
        ``(instruction, source_program, edited_program)``, e.g.
        ``("edit this program so that the star is red", 'draw(shape="star", colour="green", ...', ...)``;
        the two programs differ only in that one value.
    """
    k = int(rng.integers(len(scene.objects)))
    obj = scene.objects[k]
    choices: dict[str, list[int]] = {}
    for field, allowed in DRAW_KEYWORDS.values():
        unique = field in ("shape", "position")
        taken = {getattr(o, field) for o in scene.objects} if unique else {getattr(obj, field)}
        free = [value for value in range(len(allowed)) if value not in taken]
        if free:  # a scene with every shape has no free shape
            choices[field] = free
    field = list(choices)[int(rng.integers(len(choices)))]
    value = choices[field][int(rng.integers(len(choices[field])))]
    # only drawn attributes reach the program, so the centre of a moved object can stay as it was
    objects = scene.objects[:k] + (replace(obj, **{field: value}),) + scene.objects[k + 1 :]
    edited = replace(scene, objects=objects)
    return _instruction(field, SHAPES[obj.shape], value), program_of(scene), program_of(edited)
