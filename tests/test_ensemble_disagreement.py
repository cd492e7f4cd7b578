"""A shared-mode ensemble: one history per shopper in every member, the members' disagreement,
the learned simulator's predictions it rests on, and an agent's reward penalised by it (MOPO)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import make_training_env, train
from retentionrl.cli.main import app
from retentionrl.envs.factory import load_simulator, make_vector_env
from retentionrl.envs.vector_env import ShopperVectorEnv
from retentionrl.interactions.io import read_events
from retentionrl.simulators.learned.ensemble import SimulatorEnsemble, load_members, write_ensemble
from retentionrl.simulators.learned.fit import FitConfig, fit_simulator
from retentionrl.simulators.learned.sequence_model import HEAD_LAYOUT
from retentionrl.simulators.learned.simulator import LearnedSimulator
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs
from retentionrl.simulators.world.simulator import GroundTruthWorld
from tests.test_learned_simulator import toy_simulator


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """An ensemble of two simulators fitted on bootstrap resamples of one small log (seeds 0, 1)."""
    out = tmp_path_factory.mktemp("ensemble")
    write_world_logs(WorldConfig(), 400, 120, 0, out / "logs.parquet")
    log = read_events(out / "logs.parquet")
    for k in range(2):
        fit_simulator(log, FitConfig(epochs=1, seed=k, bootstrap=True, device="cpu"), out / f"member_{k}")
    write_ensemble(out, ["member_0", "member_1"])
    return out


def shared(folder: Path) -> SimulatorEnsemble:
    ensemble = load_simulator(folder, device="cpu", ensemble_mode="shared")
    assert isinstance(ensemble, SimulatorEnsemble) and ensemble.mode == "shared"
    return ensemble


def run(ensemble: SimulatorEnsemble, n: int, seed: int, steps: int = 12) -> list[dict[str, np.ndarray]]:
    """Every output of ``steps`` steps of ``n`` shoppers under seeded random actions, ended
    shoppers replaced; checks at each step that every member holds the same shoppers."""
    obs = ensemble.reset(n, seed=seed)
    rng = np.random.default_rng(seed)
    outputs = []
    for _ in range(steps):
        obs, outcome = ensemble.step(rng.integers(0, ensemble.action_space.n_actions, n))
        for member in ensemble.members:
            np.testing.assert_array_equal(member.history.features(), obs)
            np.testing.assert_array_equal(member.days, ensemble.days)
        outputs.append({"obs": obs, **outcome.as_dict(), "disagreement": ensemble.disagreement})
        ended = outcome.churned | (ensemble.days >= ensemble.horizon_days)
        obs = ensemble.replace(ended)
    return outputs


@pytest.mark.parametrize("n", [5, 40])  # the numpy path and the torch path
def test_every_member_keeps_one_history_and_a_seed_fixes_every_visit(folder: Path, n: int) -> None:
    first, again, other = run(shared(folder), n, 7), run(shared(folder), n, 7), run(shared(folder), n, 8)
    for a, b in zip(first, again, strict=True):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not all(np.array_equal(a["spend"], b["spend"]) for a, b in zip(first, other))
    disagreement = np.concatenate([out["disagreement"] for out in first])
    assert np.all(disagreement > 0) and np.all(disagreement < 1)


def test_each_visit_is_drawn_by_one_member_at_random() -> None:
    """Member 0 always sees a click, member 1 never: the clicks show which member drew each visit."""

    def member(click_logit: float) -> LearnedSimulator:
        toy = toy_simulator()
        with torch.no_grad():
            toy.model.head_out.bias[HEAD_LAYOUT.index("click")] = click_logit
        return LearnedSimulator(toy.model, toy.card, "cpu")  # built after the change: it folds the weights

    def clicks(seed: int) -> np.ndarray:
        ensemble = SimulatorEnsemble([member(30.0), member(-30.0)], mode="shared")
        ensemble.reset(2_000, seed=seed)
        obs, outcome = ensemble.step(np.zeros(2_000, dtype=np.int64))
        np.testing.assert_array_equal(ensemble.members[1].history.features(), obs)
        return outcome.click

    drawn = clicks(3)
    assert abs(drawn.mean() - 0.5) < 0.05  # 4.5 standard errors
    np.testing.assert_array_equal(clicks(3), drawn)


def test_disagreement_is_the_spread_of_the_members_predictions_before_the_draw(folder: Path) -> None:
    ensemble = shared(folder)
    ensemble.reset(50, seed=0)
    assert np.isnan(ensemble.disagreement).all()  # no visit yet
    rng = np.random.default_rng(0)
    for _ in range(3):
        actions = rng.integers(0, ensemble.action_space.n_actions, 50)
        predicted = np.stack([m.predict(actions) for m in ensemble.members]).astype(np.float64)  # (K, n, 2)
        ensemble.step(actions)
        expected = predicted[:, :, 0].std(axis=0) + predicted[:, :, 1].std(axis=0)
        np.testing.assert_array_equal(ensemble.disagreement, expected)


@pytest.mark.parametrize("n", [5, 40])
def test_copies_of_one_fit_never_disagree(folder: Path, n: int) -> None:
    fit = load_members(folder, device="cpu")[0]
    copies = SimulatorEnsemble([LearnedSimulator(fit.model, fit.card, "cpu") for _ in range(3)], mode="shared")
    for out in run(copies, n, seed=2):
        assert np.all(out["disagreement"] == 0.0)


def test_split_mode_has_no_disagreement_and_shared_mode_needs_learned_members(folder: Path) -> None:
    split = load_simulator(folder, device="cpu")
    assert isinstance(split, SimulatorEnsemble)
    with pytest.raises(ValueError, match="split mode has no disagreement"):
        _ = split.disagreement
    with pytest.raises(ValueError, match="shared ensemble needs learned simulators"):
        SimulatorEnsemble([GroundTruthWorld(), GroundTruthWorld()], mode="shared")
    with pytest.raises(ValueError, match="ensemble mode must be one of"):
        SimulatorEnsemble(load_members(folder, device="cpu"), mode="pooled")


@pytest.mark.parametrize("small_batch", [0, 4_000])  # the torch path and the numpy path
def test_predict_moves_nothing_and_gives_the_frequencies_step_draws(folder: Path, small_batch: int) -> None:
    fit = load_members(folder, device="cpu")[0]
    n = 4_000 if small_batch else 20_000  # the numpy path loops over shoppers
    sims = [LearnedSimulator(fit.model, fit.card, "cpu", small_batch=small_batch) for _ in range(2)]
    rng = np.random.default_rng(1)
    actions = rng.integers(0, fit.action_space.n_actions, n)
    for sim in sims:
        sim.reset(n, seed=4)
        sim.step(actions)  # a visit behind them, so that the states and histories differ
    actions = np.full(n, fit.action_space.encode(np.array([3]), np.array([2]))[0])  # a coupon: redemption counts
    state = sims[0].state.clone()
    predicted = sims[0].predict(actions)
    assert predicted.shape == (n, 2) and torch.equal(sims[0].state, state)
    np.testing.assert_array_equal(sims[0].predict(actions), predicted)
    after_predict, plain = sims[0].step(actions)[1], sims[1].step(actions)[1]
    for name, value in plain.as_dict().items():  # predicting draws nothing: the same visit
        np.testing.assert_array_equal(after_predict.as_dict()[name], value, err_msg=name)
    assert abs(plain.purchase.mean() - predicted[:, 0].mean()) < 4 * math.sqrt(0.25 / n)
    # spend enters the return law at its median, not integrated: a small bias, well within 0.02
    assert abs((~plain.churned).mean() - predicted[:, 1].mean()) < 0.02


def test_both_paths_predict_the_same(folder: Path) -> None:
    fit = load_members(folder, device="cpu")[0]
    on_numpy, on_torch = (LearnedSimulator(fit.model, fit.card, "cpu", small_batch=b) for b in (8, 0))
    rng = np.random.default_rng(5)
    for sim in (on_numpy, on_torch):
        sim.reset(8, seed=5)
    for _ in range(4):
        actions = rng.integers(0, fit.action_space.n_actions, 8)
        np.testing.assert_allclose(on_numpy.predict(actions), on_torch.predict(actions), rtol=1e-5, atol=1e-6)
        for sim in (on_numpy, on_torch):
            sim.step(actions)


def test_an_open_visit_is_closed_once() -> None:
    sim = toy_simulator()
    sim.reset(3, seed=0)
    visit = sim.open_visit(np.zeros(3, dtype=np.int64))
    visit.close(visit.draw())
    with pytest.raises(RuntimeError, match="this visit is closed"):
        visit.close(visit.draw())


def test_the_penalty_lowers_each_reward_by_lambda_times_the_disagreement(folder: Path) -> None:
    penalty, n = 0.75, 40
    plain = ShopperVectorEnv(shared(folder), n, autoreset_mode="SameStep")
    penalised = make_vector_env(
        n, simulator=folder, reward_mode="mixed", autoreset_mode="SameStep", device="cpu", disagreement_penalty=penalty
    )
    plain.reward = penalised.reward  # the same mixed reward
    assert isinstance(penalised.simulator, SimulatorEnsemble) and penalised.simulator.mode == "shared"
    obs, _ = plain.reset(seed=3)
    np.testing.assert_array_equal(penalised.reset(seed=3)[0], obs)
    rng = np.random.default_rng(3)
    for _ in range(5):
        actions = rng.integers(0, plain.single_action_space.n, n)
        obs, reward, *_, info = plain.step(actions)
        obs_p, reward_p, *_, info_p = penalised.step(actions)
        np.testing.assert_array_equal(obs_p, obs)
        np.testing.assert_array_equal(info_p["disagreement"], info["disagreement"])
        assert np.all(info["disagreement"] > 0)
        np.testing.assert_allclose(reward - reward_p, penalty * info["disagreement"], rtol=1e-5, atol=1e-6)


def test_the_penalty_needs_an_ensemble_of_learned_members(folder: Path) -> None:
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="disagreement_penalty must be a finite number >= 0"):
            TrainConfig(disagreement_penalty=bad)
    for simulator, got in (("world", "GroundTruthWorld"), (str(folder / "member_0"), "LearnedSimulator")):
        config = TrainConfig(simulator=simulator, disagreement_penalty=0.1, num_envs=4, device="cpu")
        with pytest.raises(ValueError, match=f"disagreement_penalty 0.1 needs a simulator ensemble.*got {got}"):
            make_training_env(config, seed=0)
    with pytest.raises(ValueError, match="got an ensemble of 2 in split mode"):
        ShopperVectorEnv(load_simulator(folder, device="cpu"), 4, disagreement_penalty=0.1)


def test_training_with_the_penalty_logs_the_disagreement_and_without_it_splits(folder: Path, tmp_path: Path) -> None:
    assert "disagreement_penalty = 0.0" in CliRunner().invoke(app, ["train", "--fields"]).output
    small = dict(simulator=str(folder), num_envs=16, device="cpu", ppo_n_steps=32, ppo_batch_size=128, ppo_epochs=1)
    split = make_training_env(TrainConfig(**small), seed=0).env.simulator
    assert isinstance(split, SimulatorEnsemble) and split.mode == "split"  # lambda = 0: training as before
    train(TrainConfig(total_steps=1_024, disagreement_penalty=0.5, **small), tmp_path, progress=False)
    (run_folder,) = (tmp_path / "tensorboard").iterdir()
    acc = EventAccumulator(str(run_folder), size_guidance={"scalars": 0}).Reload()
    logged = [e.value for e in acc.Scalars("ensemble/disagreement")]
    assert len(logged) == 2 and all(0 < v < 1 for v in logged)
