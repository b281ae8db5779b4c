"""The action-conditioned world model: recurrent rollouts, loss terms, training, and eval plan."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mambajepa.cli import main
from mambajepa.config import load_config, resolve_recipe
from mambajepa.core.errors import ShapeError
from mambajepa.envs.two_rooms import TwoRooms, TwoRoomsConfig
from mambajepa.eval.plan import format_plan_table, run_policies, simulate
from mambajepa.losses import covariance_loss, variance_loss
from mambajepa.methods.world_model import WorldModel
from mambajepa.planning import PlannerConfig
from mambajepa.predictors.dynamics import DynamicsConfig, LatentDynamics
from mambajepa.train.trainer import run_training

TINY = [
    "--encoder.width=8", "--encoder.latent_dim=8", "--predictor.d_model=16", "--predictor.n_layer=1",
    "--predictor.headdim=8", "--data.n_train=64", "--data.n_val=8", "--data.length=6", "--loss.rollout_steps=3",
    "--train.max_steps=3", "--train.batch_size=8", "--train.warmup_steps=0", "--train.eval_every=0",
    "--train.progress=false", "--train.plots=false", "--train.checkpoint_every=0",
    "--plan.horizon=4", "--plan.samples=8", "--plan.iterations=2", "--plan.elites=3", "--plan.execute=2",
]  # fmt: skip


def tiny(*extra: str):
    return load_config(resolve_recipe("world_model_two_rooms"), [*TINY, *extra])


@pytest.mark.parametrize("kind", ["mamba3", "gru"])
def test_rollouts_by_the_recurrent_step_equal_a_full_sequence_pass(kind):
    torch.manual_seed(0)
    dyn = LatentDynamics(8, 2, DynamicsConfig(kind=kind, d_model=16, headdim=8))
    z, a = torch.randn(3, 7, 8), torch.randn(3, 7, 2)
    full = dyn(z, a)
    state, steps = dyn.init_state(3), []
    for t in range(7):
        out, state = dyn.step(state, z[:, t], a[:, t])
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)
    # open-loop rollout = feeding each prediction back as the next input of a full pass
    imagined = dyn.rollout(z[:, 0], a)
    inputs = torch.cat([z[:, :1], imagined[:, :-1]], dim=1)
    torch.testing.assert_close(dyn(inputs, a), imagined, atol=1e-5, rtol=1e-5)
    with pytest.raises(ShapeError, match="actions"):
        dyn(z, torch.randn(3, 7, 3))


def test_loss_terms_and_their_weights():
    cfg = tiny()
    torch.manual_seed(0)
    method = WorldModel.from_config(cfg)
    data = method.build_data(cfg)
    batch = data.collate_fn([data.train[i] for i in range(8)])
    assert batch["frames"].shape == (8, 6, 3, 64, 64) and batch["actions"].shape == (8, 5, 2)
    terms = method.loss_terms_of(batch)
    z = method.encode_frames(batch["frames"])
    torch.testing.assert_close(terms["time"], (z[:, 1:] - z[:, :-1]).pow(2).sum(-1).mean())
    motion = z - z.mean(dim=1, keepdim=True)  # the recipe's variance_of: motion
    torch.testing.assert_close(
        terms["variance"], torch.stack([variance_loss(motion[:, t]) for t in range(6)]).mean()
    )
    plain = WorldModel.from_config(tiny("--loss.variance_of=latents"))
    plain.load_state_dict(method.state_dict())
    torch.testing.assert_close(
        plain.loss_terms_of(batch)["variance"], torch.stack([variance_loss(z[:, t]) for t in range(6)]).mean()
    )
    torch.testing.assert_close(
        terms["covariance"], torch.stack([covariance_loss(z[:, t]) for t in range(6)]).mean()
    )
    out = method.training_step(batch, 0)
    weights = {"prediction": 1.0, "rollout": 1.0, "variance": 16.0, "covariance": 8.0, "time": 12.0,
               "inverse_dynamics": 1.0}  # fmt: skip
    torch.testing.assert_close(out.loss, sum(w * terms[k] for k, w in weights.items()))
    out.loss.backward()
    assert all(p.grad is not None for p in method.predictor.parameters())
    with pytest.raises(ShapeError, match="needs 5 actions"):
        method.loss_terms_of({**batch, "actions": batch["actions"][:, :3]})


def test_ema_targets_are_an_option():
    method = WorldModel.from_config(tiny("--target=ema"))
    assert method.target_encoder is not None
    assert WorldModel.from_config(tiny()).target_encoder is None


def test_simulated_rollouts_follow_the_environment():
    env = TwoRooms(TwoRoomsConfig())
    env.reset(seed=3)
    actions = torch.tensor(np.random.default_rng(0).uniform(-3, 3, (2, 5, 2)), dtype=torch.float32)
    sim = simulate(env, env.position, actions)
    for n in range(2):
        env.reset(seed=3)
        for t in range(5):
            _, _, _, _, info = env.step(actions[n, t].numpy())
            np.testing.assert_allclose(sim[n, t].numpy(), info["position"], atol=1e-4)


def test_train_then_plan_writes_plan_json(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_training(tiny(), run_dir)
    assert main(["eval", "plan", "--checkpoint", str(run_dir), "--episodes", "2", "--max-steps", "6",
                 "--policies", "model", "greedy", "random", "--no-pictures"]) == 0  # fmt: skip
    results = json.loads((run_dir / "plan.json").read_text())
    for policy in ("model", "greedy", "random"):
        assert 0 <= results[policy]["success_rate"] <= 1 and len(results[policy]["episodes"]) == 2
        assert all(len(ep["path"]) == ep["steps"] + 1 for ep in results[policy]["episodes"])
    assert "greedy" in capsys.readouterr().out


def test_the_oracle_planner_ends_at_least_as_close_as_greedy():
    cfg = TwoRoomsConfig(random_wall=False, max_steps=40)
    planner = PlannerConfig(horizon=8, samples=32, iterations=3, elites=6, max_norm=cfg.max_norm, seed=0)
    results = run_policies(None, cfg, 3, 7, "cem", planner, 4, policies=("greedy", "oracle"))
    assert "model" not in results and set(results) >= {"greedy", "oracle"}
    # the oracle's planned episodes end no farther from the goal than greedy's on average
    assert results["oracle"]["mean_final_distance"] <= results["greedy"]["mean_final_distance"] + 1e-6
    assert "oracle" in format_plan_table(results)


def test_inverse_dynamics_spans_predict_the_mean_action_of_each_span():
    cfg = tiny("--loss.inverse_dynamics_spans=[1,3]")
    assert load_config(resolve_recipe("world_model_two_rooms")).loss.inverse_dynamics_spans == [1, 4, 16]
    method = WorldModel.from_config(cfg)
    data = method.build_data(cfg)
    batch = data.collate_fn([data.train[i] for i in range(4)])
    z = method.encode_frames(batch["frames"])
    expected = []
    for k in (1, 3):
        target = torch.stack([batch["actions"][:, t : t + k].mean(1) for t in range(6 - k)], dim=1)
        span = torch.full((4, 6 - k, 1), k / 6)
        pred = method.inverse_dynamics(torch.cat([z[:, :-k], z[:, k:], span], dim=-1))
        expected.append(((pred - target) ** 2).mean())
    torch.testing.assert_close(method.loss_terms_of(batch)["inverse_dynamics"], torch.stack(expected).mean())


def test_held_out_means_weight_batches_by_size_and_the_method_uses_them():
    from mambajepa.methods.base import held_out_means

    assert held_out_means([(2, {"a": 1.0}), (6, {"a": torch.tensor(3.0)})]) == {"val/a": 2.5}
    assert held_out_means([]) == {}
    cfg = tiny()
    method = WorldModel.from_config(cfg)
    data = method.build_data(cfg)
    batches = [data.collate_fn([data.val[i] for i in range(j, j + 4)]) for j in (0, 4)]
    got = method.evaluate(batches)
    with torch.no_grad():
        terms = [method.loss_terms_of(b) for b in batches]
    assert got["val/rollout"] == pytest.approx((float(terms[0]["rollout"]) + float(terms[1]["rollout"])) / 2)
