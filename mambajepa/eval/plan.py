"""``mambajepa eval plan``: goal-reaching in Two Rooms by planning in a world model's latent space.

Each held-out episode (seeded by ``seed + i``) draws a layout, a start and a goal in the other room.
Four policies run the same episodes:

* ``model``: MPC with a CEM or MPPI planner over the world model's imagined latents, cost = distance
  between imagined latents and the goal image's latent summed over the horizon (or the last one);
  the predictor's recurrent step rolls the whole population forward in one batched step per time;
* ``random``: uniform random actions of at most the max norm;
* ``greedy``: a max-norm step straight toward the goal (it has to meet the door by chance);
* ``oracle``: the same planner on the true simulator state (cost = distance of the simulated dot to
  the goal), the upper bound of planning.

Success: the dot ends within the success radius (4.5 px) of the goal within the step budget.
``plan.json`` holds per policy the success rate, mean steps of the successes and planning seconds
per action; pictures show start, goal and executed paths, and a GIF replays one episode.

Dimension legend: ``N`` candidate sequences, ``H`` horizon, ``Z`` latent width, ``S`` image side.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mambajepa.core.errors import ConfigError
from mambajepa.core.files import atomic_write_json
from mambajepa.envs.two_rooms import TwoRooms, TwoRoomsConfig, clip_norm
from mambajepa.eval.base import Evaluation
from mambajepa.eval.runs import load_run, run_dir_of
from mambajepa.planning import CEMPlanner, MPCController, MPPIPlanner, PlannerConfig, latent_goal_cost
from mambajepa.registry import register_evaluation

__all__ = ["POLICIES", "PlanEvaluation", "format_plan_table", "run_episode", "run_policies"]

POLICIES = ("model", "random", "greedy", "oracle")


def _planner(kind: str, config: PlannerConfig):
    if kind not in ("mppi", "cem"):
        raise ConfigError(f"planner={kind!r}; expected 'mppi' or 'cem'")
    return MPPIPlanner(config) if kind == "mppi" else CEMPlanner(config)


def simulate(env: TwoRooms, position: np.ndarray, actions: torch.Tensor) -> torch.Tensor:
    """True dot positions ``(N, H, 2)`` after each action of ``actions`` ``(N, H, 2)`` from ``position``."""
    layout, out = env.layout, np.zeros((*actions.shape[:2], 2))
    acts = actions.detach().cpu().double().numpy()
    for n in range(acts.shape[0]):
        p = np.asarray(position, dtype=np.float64)
        for t in range(acts.shape[1]):
            p = layout.move(p, clip_norm(acts[n, t], env.config.max_norm))
            out[n, t] = p
    return torch.from_numpy(out).float()


def run_episode(
    env: TwoRooms,
    seed: int,
    policy: str,
    act: Callable[[TwoRooms, np.ndarray, int], np.ndarray],
    max_steps: int,
) -> dict[str, Any]:
    """One episode of ``policy``: ``act(env, observation, t) -> action``; the path and the outcome."""
    obs, info = env.reset(seed=seed)
    path, start, goal = [info["position"].tolist()], info["position"].tolist(), info["goal"].tolist()
    success, steps, seconds = False, 0, []
    for t in range(max_steps):
        begin = time.perf_counter()
        action = act(env, obs, t)
        seconds.append(time.perf_counter() - begin)
        obs, _, terminated, truncated, info = env.step(np.asarray(action, dtype=np.float32))
        path.append(info["position"].tolist())
        steps = t + 1
        if terminated:
            success = True
            break
        if truncated:
            break
    return {
        "policy": policy,
        "seed": seed,
        "success": success,
        "steps": steps,
        "start": start,
        "goal": goal,
        "path": path,
        "wall_x": info["wall_x"],
        "door_y": info["door_y"],
        "seconds_per_action": statistics.fmean(seconds) if seconds else 0.0,
        "final_distance": float(info["distance"]),
    }


def run_policies(
    method: Any,
    env_config: TwoRoomsConfig,
    episodes: int,
    seed: int,
    planner: str,
    planner_config: PlannerConfig,
    execute: int,
    last_only: bool = False,
    policies: tuple[str, ...] = POLICIES,
    max_steps: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run every policy on the same ``episodes`` episodes; the ``plan.json`` content."""
    max_steps = max_steps or env_config.max_steps
    env = TwoRooms(env_config)
    results: dict[str, Any] = {"episodes": episodes, "seed": seed, "planner": planner, "max_steps": max_steps}
    rng = np.random.default_rng(seed)

    def random_act(env: TwoRooms, obs: np.ndarray, t: int) -> np.ndarray:
        angle, length = rng.uniform(0, 2 * np.pi), env.config.max_norm * np.sqrt(rng.uniform())
        return np.array([np.cos(angle), np.sin(angle)]) * length

    def greedy_act(env: TwoRooms, obs: np.ndarray, t: int) -> np.ndarray:
        delta = env.goal - env.position
        norm = float(np.linalg.norm(delta))
        return delta if norm <= env.config.max_norm else delta / norm * env.config.max_norm

    def mpc(rollout_of: Callable, cost_of: Callable) -> Callable:
        controller = MPCController(_planner(planner, planner_config), execute=execute)

        def act(env: TwoRooms, obs: np.ndarray, t: int) -> np.ndarray:
            if t == 0:
                controller.reset()
            return controller.act(rollout_of(env, obs), cost_of(env), 2).numpy()

        return act

    def model_rollout(env: TwoRooms, obs: np.ndarray):
        with torch.no_grad():
            z = method.encode_frames(torch.from_numpy(obs).unsqueeze(0))[0]
        return functools.partial(method.imagine, z)

    goal_latents: dict[int, torch.Tensor] = {}

    def model_cost(env: TwoRooms):
        key = id(env.layout), tuple(env.goal.tolist())
        if key not in goal_latents:
            with torch.no_grad():
                goal_latents[key] = method.encode_frames(torch.from_numpy(env.goal_image()).unsqueeze(0))[0]
        return functools.partial(latent_goal_cost, goal_latents[key], last_only=last_only)

    def oracle_rollout(env: TwoRooms, obs: np.ndarray):
        return functools.partial(simulate, env, env.position)

    def oracle_cost(env: TwoRooms):
        return functools.partial(latent_goal_cost, torch.from_numpy(env.goal).float(), last_only=last_only)

    acts = {
        "model": mpc(model_rollout, model_cost) if method is not None else None,
        "random": random_act,
        "greedy": greedy_act,
        "oracle": mpc(oracle_rollout, oracle_cost),
    }
    for policy in policies:
        if acts[policy] is None:
            continue
        if progress:
            print(f"eval plan: {policy} on {episodes} episodes", flush=True)
        runs = [run_episode(env, seed + i, policy, acts[policy], max_steps) for i in range(episodes)]
        wins = [r for r in runs if r["success"]]
        results[policy] = {
            "success_rate": len(wins) / episodes,
            "mean_steps_to_success": statistics.fmean(r["steps"] for r in wins) if wins else None,
            "seconds_per_action": statistics.fmean(r["seconds_per_action"] for r in runs),
            "mean_final_distance": statistics.fmean(r["final_distance"] for r in runs),
            "episodes": runs,
        }
    return results


