"""Logged decisions and the baselines fit from them, checked on world logs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retentionrl.agents.baselines import ImmediateRewardModel, LoggingPolicyClone, MyopicGreedyPolicy, PopularityPolicy
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.io import read_events
from retentionrl.simulators.policy_registry import LOGGING_POLICIES, make_policy
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs

CONFIG = WorldConfig()


@pytest.fixture(scope="module", params=LOGGING_POLICIES)
def decisions(request, tmp_path_factory) -> tuple[str, LoggedDecisions]:
    path = tmp_path_factory.mktemp("logs") / "world.parquet"
    write_world_logs(CONFIG, 2_000, 120, 3, path, logging_policy=request.param)
    return request.param, LoggedDecisions.from_log(read_events(path, "events"))


def test_logged_propensities_are_recomputed_exactly_from_the_log(decisions) -> None:
    name, d = decisions
    assert d.logged.all() and d.n > 2_000
    recomputed = make_policy(name, CONFIG).action_probs(d.obs)[np.arange(d.n), d.action]
    np.testing.assert_allclose(recomputed, d.propensity, rtol=0, atol=1e-12)


def test_logging_clone_is_close_to_the_logging_policy(decisions) -> None:
    name, d = decisions
    clone = LoggingPolicyClone.fit(d)
    truth = make_policy(name, CONFIG).action_probs(d.obs)
    probs = clone.action_probs(d.obs)
    assert np.allclose(probs.sum(axis=1), 1.0) and probs.min() > 0
    total_variation = 0.5 * np.abs(probs - truth).sum(axis=1).mean()
    uniform_tv = 0.5 * np.abs(1 / 80 - truth).sum(axis=1).mean()
    # much closer than guessing uniform (for the uniform logger: within sampling noise)
    assert total_variation < (0.1 if name == "uniform" else 0.5 * uniform_tv), (total_variation, uniform_tv)


def test_popularity_picks_the_most_purchased_arm_without_coupon(decisions) -> None:
    _, d = decisions
    policy = PopularityPolicy.fit(d)
    arm, _ = d.action_map.space.decode(d.action)
    best = np.bincount(arm, weights=d.purchase, minlength=20).argmax()
    probs = policy.action_probs(d.obs[:5])
    assert np.all(probs[:, best * 4] == 1.0) and np.all(probs.sum(axis=1) == 1.0)


def test_myopic_greedy_takes_the_argmax_of_its_reward_model(decisions) -> None:
    _, d = decisions
    model = ImmediateRewardModel.fit(d, steps=100)
    policy = MyopicGreedyPolicy(model)
    probs = policy.action_probs(d.obs[:50])
    assert np.array_equal(probs.argmax(axis=1), model.predict_all(d.obs[:50]).argmax(axis=1))
    # the fitted model beats predicting the mean reward on its training data
    pred = model(model.inputs(d.obs, d.action)).detach().numpy()
    target = d.profit / 50.0
    assert np.mean((pred - target) ** 2) < np.var(target)


def test_reward_model_predicts_every_action_as_its_network_does(decisions) -> None:
    """``predict_all`` splits the first layer by input block; it must equal the network on
    the concatenated (observation, one-hot arm, one-hot coupon) input of each action."""
    _, d = decisions
    model = ImmediateRewardModel.fit(d, steps=20)
    obs, n_actions = d.obs[:40], d.action_map.space.n_actions
    with torch.no_grad():
        full = model(model.inputs(np.repeat(obs, n_actions, axis=0), np.tile(np.arange(n_actions), len(obs))))
    assert np.allclose(model.predict_all(obs), full.numpy().reshape(len(obs), n_actions), atol=1e-5)


def test_baselines_refuse_logs_without_actions(decisions) -> None:
    _, d = decisions
    none = d.take(np.zeros(d.n, dtype=bool))
    with pytest.raises(ValueError, match="no logged actions"):
        PopularityPolicy.fit(none)


def test_decisions_and_the_clone_read_back_as_they_were_written(decisions, tmp_path) -> None:
    """The pipeline's dataset stage writes both once; what the later stages read must be the
    same arrays and the same probabilities, and a clone of another action space is refused."""
    _, d = decisions
    d.save(tmp_path / "d.npz")
    back = LoggedDecisions.load(tmp_path / "d.npz", d.action_map)
    for name, value in vars(d).items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(getattr(back, name), value, equal_nan=value.dtype.kind == "f"), name
    clone = LoggingPolicyClone.fit(d)
    clone.save(tmp_path / "clone.safetensors")
    loaded = LoggingPolicyClone.load(tmp_path / "clone.safetensors", d.action_map.space)
    np.testing.assert_array_equal(loaded.action_probs(d.obs[:200]), clone.action_probs(d.obs[:200]))
    with pytest.raises(ValueError, match="a clone over 80 actions, expected 40"):
        LoggingPolicyClone.load(tmp_path / "clone.safetensors", WorldConfig(n_groups=10).action_space)
