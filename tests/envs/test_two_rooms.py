"""Two Rooms: gymnasium API, walls that cannot be crossed, clipping, seeding, errors, offline data."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.envs import TwoRooms, TwoRoomsConfig, TwoRoomsLayout, TwoRoomsTrajectories

ENV_ID = "mambajepa-test/TwoRooms-v0"
# the action space is Box(-max_norm, max_norm) by design: actions are displacements in pixels
ADVISORY = "recommend using a symmetric and normalized space"


def _near_the_door(layout: TwoRoomsLayout, rng: np.random.Generator) -> np.ndarray:
    """A free start within 8 px of the door's centre, so that random steps cross often."""
    while True:
        point = layout.door_centre + rng.uniform(-8.0, 8.0, 2)
        if layout.is_free(*point):
            return point


def test_check_env_passes_without_api_warnings():
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=TwoRooms)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(TwoRooms())
        check_env(gym.make(ENV_ID).unwrapped)  # with a spec, so the rgb_array mode is checked too
    messages = [str(w.message) for w in caught]
    assert [m for m in messages if ADVISORY not in m and "not having a spec" not in m] == []
    picture = gym.make(ENV_ID, render_mode="rgb_array")
    picture.reset(seed=0)
    frame = picture.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8


def test_dot_never_enters_a_wall_and_changes_room_only_through_the_door():
    env = TwoRooms()
    rng = np.random.default_rng(0)
    cfg = env.config
    crossings = blocked = steps = 0
    for episode in range(40):
        _, info = env.reset(seed=episode)
        if episode % 2:
            _, info = env.reset(seed=episode, options={"start": _near_the_door(env.layout, rng)})
        door_lo, door_hi = info["door_y"], info["door_y"] + cfg.door_size
        wall_lo, wall_hi = info["wall_x"], info["wall_x"] + cfg.wall_width
        for _ in range(50):
            angle = rng.uniform(-math.pi, math.pi)
            action = cfg.max_norm * np.array([math.cos(angle), math.sin(angle)])
            before = env.position
            _, _, _, _, info = env.step(action)
            after, steps = info["position"], steps + 1
            along = before + np.linspace(0.0, 1.0, 33)[:, None] * (after - before)  # (33, 2)
            assert all(env.is_free(x, y) for x, y in along), (before, after)
            blocked += not np.allclose(after - before, action)
            if env.room_of(before[0]) != env.room_of(after[0]):
                crossings += 1
                # where the segment runs inside the wall's x-band, its y lies in the door
                x_lo, x_hi = sorted((before[0], after[0]))
                for x in (np.clip(wall_lo, x_lo, x_hi), np.clip(wall_hi, x_lo, x_hi)):
                    y = before[1] + (x - before[0]) / (after[0] - before[0]) * (after[1] - before[1])
                    assert door_lo < y < door_hi, (before, after, info["door_y"])
    assert steps == 2000 and crossings >= 10 and blocked >= 50


def test_max_norm_moves_into_the_wall_stop_before_it():
    env = TwoRooms(TwoRoomsConfig(random_wall=False))
    _, info = env.reset(seed=0)
    wall_x, door_y = info["wall_x"], info["door_y"]
    for y in (door_y - 0.01, door_y + env.config.door_size + 0.01, 10.0, 50.0):  # just outside the door too
        env.reset(seed=0, options={"start": (wall_x - 0.5, y)})
        for _ in range(5):
            _, _, _, _, info = env.step(np.array([100.0, 0.0]))
            assert wall_x - 0.5 - 1e-9 <= info["position"][0] < wall_x and info["position"][1] == y
    env.reset(seed=0, options={"start": (wall_x - 0.5, door_y + 4.0)})
    _, _, _, _, info = env.step(np.array([100.0, 0.0]))
    assert info["room"] == 1 and info["position"][0] == pytest.approx(wall_x - 0.5 + env.config.max_norm)


def test_actions_are_clipped_to_max_norm_in_free_space():
    env = TwoRooms(TwoRoomsConfig(random_wall=False))
    env.reset(seed=0, options={"start": (15.0, 30.0)})
    for action in ([10.0, 0.0], [-3.0, 4.0], [1.0, -1.0], [0.0, 0.0]):
        before = env.position
        _, _, _, _, info = env.step(np.array(action, dtype=np.float32))
        norm = np.linalg.norm(action)
        expected = np.array(action) * min(1.0, env.config.max_norm / norm) if norm else np.zeros(2)
        np.testing.assert_allclose(info["action"], expected, rtol=1e-6)
        np.testing.assert_allclose(info["position"] - before, expected, rtol=1e-6, atol=1e-9)


def test_same_seed_reproduces_the_episode_and_other_seeds_differ():
    actions = np.random.default_rng(1).uniform(-3.0, 3.0, (30, 2))
    runs = []
    for _ in range(2):
        env = TwoRooms()
        obs, info = env.reset(seed=7)
        frames, positions = [obs], [info["position"]]
        for action in actions:
            obs, _, _, _, info = env.step(action)
            frames.append(obs)
            positions.append(info["position"])
        runs.append((np.stack(frames), np.stack(positions), info["wall_x"], info["door_y"]))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][2:] == runs[1][2:]
    env = TwoRooms()
    infos = [env.reset(seed=seed)[1] for seed in range(10)]
    assert len({tuple(info["position"]) for info in infos}) == 10
    assert len({(info["wall_x"], info["door_y"]) for info in infos}) > 5


