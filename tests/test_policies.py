"""Policies: exact action probabilities, sampling, observability, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from retentionrl.simulators.observation import column
from retentionrl.simulators.policy_registry import POLICY_NAMES, make_policy, world_group_rates
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.heuristics import TargetedCoupon, make_heuristic
from retentionrl.simulators.world.logging_policies import EpsilonGreedyPolicy, SoftmaxPolicy, UniformPolicy
from retentionrl.simulators.world.simulator import GroundTruthWorld

CONFIG = WorldConfig()
SPACE = CONFIG.action_space


@pytest.fixture(scope="module")
def observations() -> np.ndarray:
    """Observations of 500 shoppers after 0-4 visits (a mix of histories)."""
    world = GroundTruthWorld(CONFIG)
    obs = [world.reset(500, seed=0)]
    rng = np.random.default_rng(0)
    for _ in range(4):
        obs.append(world.step(rng.integers(0, SPACE.n_actions, 500))[0])
    return np.concatenate(obs)


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_action_probs_are_distributions_and_act_is_in_range(name, observations):
    policy = make_policy(name, CONFIG)
    probs = policy.action_probs(observations)
    assert probs.shape == (len(observations), SPACE.n_actions)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    actions = policy.act(observations, np.random.default_rng(1))
    assert actions.shape == (len(observations),) and actions.min() >= 0 and actions.max() < SPACE.n_actions
    assert np.all(probs[np.arange(len(actions)), actions] > 0)
    assert not policy.is_oracle and policy.name == name


@pytest.mark.parametrize("name", ("uniform", "epsilon-greedy", "softmax"))
def test_logging_policies_cover_every_action(name, observations):
    assert make_policy(name, CONFIG).action_probs(observations).min() > 0


def test_epsilon_greedy_matches_its_formula(observations):
    pop = np.linspace(0.1, 0.3, SPACE.n_arms)
    policy = EpsilonGreedyPolicy(SPACE, pop, epsilon=0.2, affinity_weight=1.0, greedy_coupon=1)
    probs = policy.action_probs(observations)
    shares = observations[:, -SPACE.n_arms :]
    best = SPACE.encode(np.argmax(pop + shares, axis=1), 1)
    expected = np.full_like(probs, 0.2 / SPACE.n_actions)
    expected[np.arange(len(best)), best] += 0.8
    np.testing.assert_allclose(probs, expected)


def test_softmax_matches_its_formula(observations):
    rng = np.random.default_rng(3)
    w, b = rng.normal(size=(observations.shape[1], SPACE.n_actions)), rng.normal(size=SPACE.n_actions)
    probs = SoftmaxPolicy(SPACE, w, b, temperature=2.0).action_probs(observations)
    z = np.exp((observations.astype(np.float64) @ w + b) / 2.0)
    np.testing.assert_allclose(probs, z / z.sum(axis=1, keepdims=True), rtol=1e-10)


def test_act_samples_from_action_probs(observations):
    policy = make_policy("softmax", CONFIG)
    obs = np.repeat(observations[-1:], 40_000, axis=0)
    freq = np.bincount(policy.act(obs, np.random.default_rng(2)), minlength=SPACE.n_actions) / len(obs)
    p = policy.action_probs(obs[:1])[0]
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / len(obs)) + 1e-4)


@pytest.mark.parametrize("name", ("always-coupon", "never-coupon", "targeted-coupon", "myopic", "satisfaction-aware"))
def test_heuristics_are_deterministic(name, observations):
    probs = make_policy(name, CONFIG).action_probs(observations)
    assert np.all(probs.max(axis=1) == 1.0)


def test_myopic_shows_clickbait_and_satisfaction_aware_never_does(observations):
    clickbait = GroundTruthWorld(CONFIG).catalog.is_clickbait
    myopic = make_policy("myopic", CONFIG).act(observations[:500], np.random.default_rng(0))
    aware = make_policy("satisfaction-aware", CONFIG).act(observations, np.random.default_rng(0))
    assert clickbait[myopic // SPACE.n_coupons].all()  # new shoppers: the top click group
    assert not clickbait[aware // SPACE.n_coupons].any()


def test_targeted_coupon_rule():
    obs = np.zeros((4, len(GroundTruthWorld(CONFIG).observation_names)), dtype=np.float32)
    obs[1:, column("log_visits")] = np.log1p(3)
    obs[2, column("days_since_last")] = 30 / 90  # lapsing
    obs[3, column("days_since_last")] = 30 / 90
    obs[3, column("coupon_share")] = 0.5  # lapsing but already got many
    np.testing.assert_array_equal(TargetedCoupon(2, 90)(obs), [2, 0, 2, 0])


def test_group_rates_are_seeded_and_in_range():
    rates = world_group_rates(CONFIG)
    assert rates.click.shape == (SPACE.n_arms,) and np.all((0 <= rates.click) & (rates.click <= 1))
    assert np.all(rates.purchase <= rates.click) and np.all(rates.conversion <= 1)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: UniformPolicy(SPACE).action_probs(np.zeros((2, 5))), r"shape \(n, 31\)"),
        (lambda: EpsilonGreedyPolicy(SPACE, np.ones(SPACE.n_arms), epsilon=0.0), "epsilon"),
        (lambda: EpsilonGreedyPolicy(SPACE, np.ones(3)), "popularity"),
        (lambda: EpsilonGreedyPolicy(SPACE, np.ones(SPACE.n_arms), greedy_coupon=9), "coupon index 9"),
        (lambda: SoftmaxPolicy(SPACE, np.zeros((31, SPACE.n_actions)), np.zeros(SPACE.n_actions), 0.0), "temperature"),
        (lambda: SoftmaxPolicy(SPACE, np.zeros((3, 3)), np.zeros(SPACE.n_actions)), "weights"),
        (lambda: SoftmaxPolicy.over_popularity(SPACE, np.zeros(SPACE.n_arms)), "popularity"),
        (lambda: make_policy("greedy-ish", CONFIG), "unknown policy 'greedy-ish'"),
        (lambda: make_heuristic("myopic", SPACE, world_group_rates(CONFIG), 90, targeted_index=0), "targeted_index"),
    ],
)
def test_invalid_policy_input_raises(make, match):
    with pytest.raises(ValueError, match=match):
        make()
