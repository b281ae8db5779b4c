"""CEM / MPPI planners and the MPC controller on problems whose optimum is known in closed form.

The toy world is a point in 2-D moved by displacements: ``x_t = x_0 + sum_{s<=t} a_s``.
"""

from __future__ import annotations

import math

import pytest
import torch

from mambajepa.core.errors import ConfigError, ShapeError
from mambajepa.planning import (
    CEMPlanner,
    MPCController,
    MPPIPlanner,
    NonFiniteCostError,
    PlannerConfig,
    PlanResult,
    SamplingPlanner,
    latent_goal_cost,
    project_to_ball,
    shift_plan,
)

PLANNERS = [CEMPlanner, MPPIPlanner]
START = torch.tensor([0.5, -0.5])
GOAL = torch.tensor([3.0, -2.0])  # distance ~2.9 from START: reachable in 5 steps of norm <= 1


def point_rollout(actions: torch.Tensor) -> torch.Tensor:
    """``(N, H, 2)`` displacements -> ``(N, H, 2)`` positions after each step."""
    return START + actions.cumsum(dim=1)


class Recorder:
    """Rollout wrapper that keeps every batch of actions it was called with."""

    def __init__(self, rollout=point_rollout) -> None:
        self.rollout = rollout
        self.calls: list[torch.Tensor] = []

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        self.calls.append(actions.clone())
        return self.rollout(actions)


def last_state_cost(states: torch.Tensor) -> torch.Tensor:
    return latent_goal_cost(GOAL, states, last_only=True)


def config(**overrides) -> PlannerConfig:
    base = dict(horizon=5, samples=100, iterations=8, elites=10, temperature=0.1, max_norm=1.0, min_std=0.01)
    return PlannerConfig(**{**base, **overrides})