def test_default_start_and_goal_lie_in_different_rooms_and_the_goal_image_matches():
    env = TwoRooms()
    for seed in range(50):
        obs, info = env.reset(seed=seed)
        assert env.room_of(info["goal"][0]) != info["room"]
        assert env.is_free(*info["goal"]) and env.is_free(*info["position"])
        assert np.array_equal(obs, env.render_state(info["position"]))
        assert np.array_equal(
            env.goal_image(), env.render_state(info["goal"], info["wall_x"], info["door_y"])
        )
        assert obs.dtype == np.float32 and obs.min() >= 0.0 and obs.max() <= 1.0 and not obs[2].any()
    fixed = TwoRooms(TwoRoomsConfig(random_wall=False))
    infos = [fixed.reset(seed=seed)[1] for seed in range(5)]
    assert {(info["wall_x"], info["door_y"]) for info in infos} == {(30, 28)}


def test_reaching_the_goal_terminates_and_max_steps_truncates():
    env = TwoRooms(TwoRoomsConfig(max_steps=3))
    _, info = env.reset(seed=0, options={"start": (10.0, 30.0), "goal": (16.0, 30.0)})
    assert info["distance"] == pytest.approx(6.0)
    _, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0]))
    assert reward == pytest.approx(-5.0) and not terminated and not truncated
    _, reward, terminated, truncated, _ = env.step(np.array([1.0, 0.0]))
    assert reward == pytest.approx(-4.0) and terminated and not truncated
    _, _, _, truncated, _ = env.step(np.array([0.0, 0.0]))
    assert truncated


def test_bad_inputs_raise_typed_errors_naming_the_value():
    env = TwoRooms(TwoRoomsConfig(random_wall=False))
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(2))
    env.reset(seed=0)
    with pytest.raises(ShapeError, match=r"\(3,\)"):
        env.step(np.zeros(3))
    with pytest.raises(ConfigError, match="nan"):
        env.step(np.array([np.nan, 0.0]))
    with pytest.raises(ConfigError, match="inf"):
        env.step(np.array([0.0, np.inf]))
    with pytest.raises(ConfigError, match=r"goal=\(70.0, 10.0\) lies outside"):
        env.reset(seed=0, options={"goal": (70.0, 10.0)})
    with pytest.raises(ConfigError, match=r"goal=\(31.0, 10.0\) lies inside the wall"):
        env.reset(seed=0, options={"goal": (31.0, 10.0)})
    with pytest.raises(ConfigError, match="wall_x=2"):
        env.reset(seed=0, options={"wall_x": 2})
    with pytest.raises(ConfigError, match="'speed'"):
        env.reset(seed=0, options={"speed": 1})
    with pytest.raises(ConfigError, match="size=0"):
        TwoRoomsConfig(size=0)
    with pytest.raises(ConfigError, match="max_norm"):
        TwoRoomsConfig(max_norm=float("nan"))
    with pytest.raises(ConfigError, match="wall_padding=40"):
        TwoRoomsConfig(wall_padding=40)
    with pytest.raises(ConfigError, match="render_mode='human'"):
        TwoRooms(render_mode="human")
    for kwargs, name in (
        ({"num_items": 0}, "num_items"),
        ({"length": 1}, "length"),
        ({"cross_fraction": 1.5}, "cross_fraction"),
        ({"step_std": -0.1}, "step_std"),
    ):
        with pytest.raises(ConfigError, match=name):
            TwoRoomsTrajectories(**{"num_items": 4, **kwargs})


def test_trajectories_are_deterministic_well_formed_and_match_the_renderer():
    data = TwoRoomsTrajectories(12, seed=3)
    item = data[5]
    assert item["frames"].shape == (17, 3, 64, 64) and item["frames"].dtype == torch.float32
    assert item["actions"].shape == (16, 2) and item["positions"].shape == (17, 2)
    again = TwoRoomsTrajectories(12, seed=3)
    for index in (5, 0, 11):
        assert all(torch.equal(again[index][k], data[index][k]) for k in ("frames", "actions", "positions"))
    assert not torch.equal(data[0]["positions"], data[1]["positions"])
    assert not torch.equal(TwoRoomsTrajectories(12, seed=4)[5]["positions"], item["positions"])
    env = TwoRooms()
    for index in range(12):
        item = data[index]
        positions = item["positions"].double().numpy()
        frames = env.render_state(positions, item["wall_x"], item["door_y"])
        np.testing.assert_allclose(item["frames"].numpy(), frames, atol=1e-5)
        steps = np.linalg.norm(np.diff(positions, axis=0), axis=-1)
        assert (torch.linalg.vector_norm(item["actions"], dim=-1) <= env.config.max_norm + 1e-5).all()
        assert (steps <= torch.linalg.vector_norm(item["actions"].double(), dim=-1).numpy() + 1e-4).all()
    with pytest.raises(IndexError):
        data[12]


def test_the_share_of_trajectories_that_change_room_is_the_cross_fraction():
    def share(data: TwoRoomsTrajectories) -> float:
        crossed = 0
        for index in range(len(data)):
            item = data[index]
            rooms = item["positions"][:, 0] >= item["wall_x"] + data.config.wall_width / 2
            crossed += bool((rooms != rooms[0]).any())
        return crossed / len(data)

    assert abs(share(TwoRoomsTrajectories(300, seed=0)) - 0.35) < 0.08
    assert share(TwoRoomsTrajectories(40, seed=1, cross_fraction=0.0)) == 0.0
    assert share(TwoRoomsTrajectories(40, seed=1, cross_fraction=1.0)) == 1.0
    fixed = TwoRoomsTrajectories(20, config=TwoRoomsConfig(random_wall=False))
    assert {(fixed[i]["wall_x"], fixed[i]["door_y"]) for i in range(20)} == {(30, 28)}
