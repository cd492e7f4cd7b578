"""One pessimistic step of policy improvement (retentionrl.agents.one_step): the rollouts' targets,
the step personalises where every member agrees and keeps the base action where they do not,
the weight trades retention for profit, the gain is the least weighted advantage over the
estimates, and what is saved loads back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retentionrl.agents.one_step import (
    ONE_STEP_TENSORS,
    OneStepConfig,
    OneStepPolicy,
    collect_rollouts,
    fit_q,
    is_one_step_folder,
    load_one_step,
    save_one_step,
)
from retentionrl.agents.registry import make_named_policy
from retentionrl.core.actions import ActionSpace
from retentionrl.core.errors import InputError
from retentionrl.envs.reward import RewardConfig
from retentionrl.interactions.history import history_feature_names
from retentionrl.simulators.interface import ShopperSimulator, VisitOutcome


class TwoTypes(ShopperSimulator):
    """Shoppers of two types (observation column 0), a visit every 10 days, H = 90 days. Arm 0
    earns 2 a visit and arm 1 earns 5; after arm ``a`` a shopper of type ``x`` churns with
    probability ``churn[x][a]``."""

    def __init__(self, churn: tuple[tuple[float, float], tuple[float, float]]) -> None:
        self.action_space = ActionSpace(2, (0.0,))
        self.observation_names = history_feature_names(2)
        self.horizon_days = 90
        self.churn = np.asarray(churn)

    @property
    def days(self) -> np.ndarray:
        return self._days

    def _obs(self) -> np.ndarray:
        obs = np.zeros((self._type.size, self.obs_dim), dtype=np.float32)
        obs[:, 0] = self._type
        return obs

    def reset(self, n: int, *, seed: int | None = None) -> np.ndarray:
        self._rng = np.random.default_rng(seed)
        self._type = self._rng.integers(0, 2, n)
        self._days = np.zeros(n)
        return self._obs()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, VisitOutcome]:
        n = self._type.size
        churned = self._rng.random(n) < self.churn[self._type, actions]
        gap = np.where(churned, np.inf, 10.0)
        ones = np.ones(n, dtype=bool)
        out = VisitOutcome(
            click=ones,
            purchase=ones,
            redeemed=np.zeros(n, dtype=bool),
            spend=np.where(actions == 1, 5.0, 2.0),
            coupon_cost=np.zeros(n),
            cogs=np.zeros(n),
            gap_days=gap,
            churned=churned,
        )
        self._days = self._days + np.where(churned, 0.0, gap)
        return self._obs(), out

    def replace(self, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError


SMALL = OneStepConfig(users=4000, epsilon=0.5, hidden=(32,), epochs=30, batch_size=512, learning_rate=3e-3)
TYPES = np.zeros((2, TwoTypes(((0, 0), (0, 0))).obs_dim), dtype=np.float32)
TYPES[1, 0] = 1.0


def test_the_rollouts_targets_are_the_returns_and_profit_still_to_come():
    never = TwoTypes(((0.0, 0.0), (0.0, 0.0)))  # visits on days 0, 10, ..., 80: nine in the window
    data = collect_rollouts(never, base_action=0, users=5, epsilon=0.0, seed=0)
    assert data.obs.shape == (45, never.obs_dim) and (data.action == 0).all()
    first_shopper = np.arange(45) % 5 == 0  # rows are step by step, the shoppers in order
    np.testing.assert_array_equal(data.targets[first_shopper, 0], np.arange(8, -1, -1))
    np.testing.assert_allclose(data.targets[first_shopper, 1], 2.0 * np.arange(9, 0, -1))
    churn_now = TwoTypes(((1.0, 1.0), (1.0, 1.0)))  # one visit each: nothing to come
    data = collect_rollouts(churn_now, base_action=1, users=3, epsilon=0.0, seed=0)
    np.testing.assert_array_equal(data.targets, [[0.0, 5.0]] * 3)


def test_the_step_personalises_where_every_member_agrees_and_keeps_the_base_elsewhere():
    # arm 1 keeps type 0 (churn 0.05 against 0.4) and loses type 1 (0.4 against 0.05)
    agree = TwoTypes(((0.4, 0.05), (0.05, 0.4)))
    q = fit_q([agree, TwoTypes(((0.4, 0.05), (0.05, 0.4)))], base_action=0, config=SMALL)
    retention = OneStepPolicy(q, 0, agree.action_space, RewardConfig.weighted(1.0, 1.0))
    np.testing.assert_array_equal(retention.action_probs(TYPES), [[0.0, 1.0], [1.0, 0.0]])
    # a second member in which arm 1 loses type 0 too: the members disagree, the base stays
    doubt = fit_q([agree, TwoTypes(((0.4, 0.6), (0.05, 0.4)))], base_action=0, config=SMALL)
    cautious = OneStepPolicy(doubt, 0, agree.action_space, RewardConfig.weighted(1.0, 1.0))
    np.testing.assert_array_equal(cautious.action_probs(TYPES), [[1.0, 0.0], [1.0, 0.0]])


def test_the_weight_trades_retention_for_profit():
    # arm 1 earns 2.5x a visit but loses shoppers sooner (churn 0.1 and 0.2 against 0.05): worth it
    # for profit over the whole lifetime, not for retention
    world = TwoTypes(((0.05, 0.1), (0.05, 0.2)))
    q = fit_q([world], base_action=0, config=SMALL)
    profit = OneStepPolicy(q, 0, world.action_space, RewardConfig.weighted(0.0, 1.0))
    retention = profit.with_reward(RewardConfig.weighted(1.0, 1.0))
    assert profit.name == "one-step (profit)" and retention.name == "one-step (retention)"
    np.testing.assert_array_equal(profit.action_probs(TYPES)[:, 1], [1.0, 1.0])
    np.testing.assert_array_equal(retention.action_probs(TYPES)[:, 0], [1.0, 1.0])


def test_the_gain_is_the_least_weighted_advantage_over_the_estimates():
    """``gains`` against the docstring's formula computed here from the networks' raw outputs:
    :math:`\\min_j [w A_j^{ret} + (1 - w) A_j^{profit} / S]` with :math:`A_j = Q_j(s, a) - Q_j(s, a_0)`."""
    world = TwoTypes(((0.05, 0.1), (0.05, 0.2)))
    q = fit_q([world, TwoTypes(((0.1, 0.05), (0.2, 0.05)))], base_action=1, config=SMALL)
    obs = np.random.default_rng(1).random((40, world.obs_dim)).astype(np.float32)
    values = q(torch.as_tensor(obs)).detach().numpy()  # (J, n, A, 2)
    advantage = values - values[:, :, 1:2, :]
    for w, scale in ((0.0, 3.0), (0.3, 3.0), (1.0, 1.0)):
        expected = (w * advantage[..., 0] + (1.0 - w) * advantage[..., 1] / scale).min(axis=0)
        gains = OneStepPolicy(q, 1, world.action_space, RewardConfig.weighted(w, scale)).gains(obs)
        np.testing.assert_allclose(gains, expected, rtol=1e-5, atol=1e-5)
        assert np.all(gains[:, 1] == 0.0)


def test_a_saved_policy_loads_back_and_a_broken_one_is_named(tmp_path):
    world = TwoTypes(((0.4, 0.05), (0.05, 0.4)))
    config = OneStepConfig(users=500, epsilon=0.5, hidden=(8,), epochs=2)
    q = fit_q([world], base_action=0, config=config)
    policy = OneStepPolicy(q, 0, world.action_space, RewardConfig.weighted(0.25, 3.0))
    save_one_step(tmp_path / "p", q, 0, world, policy.reward, config)
    assert is_one_step_folder(tmp_path / "p") and not is_one_step_folder(tmp_path)
    loaded = load_one_step(tmp_path / "p")
    assert loaded.reward == policy.reward and loaded.base_action == 0 and loaded.arms == ("0", "1")
    named = make_named_policy(str(tmp_path / "p"), world.action_space)  # what --policy DIR loads
    assert isinstance(named, OneStepPolicy) and named.name == "one-step (mixed w=0.25)"
    obs = np.random.default_rng(0).random((50, world.obs_dim)).astype(np.float32)
    np.testing.assert_allclose(loaded.gains(obs), policy.gains(obs), rtol=1e-6, atol=1e-6)
    (tmp_path / "p" / ONE_STEP_TENSORS).write_bytes(b"not tensors")
    with pytest.raises(InputError, match=ONE_STEP_TENSORS):
        load_one_step(tmp_path / "p")
    save_one_step(
        tmp_path / "q",
        fit_q([world], 0, OneStepConfig(users=500, hidden=(4,), epochs=1)),
        0,
        world,
        policy.reward,
        config,
    )
    with pytest.raises(InputError, match="does not match one_step.json"):  # tensors of 4 units, metadata says 8
        load_one_step(tmp_path / "q")


def test_bad_arguments_are_named():
    world = TwoTypes(((0.4, 0.05), (0.05, 0.4)))
    with pytest.raises(ValueError, match="epsilon must be in"):
        OneStepConfig(epsilon=0.0)
    with pytest.raises(ValueError, match="users must be"):
        OneStepConfig(users=1)
    with pytest.raises(ValueError, match="base_action must be a flat action"):
        fit_q([world], base_action=2, config=SMALL)
    with pytest.raises(ValueError, match="at least one simulator"):
        fit_q([], base_action=0)