def format_plan_table(results: dict[str, Any]) -> str:
    """One line per policy: success rate, steps to success, planning seconds per action."""
    head = f"{'policy':<8} {'success':>8} {'steps':>7} {'s/action':>9} {'final dist':>10}"
    lines = [head, "-" * len(head)]
    for policy in POLICIES:
        if policy in results:
            r = results[policy]
            steps = "-" if r["mean_steps_to_success"] is None else f"{r['mean_steps_to_success']:.1f}"
            lines.append(
                f"{policy:<8} {r['success_rate']:>8.3f} {steps:>7} {r['seconds_per_action']:>9.4f} "
                f"{r['mean_final_distance']:>10.2f}"
            )
    lines.append(f"{results['episodes']} episodes, seed {results['seed']}, planner {results['planner']}")
    return "\n".join(lines)


def draw_paths(
    results: dict[str, Any], env_config: TwoRoomsConfig, folder: Path, count: int = 4
) -> list[Path]:
    """``paths.png`` (start, goal and executed path of a few episodes per policy) and ``episode.gif``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import animation

    from mambajepa.envs.two_rooms import TwoRoomsLayout, frame_to_rgb

    folder.mkdir(parents=True, exist_ok=True)
    policies = [p for p in POLICIES if p in results]
    fig, axes = plt.subplots(len(policies), count, figsize=(2.2 * count, 2.2 * len(policies)), squeeze=False)
    for row, policy in enumerate(policies):
        for col in range(count):
            ax = axes[row][col]
            ax.axis("off")
            if col >= len(results[policy]["episodes"]):
                continue
            ep = results[policy]["episodes"][col]
            layout = TwoRoomsLayout(env_config, ep["wall_x"], ep["door_y"])
            ax.imshow(frame_to_rgb(layout.render(np.array(ep["start"]), goal=np.array(ep["goal"]))))
            path = np.array(ep["path"]) - 0.5
            ax.plot(path[:, 0], path[:, 1], "-", color="yellow", linewidth=1)
            ax.set_title(f"{policy}: {'ok' if ep['success'] else 'fail'} ({ep['steps']})", fontsize=7)
    fig.tight_layout()
    out = [folder / "paths.png"]
    fig.savefig(out[0], dpi=100)
    plt.close(fig)
    policy = "model" if "model" in results else policies[0]
    ep = results[policy]["episodes"][0]
    layout = TwoRoomsLayout(env_config, ep["wall_x"], ep["door_y"])
    frames = [frame_to_rgb(layout.render(np.array(p), goal=np.array(ep["goal"]))) for p in ep["path"]]
    fig, ax = plt.subplots(figsize=(2.5, 2.5))
    ax.axis("off")
    image = ax.imshow(frames[0])

    def update(i: int):
        image.set_data(frames[i])
        return (image,)

    anim = animation.FuncAnimation(fig, update, frames=len(frames), interval=60, blit=True)
    out.append(folder / "episode.gif")
    anim.save(out[1], writer=animation.PillowWriter(fps=15))
    plt.close(fig)
    return out


@register_evaluation("plan", applies_to=["world_model"])
class PlanEvaluation(Evaluation):
    """``mambajepa eval plan --checkpoint RUN --episodes 100 --planner mppi --seed S``."""

    help = "goal-reaching success in Two Rooms by latent MPC, beside random, greedy and oracle policies"
    description = __doc__.split("\n\n")[0]

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--episodes", type=int, default=100)
        parser.add_argument("--planner", choices=("mppi", "cem"), default="mppi")
        parser.add_argument("--seed", type=int, default=1_000_000, help="episode i uses seed + i (held out)")
        parser.add_argument(
            "--horizon", type=int, default=None, help="planning horizon (default: the run's plan section)"
        )
        parser.add_argument("--samples", type=int, default=None)
        parser.add_argument("--iterations", type=int, default=None)
        parser.add_argument("--execute", type=int, default=None, help="actions executed per replan")
        parser.add_argument("--last-only", action="store_true", help="cost of the last imagined state only")
        parser.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
        parser.add_argument(
            "--max-steps", type=int, default=None, help="steps per episode (default: the env's)"
        )
        parser.add_argument(
            "--out", default=None, help="where to write plan.json (default: <run dir>/plan.json)"
        )
        parser.add_argument("--no-pictures", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        run = load_run(args.checkpoint)
        method, config = run.method.eval(), run.config
        plan = config.plan
        overrides = {
            k: getattr(args, k) for k in ("horizon", "samples", "iterations") if getattr(args, k) is not None
        }
        planner_config = PlannerConfig(
            **{
                "horizon": plan.horizon,
                "samples": plan.samples,
                "iterations": plan.iterations,
                "elites": plan.elites,
                "temperature": plan.temperature,
                "max_norm": config.env.max_norm,
                "seed": args.seed,
                **overrides,
            }
        )
        results = run_policies(
            method,
            config.env,
            args.episodes,
            args.seed,
            args.planner,
            planner_config,
            args.execute or plan.execute,
            args.last_only,
            tuple(args.policies),
            args.max_steps,
            progress=True,
        )
        out = Path(args.out) if args.out else run_dir_of(run.checkpoint) / "plan.json"
        atomic_write_json(out, results)
        if not args.no_pictures:
            draw_paths(results, config.env, out.parent / "pictures")
        print(format_plan_table(results))
        print(f"wrote {out}")
        return 0
