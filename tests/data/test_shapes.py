"""ShapesWorld: determinism, splits, labels that match the pixels, captions, questions, streams."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mambajepa.core.errors import ConfigError
from mambajepa.data import (
    ANSWERS,
    ATTRIBUTES,
    CLASS10,
    WORDS,
    ShapesCaptions,
    ShapesConfig,
    ShapesImages,
    ShapesStream,
    ShapesVideos,
    ShapesVQA,
    attribute_classes,
    caption,
    render,
    sample_scene,
    scene_rng,
)
from mambajepa.data.shapes_render import BACKGROUND_RGB, COLOUR_RGB, SHAPES, Scene, ShapeObject
from mambajepa.data.shapes_text import COUNT_WORDS


def test_same_seed_and_index_give_the_same_item_in_any_order():
    a = ShapesCaptions("train", size=32, num_items=20, seed=3)
    b = ShapesCaptions("train", size=32, num_items=20, seed=3)
    for i in (7, 0, 19, 7):
        x, y = a[i], b[i]
        assert torch.equal(x["image"], y["image"])
        assert x["caption"] == y["caption"]
        assert {k: x[k] for k in ATTRIBUTES} == {k: y[k] for k in ATTRIBUTES}
    other = ShapesCaptions("train", size=32, num_items=20, seed=4)
    assert sum(torch.equal(a[i]["image"], other[i]["image"]) for i in range(20)) < 3


def test_loader_batches_match_items_and_splits_are_disjoint():
    data = ShapesImages("train", size=16, num_items=12)
    batch = next(iter(DataLoader(data, batch_size=12, shuffle=False)))
    assert batch["image"].shape == (12, 3, 16, 16) and batch["image"].dtype == torch.float32
    assert torch.equal(batch["image"][5], data[5]["image"])
    assert batch["shape"].dtype == torch.int64
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    indices = {
        split: {ShapesImages(split, num_items=50).global_index(i) for i in range(50)}
        for split in ("train", "val", "test")
    }
    assert not indices["train"] & indices["val"] and not indices["val"] & indices["test"]
    shuffled = DataLoader(
        data, batch_size=4, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0)
    )
    for part in shuffled:  # items made in worker processes equal the same indices made here
        for k, index in enumerate(part["index"].tolist()):
            assert torch.equal(part["image"][k], data[index]["image"])
    val0 = ShapesImages("val", size=16, num_items=5)[0]["image"]
    assert not torch.equal(val0, data[0]["image"])


def test_label_vocabularies_give_chance_levels_and_labels_stay_in_range():
    classes = attribute_classes(max_objects=3)
    assert len(classes["shape"]) >= 6 and len(classes["colour"]) == 8 and len(classes["size"]) == 3
    assert len(classes["position"]) == 9 and len(classes["count"]) == 3 and len(classes["class10"]) == 10
    data = ShapesImages(num_items=300, config=ShapesConfig(max_objects=3))
    seen = {k: set() for k in ("shape", "colour", "size", "position", "texture", "count")}
    for i in range(300):
        labels = data.scene(i).labels()
        for name in seen:
            assert 0 <= labels[name] < len(classes[name])
            seen[name].add(labels[name])
    # every class of every attribute appears: the labels are not degenerate
    assert all(len(seen[name]) == len(classes[name]) for name in seen)


def test_pixels_show_the_labelled_colour_background_and_size():
    size = 64
    areas = []
    for size_class in range(3):
        obj = ShapeObject(
            shape=1, colour=2, size=size_class, position=4, texture=0, direction=0, speed=0, cx=0.5, cy=0.5
        )
        image = render(Scene(background=1, objects=(obj,)), size)
        assert np.allclose(image[:, size // 2, size // 2], COLOUR_RGB[2], atol=1e-6)
        assert np.allclose(image[:, 0, 0], BACKGROUND_RGB[1], atol=1e-6)
        areas.append((np.abs(image - BACKGROUND_RGB[1][:, None, None]).sum(0) > 0.1).sum())
    assert areas[0] < areas[1] < areas[2]
    # an outlined object has a hollow centre of the background colour
    hollow = ShapeObject(
        shape=0, colour=0, size=2, position=4, texture=1, direction=0, speed=0, cx=0.5, cy=0.5
    )
    image = render(Scene(background=0, objects=(hollow,)), size)
    assert np.allclose(image[:, size // 2, size // 2], BACKGROUND_RGB[0])


def test_the_six_shapes_render_distinct_silhouettes():
    masks = []
    for shape in range(len(SHAPES)):
        obj = ShapeObject(
            shape=shape, colour=7, size=2, position=4, texture=0, direction=0, speed=0, cx=0.5, cy=0.5
        )
        masks.append(render(Scene(background=0, objects=(obj,)), 32)[0] > 0.5)
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert (masks[i] ^ masks[j]).sum() >= 20, (SHAPES[i], SHAPES[j])


def test_video_objects_move_in_the_labelled_direction():
    for direction, (sign_x, sign_y) in enumerate([(1, 0), (-1, 0), (0, 1), (0, -1)]):
        obj = ShapeObject(
            shape=0, colour=0, size=0, position=4, texture=0, direction=direction, speed=1, cx=0.5, cy=0.5
        )
        clip = render(Scene(background=0, objects=(obj,)), 32, num_frames=4)  # (C, T, H, W)
        assert clip.shape == (3, 4, 32, 32)
        red = clip[0]
        ys, xs = np.mgrid[0:32, 0:32]
        centroid = [((red[t] * xs).sum() / red[t].sum(), (red[t] * ys).sum() / red[t].sum()) for t in (0, 3)]
        moved = np.subtract(centroid[1], centroid[0])
        assert np.allclose(moved, [3 * 0.045 * 32 * sign_x, 3 * 0.045 * 32 * sign_y], atol=0.3)
        # away from the borders the first frame is the still image of the scene
        assert np.allclose(clip[:, 0], render(Scene(background=0, objects=(obj,)), 32), atol=1e-5)
    videos = ShapesVideos(num_items=3, size=16, num_frames=5)
    item = videos[1]
    assert item["video"].shape == (3, 5, 16, 16)
    assert item["shape"] == ShapesImages(num_items=3, size=16)[1]["shape"]


def _names(name, index):
    return WORDS[name][index]


def test_captions_name_every_attribute_of_every_object():
    data = ShapesCaptions(num_items=40, config=ShapesConfig(max_objects=3), video=True, num_frames=2)
    templates = set()
    for i in range(40):
        scene, text = data.scene(i), data.text(i)
        unhyphenated = text.replace("-", " ")
        for obj in scene.objects:
            for name in ("shape", "colour", "size", "position", "texture", "direction", "speed"):
                words = _names(name, getattr(obj, name))
                assert any(w in text or w in unhyphenated for w in words), (name, text)
        assert any(w in text for w in _names("background", scene.background)), text
        if len(scene.objects) > 1:
            assert text.startswith(COUNT_WORDS[len(scene.objects) - 1])
        templates.add(text.split(" ")[0])
    assert len(templates) >= 3  # several templates are in use
    single = Scene(background=0, objects=(ShapeObject(0, 0, 0, 0, 0, 0, 0, 0.2, 0.2),))
    texts = {caption(single, np.random.default_rng(k)) for k in range(30)}
    assert any("top-left" in t for t in texts) and any("crimson" in t or "scarlet" in t for t in texts)


def test_questions_have_the_answer_of_the_scene():
    data = ShapesVQA(num_items=60, config=ShapesConfig(max_objects=3), video=True, num_frames=2)
    kinds = set()
    for i in range(60):
        item, scene = data[i], data.scene(i)
        kind = data.question_types[item["question_type"]]
        kinds.add(kind)
        assert ANSWERS[item["answer_id"]] == item["answer"]
        if kind == "count":
            assert item["answer"] == COUNT_WORDS[len(scene.objects) - 1]
            continue
        attribute = {"colour": "colour", "shape": "shape", "position": "position", "size": "size"}.get(
            kind, kind
        )
        answers = {_names(attribute, getattr(obj, attribute))[0] for obj in scene.objects}
        assert item["answer"] in answers
    assert len(kinds) >= 6


def test_ten_class_mode_sets_the_first_objects_shape_and_colour():
    data = ShapesImages(num_items=100, config=ShapesConfig(ten_class=True, max_objects=3))
    counts = np.zeros(10, dtype=int)
    for i in range(100):
        scene = data.scene(i)
        label = scene.labels()["class10"]
        shape, colour = CLASS10[label]
        assert (
            SHAPES[scene.objects[0].shape] == shape
            and ATTRIBUTES["colour"][scene.objects[0].colour] == colour
        )
        assert len({o.shape for o in scene.objects}) == len(scene.objects)
        counts[label] += 1
    assert counts.min() > 0


def test_stream_cuts_are_where_the_scene_changes():
    data = ShapesStream(num_items=2, size=16, num_frames=40, num_scenes=4, min_scene_frames=6)
    item = data[1]
    video, starts, frame_scene = item["video"], item["scene_starts"], item["frame_scene"]
    assert video.shape == (3, 40, 16, 16) and len(item["captions"]) == 4
    assert starts[0] == 0 and torch.all(starts.diff() >= 6)
    assert torch.equal(frame_scene, torch.bucketize(torch.arange(40), starts, right=True) - 1)
    assert torch.equal(data[1]["video"], video)
    for k in range(1, 4):
        cut = int(starts[k])
        assert item["captions"][k] != item["captions"][k - 1]
        assert not torch.equal(video[:, cut], video[:, cut - 1])


def test_bad_configurations_raise_config_error():
    with pytest.raises(ConfigError, match="max_objects"):
        ShapesConfig(max_objects=9)
    with pytest.raises(ConfigError, match="split"):
        ShapesImages("training")
    with pytest.raises(ConfigError, match="size"):
        ShapesImages(size=4)
    with pytest.raises(ConfigError, match="num_scenes"):
        ShapesStream(num_frames=10, num_scenes=4, min_scene_frames=4)
    with pytest.raises(IndexError):
        ShapesImages(num_items=3)[3]


def test_same_scene_for_the_same_rng_seed():
    first = sample_scene(scene_rng(1, 5), ShapesConfig(max_objects=4))
    assert first == sample_scene(scene_rng(1, 5), ShapesConfig(max_objects=4))
    assert np.array_equal(render(first, 24), render(first, 24))


def test_shape_label_is_learnable_from_pixels():
    """A tiny translation-invariant CNN learns the 6-way shape label far above chance (1/6)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions run faster on one thread than on two busy ones
    try:
        accuracy = _train_shape_classifier()
    finally:
        torch.set_num_threads(threads)
    assert accuracy > 0.6, accuracy


def _train_shape_classifier() -> float:
    torch.manual_seed(0)

    def load(split, count):
        data = ShapesImages(split, 32, count)
        items = [data[i] for i in range(count)]
        return torch.stack([it["image"] for it in items]), torch.tensor([it["shape"] for it in items])

    x_train, y_train = load("train", 1500)
    x_val, y_val = load("val", 300)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveMaxPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(32, len(SHAPES)),
    )  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(6):
        order = torch.randperm(len(y_train))
        for start in range(0, len(order), 50):
            batch = order[start : start + 50]
            loss = torch.nn.functional.cross_entropy(net(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return (net(x_val).argmax(1) == y_val).float().mean().item()