class TrackingProblem:
    """``sum_t ||x_t - target_t||^2 + lam ||a_t||^2``: an unconstrained quadratic solved by least squares.

    The rollout returns ``cat([x_t, a_t])`` so that the cost, a function of states only, sees the actions.
    """

    horizon = 4
    lam = 0.3

    def __init__(self) -> None:
        h = self.horizon
        self.targets = torch.stack(
            [torch.linspace(0.5, 3.0, h), torch.linspace(-1.0, 2.0, h)], dim=1
        )  # (H, 2)
        # x = START + L a with L lower-triangular ones; stack the penalty rows under the tracking rows
        lower = torch.tril(torch.ones(h, h, dtype=torch.float64))
        lhs = torch.cat([lower, math.sqrt(self.lam) * torch.eye(h, dtype=torch.float64)])  # (2H, H)
        rhs = torch.cat([(self.targets - START).double(), torch.zeros(h, 2, dtype=torch.float64)])  # (2H, 2)
        self.optimum = torch.linalg.lstsq(lhs, rhs).solution.float()  # (H, 2)
        self.optimum_cost = float(self.cost(self.rollout(self.optimum[None])))

    def rollout(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.cat([point_rollout(actions), actions], dim=-1)  # (N, H, 4)

    def cost(self, states: torch.Tensor) -> torch.Tensor:
        tracking = (states[..., :2] - self.targets).square().sum(dim=(1, 2))
        return tracking + self.lam * states[..., 2:].square().sum(dim=(1, 2))  # (N,)


# ---------------------------------------------------------------------------------------------- optimum


@pytest.mark.parametrize(
    ("planner_cls", "overrides"),
    [(CEMPlanner, {}), (MPPIPlanner, {"temperature": 0.02})],
)
def test_reaches_a_reachable_goal(planner_cls, overrides):
    """Last-state distance to a goal inside the reachable set: the optimum cost is 0."""
    cfg = config(samples=200, iterations=30, elites=20, **overrides)
    result = planner_cls(cfg).plan(point_rollout, last_state_cost, action_dim=2)
    assert result.actions.shape == (5, 2)
    assert result.cost < 0.02
    reached = point_rollout(result.actions[None])[0, -1]
    torch.testing.assert_close(reached, GOAL, atol=0.02, rtol=0)


@pytest.mark.parametrize(
    ("planner_cls", "overrides", "rel_gap", "atol"),
    [
        (CEMPlanner, {"samples": 200, "elites": 20, "iterations": 40}, 1e-3, 0.02),
        # fixed-temperature MPPI with a weighted std converges more slowly on this ill-conditioned problem
        (MPPIPlanner, {"samples": 500, "iterations": 100, "temperature": 0.3, "momentum": 0.5}, 1e-2, 0.08),
    ],
)
def test_matches_least_squares_optimum(planner_cls, overrides, rel_gap, atol):
    problem = TrackingProblem()
    cfg = config(horizon=problem.horizon, max_norm=None, init_std=1.0, **overrides)
    result = planner_cls(cfg).plan(problem.rollout, problem.cost, action_dim=2)
    assert problem.optimum_cost > 0.5  # the optimum is not trivially zero
    assert result.cost >= problem.optimum_cost - 1e-4
    assert result.cost - problem.optimum_cost <= rel_gap * problem.optimum_cost
    torch.testing.assert_close(result.actions, problem.optimum, atol=atol, rtol=0)


# ---------------------------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("planner_cls", PLANNERS)
def test_every_sampled_and_returned_action_respects_max_norm(planner_cls):
    cfg = config(init_std=4.0, max_norm=0.7)  # a wide proposal so most draws need projecting
    recorder = Recorder()
    result = planner_cls(cfg).plan(recorder, last_state_cost, action_dim=2)
    sampled = torch.stack(recorder.calls)  # (iterations, N, H, 2)
    norms = torch.linalg.vector_norm(sampled, dim=-1)
    assert float(norms.max()) <= 0.7 + 1e-5
    assert float((norms[0] > 0.7 - 1e-5).float().mean()) > 0.5  # the first, wide proposal really needed it
    assert float(torch.linalg.vector_norm(result.actions, dim=-1).max()) <= 0.7 + 1e-5


@pytest.mark.parametrize("planner_cls", PLANNERS)
def test_warm_start_outside_the_ball_is_projected(planner_cls):
    recorder = Recorder()
    planner_cls(config(iterations=1)).plan(recorder, last_state_cost, 2, warm_start=torch.full((5, 2), 3.0))
    torch.testing.assert_close(recorder.calls[0][0], torch.full((5, 2), 1 / math.sqrt(2)))


def test_project_to_ball_keeps_inner_points_and_direction():
    actions = torch.tensor([[0.3, 0.4], [3.0, 4.0], [0.0, 0.0]])
    projected = project_to_ball(actions, 1.0)
    torch.testing.assert_close(projected, torch.tensor([[0.3, 0.4], [0.6, 0.8], [0.0, 0.0]]))
    assert project_to_ball(actions, None) is actions


def bumpy_cost(states: torch.Tensor) -> torch.Tensor:
    """A multimodal cost, where a refitted mean is often worse than the best sample."""
    d = states[:, -1] - GOAL  # (N, 2)
    return d.square().sum(dim=-1) + 2.0 * torch.sin(3.0 * states.sum(dim=(1, 2))).abs()


@pytest.mark.parametrize("planner_cls", PLANNERS)
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_best_cost_never_increases_and_one_batched_rollout_per_iteration(planner_cls, momentum):
    cfg = config(iterations=12, samples=64, elites=8, momentum=momentum, temperature=1.0)
    recorder = Recorder()
    seen: list[float] = []

    def cost(states: torch.Tensor) -> torch.Tensor:
        costs = bumpy_cost(states)
        seen.append(float(costs.min()))
        return costs

    result = planner_cls(cfg).plan(recorder, cost, action_dim=2)
    assert len(recorder.calls) == cfg.iterations
    assert all(call.shape == (cfg.samples, cfg.horizon, 2) for call in recorder.calls)
    assert result.costs_per_iteration == pytest.approx(seen)
    assert all(b <= a + 1e-6 for a, b in zip(seen, seen[1:]))
    assert result.cost == pytest.approx(seen[-1])
    assert result.cost == pytest.approx(float(bumpy_cost(point_rollout(result.actions[None]))[0]), abs=1e-5)


@pytest.mark.parametrize("planner_cls", PLANNERS)
def test_mean_and_incumbent_are_candidates(planner_cls):
    recorder = Recorder()
    warm = torch.full((5, 2), 0.25)
    result = planner_cls(config(iterations=2)).plan(recorder, last_state_cost, 2, warm_start=warm)
    first, second = recorder.calls
    torch.testing.assert_close(first[0], warm)  # iteration 1: the initial mean
    best_first = int(torch.argmin(last_state_cost(point_rollout(first))))
    torch.testing.assert_close(second[1], first[best_first])  # iteration 2: the previous best
    assert isinstance(result, PlanResult)


# ---------------------------------------------------------------------------------------------- warm start


def test_shift_plan_zeros_and_last():
    plan = torch.arange(10.0).reshape(5, 2)
    torch.testing.assert_close(shift_plan(plan), torch.tensor([[2.0, 3], [4, 5], [6, 7], [8, 9], [0, 0]]))
    torch.testing.assert_close(
        shift_plan(plan, steps=2, fill="last"), torch.tensor([[4.0, 5], [6, 7], [8, 9], [8, 9], [8, 9]])
    )
    torch.testing.assert_close(shift_plan(plan, steps=0), plan)
    assert shift_plan(plan, steps=0) is not plan
    torch.testing.assert_close(shift_plan(plan, steps=5), torch.zeros(5, 2))
    torch.testing.assert_close(shift_plan(plan, steps=5, fill="last"), torch.tensor([[8.0, 9]]).expand(5, 2))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 6}, ConfigError, "steps=6"),
        ({"steps": -1}, ConfigError, "steps=-1"),
        ({"fill": "mean"}, ConfigError, "fill='mean'"),
    ],
)
def test_shift_plan_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        shift_plan(torch.zeros(5, 2), **kwargs)


