"""On-policy rollouts (retentionrl.simulators.rollout) on a hand-made simulator whose values are known."""

from __future__ import annotations

import numpy as np
import pytest

from retentionrl.core.actions import ActionSpace
from retentionrl.interactions.history import history_feature_names
from retentionrl.simulators.interface import ShopperSimulator, VisitOutcome
from retentionrl.simulators.rollout import evaluate_policy, format_table
from retentionrl.simulators.world.logging_policies import UniformPolicy


class ClockworkShoppers(ShopperSimulator):
    """Every shopper visits every 30 days and spends 10 (coupon cost 1, cost of goods 4:
    profit 5); even-numbered shoppers churn at their 5th visit (day 120), odd ones never."""

    def __init__(self) -> None:
        self.action_space = ActionSpace(2)
        self.observation_names = history_feature_names(2)
        self.horizon_days = 90

    @property
    def days(self) -> np.ndarray:
        return self._days

    def reset(self, n: int, *, seed: int | None = None) -> np.ndarray:
        self._days, self._visit = np.zeros(n), np.zeros(n, dtype=int)
        self._churner = np.arange(n) % 2 == 0
        return np.zeros((n, self.obs_dim), dtype=np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, VisitOutcome]:
        n = self._days.size
        self.action_space.check(actions, n)
        self._visit += 1
        churned = self._churner & (self._visit == 5)
        gap = np.where(churned, np.inf, 30.0)
        ones = np.ones(n, dtype=bool)
        out = VisitOutcome(
            click=ones,
            purchase=ones,
            redeemed=ones,
            spend=np.full(n, 10.0),
            coupon_cost=np.ones(n),
            cogs=np.full(n, 4.0),
            gap_days=gap,
            churned=churned,
        )
        self._days = self._days + np.where(churned, 0.0, gap)
        return np.zeros((n, self.obs_dim), dtype=np.float32), out

    def replace(self, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def test_values_over_the_horizon_by_default():
    v = evaluate_policy(ClockworkShoppers(), UniformPolicy(ActionSpace(2)), 10, seed=0)
    assert (v.horizon_days, v.days) == (90, 90)
    assert v.return_visits.estimate == 2.0  # visits on days 0, 30, 60; the next falls on day 90
    assert v.active_at_horizon.estimate == 1.0  # nobody churns before their 5th visit
    assert v.profit.estimate == 15.0 and v.coupon_cost.estimate == 3.0 and v.purchases.estimate == 3.0


def test_values_over_365_days_follow_shoppers_past_the_horizon():
    v = evaluate_policy(ClockworkShoppers(), UniformPolicy(ActionSpace(2)), 10, seed=0, days=365)
    assert (v.horizon_days, v.days) == (90, 365)
    # churners: 5 visits (days 0-120), then churn; the others: 13 visits (days 0-360)
    assert v.return_visits.estimate == pytest.approx((4 + 12) / 2)
    assert v.active_at_horizon.estimate == 0.5
    assert v.profit.estimate == pytest.approx(5.0 * (5 + 13) / 2)
    assert v.to_dict()["days"] == 365
    assert "per shopper over 365 days (churn: no return within H = 90 days)" in format_table([v])


@pytest.mark.parametrize("days", [0, -5, 1.5, True])
def test_bad_windows_are_rejected(days):
    with pytest.raises(ValueError, match="days must be a positive integer"):
        evaluate_policy(ClockworkShoppers(), UniformPolicy(ActionSpace(2)), 10, seed=0, days=days)
