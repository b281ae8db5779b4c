"""Sampling planners over action sequences (CEM, MPPI) and a receding-horizon MPC controller.

A planner optimises one action sequence for one start state. It never sees a model: the caller
hands it a batched ``rollout`` that imagines the states reached by N candidate sequences from
the same start (a world model unrolled in latent space, or a simulator), and a ``cost`` that
scores those states, e.g. :func:`latent_goal_cost` with ``functools.partial`` binding the goal.

Every iteration of :meth:`SamplingPlanner.plan`:

1. draws N sequences from a Gaussian proposal with a mean and a std per ``(t, a)``;
2. overwrites candidate 0 with the proposal mean and, from the second iteration on, candidate 1
   with the best candidate of the previous iteration (the incumbent), so the best cost of an
   iteration is never worse than that of the one before when rollout and cost are
   deterministic (the mean alone does not guarantee it: a CEM mean of elites can be worse than
   its best elite);
3. projects every action onto the ball ``||a_t||_2 <= max_norm``;
4. evaluates all N candidates with ONE ``rollout`` call and one ``cost`` call;
5. refits the proposal: CEM to the ``elites`` lowest-cost candidates, MPPI to softmax weights.

The returned plan is the best candidate of the last iteration (a sequence whose cost was
actually evaluated), not the refitted mean.

Dimension legend:
    N: candidate sequences per iteration (``samples``)
    H: planning horizon (actions per sequence)
    A: action dimension
    S: state feature dims returned by the rollout (any number, e.g. (D,) or (C, h, w))
"""

from __future__ import annotations

import abc
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from mambajepa.core.errors import ConfigError, ShapeError

__all__ = [
    "CEMPlanner",
    "MPCController",
    "MPPIPlanner",
    "NonFiniteCostError",
    "PlanResult",
    "PlannerConfig",
    "SamplingPlanner",
    "latent_goal_cost",
    "project_to_ball",
    "shift_plan",
]

Rollout = Callable[[Tensor], Tensor]  # (N, H, A) actions -> (N, H, *S) states after each action
Cost = Callable[[Tensor], Tensor]  # (N, H, *S) states -> (N,) costs, lower is better
Fill = Literal["zeros", "last"]


class NonFiniteCostError(ShapeError):
    """A cost callable returned NaN or infinite costs.

    Subclasses :class:`ShapeError` so that code catching malformed rollout or cost outputs catches
    this one too.
    """