def test_shift_plan_rejects_a_plan_that_is_not_2d():
    with pytest.raises(ShapeError, match=r"\(5,\)"):
        shift_plan(torch.zeros(5))


@pytest.mark.parametrize("planner_cls", PLANNERS)
def test_warm_start_at_the_optimum_stays_there(planner_cls):
    problem = TrackingProblem()
    cfg = config(horizon=problem.horizon, max_norm=None, init_std=1.0, iterations=4)
    result = planner_cls(cfg).plan(problem.rollout, problem.cost, 2, warm_start=problem.optimum)
    assert result.costs_per_iteration[0] == pytest.approx(problem.optimum_cost, rel=1e-6)
    assert result.cost == pytest.approx(problem.optimum_cost, rel=1e-6)
    torch.testing.assert_close(result.actions, problem.optimum, atol=1e-3, rtol=0)


# ---------------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("planner_cls", PLANNERS)
def test_seeds_reproduce_and_differ(planner_cls):
    def plan(seed: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return (
            planner_cls(config(seed=seed))
            .plan(point_rollout, last_state_cost, 2, generator=generator)
            .actions
        )

    torch.testing.assert_close(plan(3), plan(3), atol=0, rtol=0)
    assert not torch.equal(plan(3), plan(4))
    from_generator = plan(9, torch.Generator().manual_seed(3))
    torch.testing.assert_close(from_generator, plan(3), atol=0, rtol=0)


def test_planner_generator_advances_between_plans():
    planner = CEMPlanner(config())
    first = planner.plan(point_rollout, last_state_cost, 2).actions
    second = planner.plan(point_rollout, last_state_cost, 2).actions
    assert not torch.equal(first, second)


# ---------------------------------------------------------------------------------------------- cost


def test_latent_goal_cost_by_hand():
    states = torch.tensor([[[1.0, 2.0], [4.0, 6.0]], [[1.0, 0.0], [1.0, 1.0]]])  # (N=2, H=2, 2)
    goal = torch.tensor([1.0, 0.0])
    # diffs: row 0 -> (0, 2), (3, 6); row 1 -> (0, 0), (0, 1)
    torch.testing.assert_close(latent_goal_cost(goal, states), torch.tensor([2.0 + math.sqrt(45.0), 1.0]))
    torch.testing.assert_close(
        latent_goal_cost(goal, states, last_only=True), torch.tensor([math.sqrt(45.0), 1.0])
    )
    torch.testing.assert_close(latent_goal_cost(goal, states, p=1), torch.tensor([11.0, 1.0]))


def test_latent_goal_cost_takes_the_norm_over_all_feature_dims():
    states = torch.zeros(1, 3, 2, 2)
    states[0, 2] = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    goal = torch.zeros(2, 2)
    torch.testing.assert_close(latent_goal_cost(goal, states), torch.tensor([2.0]))
    torch.testing.assert_close(latent_goal_cost(goal, states, last_only=True), torch.tensor([2.0]))


@pytest.mark.parametrize(
    ("goal", "states", "error", "match"),
    [
        (torch.zeros(3), torch.zeros(4, 5, 2), ShapeError, r"goal shape \(3,\)"),
        (torch.zeros(()), torch.zeros(4, 5), ShapeError, r"\(4, 5\)"),
    ],
)
def test_latent_goal_cost_rejects_mismatched_shapes(goal, states, error, match):
    with pytest.raises(error, match=match):
        latent_goal_cost(goal, states)


def test_latent_goal_cost_rejects_a_bad_norm_order():
    with pytest.raises(ConfigError, match="p=0"):
        latent_goal_cost(torch.zeros(2), torch.zeros(1, 1, 2), p=0)


# ---------------------------------------------------------------------------------------------- MPC


class CountingPlanner(CEMPlanner):
    """CEM that records every warm start it is given and every plan it returns."""

    def __init__(self, cfg: PlannerConfig) -> None:
        super().__init__(cfg)
        self.warm_starts: list[torch.Tensor | None] = []
        self.results: list[PlanResult] = []

    def plan(self, rollout, cost, action_dim, warm_start=None, generator=None) -> PlanResult:
        self.warm_starts.append(warm_start)
        self.results.append(super().plan(rollout, cost, action_dim, warm_start, generator))
        return self.results[-1]


def test_mpc_executes_then_replans_warm_started():
    planner = CountingPlanner(config(iterations=2, samples=16, elites=4))
    controller = MPCController(planner, execute=3)
    actions = [controller.act(point_rollout, last_state_cost, 2) for _ in range(7)]

    assert len(planner.results) == 3  # plans before actions 1, 4 and 7
    for i, action in enumerate(actions):
        torch.testing.assert_close(action, planner.results[i // 3].actions[i % 3])
    assert planner.warm_starts[0] is None
    for previous, warm in zip(planner.results, planner.warm_starts[1:]):
        torch.testing.assert_close(warm, shift_plan(previous.actions, 3))
    assert controller.last_result is planner.results[-1]

    assert len(controller.plan_seconds) == 7
    planned = [i for i, s in enumerate(controller.plan_seconds) if s > 0]
    assert planned == [0, 3, 6]

    controller.reset()
    controller.act(point_rollout, last_state_cost, 2)
    assert len(planner.results) == 4  # the queue was dropped
    assert planner.warm_starts[-1] is None
    assert len(controller.plan_seconds) == 8


def test_mpc_replans_every_action_by_default():
    planner = CountingPlanner(config(iterations=1, samples=8, elites=2))
    controller = MPCController(planner, fill="last")
    for _ in range(4):
        controller.act(point_rollout, last_state_cost, 2)
    assert len(planner.results) == 4
    torch.testing.assert_close(planner.warm_starts[1], shift_plan(planner.results[0].actions, 1, "last"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"execute": 0}, "execute=0"), ({"execute": 6}, "execute=6"), ({"fill": "noise"}, "fill='noise'")],
)
def test_mpc_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MPCController(CEMPlanner(config()), **kwargs)


# ---------------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("planner_cls", PLANNERS)
def test_rollout_with_wrong_batch_or_horizon_is_rejected(planner_cls):
    planner = planner_cls(config())
    with pytest.raises(ShapeError, match=r"\(100, 5, \.\.\.\), got \(99, 5, 2\)"):
        planner.plan(lambda a: point_rollout(a)[1:], last_state_cost, 2)
    with pytest.raises(ShapeError, match=r"got \(100, 4, 2\)"):
        planner.plan(lambda a: point_rollout(a)[:, 1:], last_state_cost, 2)
    with pytest.raises(ShapeError, match="got list"):
        planner.plan(lambda a: [a], last_state_cost, 2)


def test_cost_with_wrong_shape_is_rejected():
    with pytest.raises(ShapeError, match=r"\(N,\) = \(100,\), got \(100, 1\)"):
        CEMPlanner(config()).plan(point_rollout, lambda s: last_state_cost(s)[:, None], 2)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("planner_cls", PLANNERS)
def test_non_finite_costs_are_rejected(planner_cls, bad):
    def cost(states: torch.Tensor) -> torch.Tensor:
        costs = last_state_cost(states)
        costs[7] = bad
        return costs

    with pytest.raises(NonFiniteCostError, match=r"1 non-finite values out of 100 \(candidates \[7\]"):
        planner_cls(config()).plan(point_rollout, cost, 2)
    assert issubclass(NonFiniteCostError, ShapeError)


@pytest.mark.parametrize("shape", [(5, 3), (4, 2), (5,)])
def test_warm_start_of_wrong_shape_is_rejected(shape):
    with pytest.raises(ShapeError, match=r"\(horizon, action_dim\) = \(5, 2\)"):
        CEMPlanner(config()).plan(point_rollout, last_state_cost, 2, warm_start=torch.zeros(shape))


def test_bad_action_dim_is_rejected():
    with pytest.raises(ConfigError, match="action_dim=0"):
        CEMPlanner(config()).plan(point_rollout, last_state_cost, 0)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"horizon": 0}, "horizon=0"),
        ({"samples": 2, "elites": 1}, "samples=2"),
        ({"iterations": 0}, "iterations=0"),
        ({"elites": 101}, "elites=101 must be <= samples=100"),
        ({"elites": 0}, "elites=0"),
        ({"temperature": 0.0}, "temperature=0.0"),
        ({"temperature": math.inf}, "temperature=inf"),
        ({"init_std": -1.0}, "init_std=-1.0"),
        ({"min_std": -0.1}, "min_std=-0.1"),
        ({"max_norm": 0.0}, "max_norm=0.0"),
        ({"momentum": 1.0}, "momentum=1.0"),
        ({"horizon": 2.5}, "horizon=2.5"),
        ({"seed": None}, "seed=None"),
    ],
)
def test_bad_config_values_are_named(overrides, match):
    with pytest.raises(ConfigError, match=match):
        config(**overrides)


def test_config_lists_every_problem_and_is_checked_again_by_the_planner():
    with pytest.raises(ConfigError, match="horizon=0.*temperature=-1"):
        config(horizon=0, temperature=-1)
    cfg = config()
    cfg.elites = 500
    with pytest.raises(ConfigError, match="elites=500"):
        CEMPlanner(cfg)


def test_initial_std_defaults_to_max_norm():
    assert config(max_norm=2.45).initial_std == 2.45
    assert config(max_norm=None).initial_std == 1.0
    assert config(init_std=0.3).initial_std == 0.3
    assert issubclass(CEMPlanner, SamplingPlanner) and issubclass(MPPIPlanner, SamplingPlanner)
