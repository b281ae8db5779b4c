"""ShapesWorld programs: round trips through the parser, the renderer as interpreter, errors, scoring, edits."""

import re
from dataclasses import replace

import numpy as np
import pytest

from mambajepa.data.shapes_program import (
    DRAW_KEYWORDS,
    ProgramError,
    edit_instruction,
    execute,
    parse_program,
    program_accuracy,
    program_of,
)
from mambajepa.data.shapes_render import (
    CELL_CENTRES,
    SHAPES,
    TEXTURES,
    Scene,
    ShapesConfig,
    render,
    sample_scene,
    scene_rng,
)

FIELDS = ("shape", "colour", "size", "position", "texture")
STAR = 'draw(shape="star", colour="green", size="medium", at="top left", texture="outline")'
CIRCLE = 'draw(shape="circle", colour="red", size="small", at="center", texture="solid")'


def _scenes(n: int = 200) -> list[Scene]:
    """Half single-object scenes, half with up to six objects."""
    return [sample_scene(scene_rng(0, i), ShapesConfig(max_objects=1 if i % 2 else 6)) for i in range(n)]


def _drawn(scene: Scene) -> tuple:
    return scene.background, tuple(tuple(getattr(o, f) for f in FIELDS) for o in scene.objects)


def _canonical(scene: Scene) -> Scene:
    """The scene with the defaults a program gives to what it does not draw."""
    objects = tuple(
        replace(o, direction=0, speed=0, cx=CELL_CENTRES[o.position % 3], cy=CELL_CENTRES[o.position // 3])
        for o in scene.objects
    )
    return replace(scene, objects=objects)


def test_program_of_is_canonical_and_deterministic():
    scene = parse_program(f'{STAR}; background("brown")')
    assert program_of(scene) == f'{STAR}; background("brown")'
    assert all(program_of(s) == program_of(s) for s in _scenes(10))


def test_parse_inverts_program_of_on_drawn_attributes():
    scenes = _scenes()
    assert {len(s.objects) for s in scenes} >= {1, 2, 3}
    for scene in scenes:
        assert _drawn(parse_program(program_of(scene))) == _drawn(scene)


def test_execute_equals_render_of_canonical_scenes():
    for scene in _scenes(60):
        canonical = _canonical(scene)
        parsed = parse_program(program_of(canonical))
        assert parsed == canonical
        assert np.array_equal(execute(program_of(canonical)), render(canonical, 32))
    assert execute(program_of(canonical), size=16).shape == (3, 16, 16)


def test_keyword_order_separators_and_whitespace_do_not_matter():
    reference = parse_program(f'{STAR}; {CIRCLE}; background("navy")')
    variants = (
        'draw( texture = "outline" , at="top left",size="medium",colour="green",shape="star" )\n'
        '\tdraw(at="center", shape="circle", texture="solid", size="small", colour="red");;\n\n'
        '  background( "navy" )  \n',
        f'background("navy")\n{STAR}\n{CIRCLE}',
        f'{STAR.replace("top left", "top-left")};\n{CIRCLE};background("navy");',
    )
    for text in variants:
        assert parse_program(text) == reference


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('paint(shape="star"); background("black")', r"unknown function 'paint' at line 1, column 1"),
        (STAR.replace("colour", "color") + '; background("black")', r"unknown keyword 'color'.*colour"),
        (STAR.replace(', texture="outline"', "") + '; background("black")', r"missing keyword\(s\) texture"),
        (STAR.replace(")", ', size="large")') + '; background("black")', r"duplicate keyword 'size'"),
        (STAR.replace("green", "purple") + '; background("black")', r'unknown colour "purple".*"red"'),
        (STAR.replace("top left", "middle") + '; background("black")', r'unknown position "middle"'),
        (f'{STAR}; background("pink")', r'unknown background "pink".*"navy"'),
        (STAR, r"no background statement"),
        (f'{STAR}; background("black"); background("grey")', r"repeated background at line 1, column"),
        ('background("black")', r"no draw statement"),
        ("", r"no draw statement"),
        (
            f'{STAR}; {STAR.replace("star", "circle")}; background("black")',
            r'repeats the position "top left"',
        ),
        (f'{STAR}; {STAR.replace("top left", "top")}; background("black")', r'repeats the shape "star"'),
        (f'{STAR}; background("black', r"unterminated string starting at line 1, column"),
        ('draw(shape="star\n", colour="green")', r"unterminated string"),
        (f'{STAR}; background("black") extra', r"trailing garbage 'extra' at line 1.*expected ';'"),
        (f'{STAR}; background("black"))', r"trailing garbage"),
        (f'{STAR} {CIRCLE}; background("black")', r"trailing garbage 'draw'"),
        (f'{STAR}; background(colour="black")', r"expected one positional value"),
        (f"{STAR}; background()", r"got 0 argument"),
        ('draw("star"); background("black")', r"keyword arguments only"),
        (
            STAR.replace('"star"', "star") + '; background("black")',
            r"expected a double-quoted string after 'shape='",
        ),
        (STAR.replace(", colour", " colour") + '; background("black")', r"expected ',' or '\)'"),
        (f'{STAR}; background "black"', r"expected '\(' after 'background'"),
        (f'{STAR}; background("black") # done', r"unexpected character '#'"),
        (f"{STAR};\n(", r"unexpected '\(' at line 2, column 1: expected a statement"),
    ],
)
def test_malformed_programs_raise_program_error_naming_the_problem(text, match):
    with pytest.raises(ProgramError, match=match):
        parse_program(text)