@dataclass
class PlannerConfig:
    """Settings shared by :class:`CEMPlanner` and :class:`MPPIPlanner`.

    Defaults follow DINO-WM's CEM (horizon 5, 300 samples, top-30, 10 iterations) with eb_jepa's
    action max-norm of 2.45.

    Raises:
        ConfigError: from :meth:`validate`, run at construction.
    """

    horizon: int = 5  # H: actions per planned sequence
    samples: int = 300  # N: candidate sequences evaluated per iteration (one batched rollout)
    iterations: int = 10  # proposal refits per plan
    elites: int = 30  # CEM: lowest-cost candidates the proposal is refitted to (unused by MPPI)
    temperature: float = 1.0  # MPPI: weights are softmax(-(cost - min cost) / temperature)
    init_std: float | None = None  # std of the first proposal; None: max_norm, or 1.0 without max_norm
    min_std: float = 0.05  # floor on every proposal std after a refit, so sampling never freezes
    max_norm: float | None = 2.45  # every action is projected onto ||a_t||_2 <= max_norm; None: no bound
    momentum: float = 0.0  # new mean/std = momentum * old + (1 - momentum) * refit; 0 = no smoothing
    seed: int = 0  # seeds the planner's own generator

    def __post_init__(self) -> None:
        self.validate()

    @property
    def initial_std(self) -> float:
        """Std of the first proposal: ``init_std``, else ``max_norm``, else 1.0."""
        if self.init_std is not None:
            return float(self.init_std)
        return 1.0 if self.max_norm is None else float(self.max_norm)

    def validate(self) -> None:
        """Check ranges and coupled fields.

        Raises:
            ConfigError: listing every bad field with its value and the allowed range.
        """
        problems = []
        for name in ("horizon", "samples", "iterations", "elites"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name}={value!r} must be an int >= 1")
        if isinstance(self.samples, int) and 1 <= self.samples < 3:
            problems.append(
                f"samples={self.samples!r} must be >= 3 (the mean, the incumbent and at least one draw)"
            )
        if isinstance(self.elites, int) and isinstance(self.samples, int) and self.elites > self.samples:
            problems.append(f"elites={self.elites} must be <= samples={self.samples}")
        if not _positive_finite(self.temperature):
            problems.append(f"temperature={self.temperature!r} must be a finite number > 0")
        if self.init_std is not None and not _positive_finite(self.init_std):
            problems.append(f"init_std={self.init_std!r} must be a finite number > 0 or None")
        if not (_positive_finite(self.min_std) or self.min_std == 0):
            problems.append(f"min_std={self.min_std!r} must be a finite number >= 0")
        if self.max_norm is not None and not _positive_finite(self.max_norm):
            problems.append(f"max_norm={self.max_norm!r} must be a finite number > 0 or None")
        if not (isinstance(self.momentum, (int, float)) and 0.0 <= self.momentum < 1.0):
            problems.append(f"momentum={self.momentum!r} must lie in [0, 1)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            problems.append(f"seed={self.seed!r} must be an int")
        if problems:
            raise ConfigError("PlannerConfig: " + "; ".join(problems))


def _positive_finite(value: object) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


@dataclass
class PlanResult:
    """Outcome of one :meth:`SamplingPlanner.plan` call."""

    actions: Tensor  # (H, A) best candidate of the last iteration, inside the max-norm ball
    cost: float  # its cost
    costs_per_iteration: list[float] = field(default_factory=list)  # best cost of each iteration


def project_to_ball(actions: Tensor, max_norm: float | None) -> Tensor:
    """Scale every action whose Euclidean norm exceeds ``max_norm`` back onto the ball's surface.

    Args:
        actions: ``(..., A)`` actions; the norm is taken over the last dim.
        max_norm: radius of the ball; ``None`` returns ``actions`` unchanged.

    Returns:
        ``(..., A)`` projected actions (the Euclidean projection onto the ball).
    """
    if max_norm is None:
        return actions
    norms = torch.linalg.vector_norm(actions, dim=-1, keepdim=True)  # (..., 1)
    scale = (max_norm / norms.clamp_min(torch.finfo(actions.dtype).tiny)).clamp(max=1.0)
    return actions * scale


def shift_plan(plan: Tensor, steps: int = 1, fill: Fill = "zeros") -> Tensor:
    """Drop the first ``steps`` actions of a plan and pad its tail, for warm-starting the next plan.

    After executing ``steps`` actions, ``plan[steps:]`` is still a sensible guess for the start of
    the next horizon; the new tail is zeros (``fill="zeros"``: stand still, no bias) or copies of
    the plan's last action (``fill="last"``: keep moving as planned).

    Args:
        plan: ``(H, A)`` action sequence.
        steps: actions already executed, in ``[0, H]``.
        fill: ``"zeros"`` or ``"last"``.

    Returns:
        ``(H, A)`` shifted plan, a new tensor.

    Raises:
        ShapeError: ``plan`` is not 2-D or has no actions.
        ConfigError: ``steps`` outside ``[0, H]`` or an unknown ``fill``.
    """
    if plan.dim() != 2 or plan.shape[0] < 1:
        raise ShapeError(f"shift_plan: plan must have shape (H, A) with H >= 1, got {tuple(plan.shape)}")
    horizon = plan.shape[0]
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= horizon:
        raise ConfigError(f"shift_plan: steps={steps!r} must be an int in [0, {horizon}]")
    if fill == "zeros":
        tail = torch.zeros_like(plan[:steps])  # (steps, A)
    elif fill == "last":
        tail = plan[-1:].expand(steps, -1)  # (steps, A)
    else:
        raise ConfigError(f"shift_plan: fill={fill!r} is not one of ('zeros', 'last')")
    return torch.cat([plan[steps:], tail], dim=0)


def latent_goal_cost(goal: Tensor, states: Tensor, last_only: bool = False, p: float = 2) -> Tensor:
    """Distance of imagined states to a goal state: ``sum_t ||states[:, t] - goal||_p``.

    eb_jepa sums the distance over every step; scoring only the last state (``last_only``) is
    the weaker variant of its ablation (97 -> 89 % success on Two Rooms).

    Args:
        goal: ``(*S)`` goal state (e.g. the encoded goal observation).
        states: ``(N, H, *S)`` imagined states after each action.
        last_only: score only ``states[:, -1]``.
        p: order of the norm taken over all feature dims ``S`` at once (2: Euclidean).

    Returns:
        ``(N,)`` costs.

    Raises:
        ShapeError: ``states`` has fewer than 3 dims or ``goal`` does not match its feature dims.
        ConfigError: ``p <= 0``.
    """
    if states.dim() < 3:
        raise ShapeError(f"latent_goal_cost: states must have shape (N, H, *S), got {tuple(states.shape)}")
    if goal.shape != states.shape[2:]:
        raise ShapeError(
            f"latent_goal_cost: goal shape {tuple(goal.shape)} must equal the state feature shape "
            f"{tuple(states.shape[2:])}"
        )
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0:
        raise ConfigError(f"latent_goal_cost: p={p!r} must be > 0")
    if last_only:
        states = states[:, -1:]  # (N, 1, *S)
    diff = (states - goal).flatten(2)  # (N, H', prod S)
    return torch.linalg.vector_norm(diff, ord=p, dim=-1).sum(dim=1)  # (N,)


class SamplingPlanner(abc.ABC):
    """Shared loop of the Gaussian sampling planners; subclasses define how the proposal is refitted.

    Args:
        config: planner settings (validated again here, in case it was edited after construction).
        device: where candidates are sampled; the rollout receives them there.
        dtype: floating dtype of the candidates.

    Raises:
        ConfigError: from :meth:`PlannerConfig.validate`.
    """

    def __init__(
        self,
        config: PlannerConfig,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        config.validate()
        self.config = config
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.dtype = dtype
        # owned by the planner so consecutive plans draw fresh noise, yet a run is reproducible from `seed`
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)

    @abc.abstractmethod
    def refit(self, candidates: Tensor, costs: Tensor) -> tuple[Tensor, Tensor]:
        """Proposal fitted to one iteration's candidates, before momentum and the std floor.

        Args:
            candidates: ``(N, H, A)`` evaluated sequences.
            costs: ``(N,)`` their finite costs.

        Returns:
            ``(H, A)`` mean and ``(H, A)`` std.
        """

    def plan(
        self,
        rollout: Rollout,
        cost: Cost,
        action_dim: int,
        warm_start: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> PlanResult:
        """Optimise an ``(H, A)`` action sequence with ``iterations`` rounds of sample-evaluate-refit.

        Args:
            rollout: ``(N, H, A)`` actions -> ``(N, H, *S)`` states after each action; called
                exactly once per iteration with all N candidates.
            cost: ``(N, H, *S)`` states -> ``(N,)`` costs, lower is better.
            action_dim: A.
            warm_start: ``(H, A)`` initial proposal mean (projected onto the max-norm ball), e.g.
                :func:`shift_plan` of the previous plan; ``None`` starts from zeros.
            generator: noise source for this call; ``None`` uses (and advances) the planner's own.

        Returns:
            The best candidate of the last iteration, its cost and the best cost of every iteration.

        Raises:
            ConfigError: ``action_dim < 1``.
            ShapeError: a ``warm_start`` that is not ``(H, A)``, or rollout / cost outputs of the
                wrong type or shape.
            NonFiniteCostError: a NaN or infinite cost.
        """
        cfg = self.config
        cfg.validate()
        if isinstance(action_dim, bool) or not isinstance(action_dim, int) or action_dim < 1:
            raise ConfigError(f"action_dim={action_dim!r} must be an int >= 1")
        n, horizon = cfg.samples, cfg.horizon
        shape = (horizon, action_dim)
        if warm_start is None:
            mean = torch.zeros(shape, device=self.device, dtype=self.dtype)
        elif tuple(warm_start.shape) != shape:
            raise ShapeError(
                f"warm_start must have shape (horizon, action_dim) = {shape}, got {tuple(warm_start.shape)}"
            )
        else:
            mean = project_to_ball(warm_start.to(self.device, self.dtype), cfg.max_norm)
        std = torch.full(shape, cfg.initial_std, device=self.device, dtype=self.dtype)
        generator = self.generator if generator is None else generator

        incumbent: Tensor | None = None
        costs_per_iteration: list[float] = []
        for iteration in range(cfg.iterations):
            noise = torch.randn((n, *shape), generator=generator, device=self.device, dtype=self.dtype)
            candidates = mean + std * noise  # (N, H, A)
            candidates[0] = mean
            if incumbent is not None:
                candidates[1] = incumbent
            candidates = project_to_ball(candidates, cfg.max_norm)

            costs = self._evaluate(rollout, cost, candidates)  # (N,)
            best = int(torch.argmin(costs))
            incumbent = candidates[best].clone()  # (H, A)
            costs_per_iteration.append(float(costs[best]))
            if iteration == cfg.iterations - 1:
                break

            new_mean, new_std = self.refit(candidates, costs)
            mean = cfg.momentum * mean + (1.0 - cfg.momentum) * new_mean
            std = (cfg.momentum * std + (1.0 - cfg.momentum) * new_std).clamp_min(cfg.min_std)

        assert incumbent is not None  # iterations >= 1 is validated
        return PlanResult(incumbent, costs_per_iteration[-1], costs_per_iteration)

    def _evaluate(self, rollout: Rollout, cost: Cost, candidates: Tensor) -> Tensor:
        """One batched rollout and cost of all candidates, with their outputs checked."""
        n, horizon = candidates.shape[:2]
        states = rollout(candidates)
        if not isinstance(states, Tensor) or states.dim() < 2 or tuple(states.shape[:2]) != (n, horizon):
            got = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
            raise ShapeError(
                f"rollout must return states of shape (N, H, *S) = ({n}, {horizon}, ...), got {got}"
            )
        costs = cost(states)
        if not isinstance(costs, Tensor) or tuple(costs.shape) != (n,):
            got = tuple(costs.shape) if isinstance(costs, Tensor) else type(costs).__name__
            raise ShapeError(f"cost must return a tensor of shape (N,) = ({n},), got {got}")
        costs = costs.to(candidates.device, candidates.dtype)
        finite = torch.isfinite(costs)
        if not bool(finite.all()):
            bad = (~finite).nonzero().flatten()[:5].tolist()
            raise NonFiniteCostError(
                f"cost returned {int((~finite).sum())} non-finite values out of {n} "
                f"(candidates {bad}...: {costs[bad].tolist()}); costs must be finite"
            )
        return costs


class CEMPlanner(SamplingPlanner):
    """Cross-entropy method: refit the proposal to the ``elites`` lowest-cost candidates.

    ``mean = mean(elites)``, ``std = std(elites)`` (population std, per ``(t, a)``).
    """

    def refit(self, candidates: Tensor, costs: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and population std of the ``elites`` lowest-cost candidates, per ``(t, a)``."""
        elite_idx = torch.topk(costs, self.config.elites, largest=False).indices  # (K,)
        elites = candidates[elite_idx]  # (K, H, A)
        return elites.mean(dim=0), elites.std(dim=0, correction=0)


class MPPIPlanner(SamplingPlanner):
    """Model-predictive path integral: refit the proposal to softmax-weighted candidates.

    ``w = softmax(-(cost - min cost) / temperature)``, ``mean = sum_i w_i x_i`` and
    ``std = sqrt(sum_i w_i (x_i - mean)^2)`` per ``(t, a)``. A small temperature approaches
    greedy selection of the best candidate; a large one averages all of them.
    """

    def refit(self, candidates: Tensor, costs: Tensor) -> tuple[Tensor, Tensor]:
        """Softmax-weighted mean and std of all candidates, per ``(t, a)``."""
        weights = torch.softmax(-(costs - costs.min()) / self.config.temperature, dim=0)  # (N,)
        weights = weights[:, None, None]  # (N, 1, 1)
        mean = (weights * candidates).sum(dim=0)  # (H, A)
        std = (weights * (candidates - mean).square()).sum(dim=0).sqrt()  # (H, A)
        return mean, std


class MPCController:
    """Receding-horizon control: plan, execute the first ``execute`` actions, replan, warm-started.

    Args:
        planner: the planner called whenever the queue of planned actions is empty.
        execute: actions taken from each plan before replanning, in ``[1, horizon]``
            (eb_jepa replans after every action, DINO-WM after 5).
        fill: tail of the warm start, see :func:`shift_plan`.

    Attributes:
        plan_seconds: wall-clock planning time of every :meth:`act` call (``time.perf_counter``),
            0.0 for actions served from the queue; kept across :meth:`reset`.
        last_result: the most recent :class:`PlanResult`, or ``None`` before the first plan.

    Raises:
        ConfigError: ``execute`` outside ``[1, horizon]``.
    """

    def __init__(self, planner: SamplingPlanner, execute: int = 1, fill: Fill = "zeros") -> None:
        horizon = planner.config.horizon
        if isinstance(execute, bool) or not isinstance(execute, int) or not 1 <= execute <= horizon:
            raise ConfigError(f"execute={execute!r} must be an int in [1, horizon={horizon}]")
        if fill not in ("zeros", "last"):
            raise ConfigError(f"fill={fill!r} is not one of ('zeros', 'last')")
        self.planner = planner
        self.execute = execute
        self.fill: Fill = fill
        self.plan_seconds: list[float] = []
        self.last_result: PlanResult | None = None
        self._queue: deque[Tensor] = deque()
        self._warm_start: Tensor | None = None

    def act(self, rollout: Rollout, cost: Cost, action_dim: int) -> Tensor:
        """Next action: from the queue, or from a new plan when the queue is empty.

        Args:
            rollout: batched rollout from the *current* state, see :meth:`SamplingPlanner.plan`;
                unused when the action comes from the queue.
            cost: cost of imagined states.
            action_dim: A.

        Returns:
            ``(A,)`` action to execute.

        Raises:
            ConfigError, ShapeError, NonFiniteCostError: from :meth:`SamplingPlanner.plan`.
        """
        seconds = 0.0
        if not self._queue:
            start = time.perf_counter()
            result = self.planner.plan(rollout, cost, action_dim, warm_start=self._warm_start)
            seconds = time.perf_counter() - start
            self._queue.extend(result.actions[: self.execute])
            self._warm_start = shift_plan(result.actions, self.execute, self.fill)
            self.last_result = result
        self.plan_seconds.append(seconds)
        return self._queue.popleft()

    def reset(self) -> None:
        """Forget the queued actions and the warm start (call at the start of every episode)."""
        self._queue.clear()
        self._warm_start = None
