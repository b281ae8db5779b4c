"""Planning in a learned latent space: CEM and MPPI over action sequences, and an MPC controller.

Planners are generic over a batched rollout function, so this package depends only on
:mod:`mambajepa.core`, torch and numpy; wiring a world model to a rollout is the caller's job.
"""

from mambajepa.planning.planners import (
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