def test_object_count_is_bounded_by_the_config():
    text = f'{STAR}; {CIRCLE}; background("black")'
    assert len(parse_program(text, ShapesConfig(max_objects=2)).objects) == 2
    with pytest.raises(ProgramError, match=r"draws 2 object\(s\): the config allows between 1 and 1"):
        parse_program(text, ShapesConfig(max_objects=1))
    with pytest.raises(ProgramError, match=r"draws 2 object\(s\)"):
        execute(text, config=ShapesConfig(min_objects=3, max_objects=4))


def test_program_accuracy_scores_each_attribute():
    truth = _scenes(2)[0]
    assert len(truth.objects) > 1
    right = program_accuracy(program_of(truth), truth)
    assert right == dict.fromkeys(right, True) and "texture" in right

    wrong_texture = replace(truth.objects[1], texture=(truth.objects[1].texture + 1) % len(TEXTURES))
    wrong = replace(truth, objects=(truth.objects[0], wrong_texture, *truth.objects[2:]))
    scores = program_accuracy(program_of(wrong), truth)
    assert [key for key, ok in scores.items() if not ok] == ["texture", "all"]

    missing = replace(truth, objects=truth.objects[:1])
    scores = program_accuracy(program_of(missing), truth)
    assert scores["parsed"] and scores["background"] and not scores["count"] and not scores["shape"]

    broken = program_accuracy(program_of(truth)[:-2], truth)
    assert broken == dict.fromkeys(right, False)


def _arguments(program: str) -> list[tuple[int, str, str]]:
    """(statement index, keyword or function, value) of every argument of a canonical program."""
    return [
        (k, name, value)
        for k, statement in enumerate(program.split("; "))
        for name, value in re.findall(r'(\w+)[=(]"([^"]*)"', statement)
    ]


def test_edit_instruction_changes_exactly_one_named_value():
    rng = np.random.default_rng(0)
    edited_keywords = set()
    for scene in _scenes(100):
        instruction, source, edited = edit_instruction(scene, rng)
        assert source == program_of(scene)
        parse_program(edited)
        before, after = _arguments(source), _arguments(edited)
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert len(before) == len(after) and len(changed) == 1
        (k, keyword, old), (_, _, new) = changed[0]
        assert keyword in DRAW_KEYWORDS and old != new and new in instruction
        assert instruction.startswith(f"edit this program so that the {SHAPES[scene.objects[k].shape]} ")
        edited_keywords.add(keyword)
    assert edited_keywords == set(DRAW_KEYWORDS)


def test_edit_instruction_skips_shape_when_every_shape_is_used():
    full = sample_scene(scene_rng(1, 0), ShapesConfig(min_objects=6, max_objects=6))
    rng = np.random.default_rng(1)
    for _ in range(30):
        instruction, _, edited = edit_instruction(full, rng)
        assert "becomes" not in instruction
        assert len(parse_program(edited).objects) == 6
