"""One definition of retention at the horizon (retentionrl.interactions.horizon), used by every stage.

Hand-made shoppers return exactly on day H - 1, H and H + 1 of their lifetime (directly, or
after a visit on day 10); the env's retention return, ``evaluate_policy``'s return visits, the
logged trajectories' ``returned`` flags (and so the off-policy trajectory returns), and the
share active at H of the rollouts, the env and both retention curves must all agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retentionrl.core.actions import ActionSpace
from retentionrl.envs.shopper_env import ShopperEnv
from retentionrl.evaluation.world_steps import steps_from_decisions
from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.history import history_feature_names
from retentionrl.interactions.horizon import churned_after_gap, horizon_from_gaps, in_window, returned_in_window
from retentionrl.interactions.io import read_events
from retentionrl.interactions.retention import first_lifetimes, kaplan_meier, lifetime_durations
from retentionrl.interactions.trajectories import trajectory_table, visits_with_trajectories
from retentionrl.pipeline.measure import rollout
from retentionrl.simulators.interface import ShopperSimulator, VisitOutcome
from retentionrl.simulators.rollout import evaluate_policy
from retentionrl.simulators.world.logging_policies import UniformPolicy

H = 90
SPACE = ActionSpace(2)

# visit days of each shopper's lifetime -> (return visits within H, active at H)
CASES: dict[str, tuple[list[int], int, bool]] = {
    "back on day H-1": ([0, H - 1], 1, False),  # churns after its visit on day H-1 < H
    "back on day H": ([0, H], 0, True),  # a gap of H is not churn; day H is outside the window
    "back on day H+1": ([0, H + 1], 0, False),  # a gap of H+1 is churn at day 0 (then a reactivation)
    "day 10, back on day H-1": ([0, 10, H - 1], 2, False),
    "day 10, back on day H": ([0, 10, H], 1, True),
    "day 10, back on day H+1": ([0, 10, H + 1], 1, True),
    "day 10, day H, day H+30": ([0, 10, H, H + 30], 1, True),
}


def lifetime(days: list[int]) -> list[int]:
    """The visits a simulator makes: up to the first gap longer than H (churn)."""
    for k in range(1, len(days)):
        if churned_after_gap(days[k] - days[k - 1], H):
            return days[:k]
    return days


class ScriptedShoppers(ShopperSimulator):
    """Shopper ``i`` visits on the days of ``scripts[i % len(scripts)]`` (cut at the first
    gap over H) and churns after its last visit; nothing else happens."""

    def __init__(self, scripts: list[list[int]]) -> None:
        self.scripts = [np.array(lifetime(s), dtype=np.float64) for s in scripts]
        self.action_space = SPACE
        self.observation_names = history_feature_names(SPACE.n_arms)
        self.horizon_days = H

    @property
    def days(self) -> np.ndarray:
        return self._days

    def reset(self, n: int, *, seed: int | None = None) -> np.ndarray:
        self._script = [self.scripts[i % len(self.scripts)] for i in range(n)]
        self._visit = np.zeros(n, dtype=int)
        self._days = np.zeros(n)
        return np.zeros((n, self.obs_dim), dtype=np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, VisitOutcome]:
        n = self._days.size
        self.action_space.check(actions, n)
        churned = np.array([k + 1 >= len(s) for k, s in zip(self._visit, self._script)])
        nxt = np.array([s[k + 1] if k + 1 < len(s) else s[k] for k, s in zip(self._visit, self._script)])
        gap = np.where(churned, np.inf, nxt - self._days)
        zeros, no = np.zeros(n), np.zeros(n, dtype=bool)
        out = VisitOutcome(
            click=no,
            purchase=no,
            redeemed=no,
            spend=zeros,
            coupon_cost=zeros,
            cogs=zeros,
            gap_days=gap,
            churned=churned,
        )
        self._visit = self._visit + ~churned
        self._days = nxt
        return np.zeros((n, self.obs_dim), dtype=np.float32), out

    def replace(self, mask: np.ndarray) -> np.ndarray:
        self._visit[mask], self._days[mask] = 0, 0.0
        return np.zeros((self._days.size, self.obs_dim), dtype=np.float32)


def env_episode(days: list[int]) -> tuple[float, bool, bool]:
    """(retention return, terminated, truncated) of one env episode of the shopper."""
    env = ShopperEnv(ScriptedShoppers([days]))
    env.reset(seed=0)
    total, terminated, truncated = 0.0, False, False
    while not (terminated or truncated):
        _, reward, terminated, truncated, _ = env.step(0)
        total += reward
    return total, terminated, truncated


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Every case's visits (all scripted days, reactivations included) as an event log, with
    a last shopper on day 1000 so that no window is censored; the visit table."""
    t0 = pd.Timestamp("2024-01-01 10:00")
    rows = [
        (name, t0 + pd.Timedelta(days=d), "impression", f"i{k % 2}", 0.0, 1 / SPACE.n_actions)
        for name, (days, _, _) in CASES.items()
        for k, d in enumerate(days)
    ]
    rows.append(("zz-late", t0 + pd.Timedelta(days=1000), "impression", "i0", 0.0, 1 / SPACE.n_actions))
    path = Path(tmp_path_factory.mktemp("horizon")) / "events.parquet"
    pd.DataFrame(rows, columns=["user_id", "timestamp", "event", "item_id", "coupon", "propensity"]).to_parquet(path)
    log = read_events(path)
    return visits_with_trajectories(log, horizon_days=H), log.end


def test_the_definition() -> None:
    np.testing.assert_array_equal(in_window([0, H - 1, H, H + 1, np.nan], H), [True, True, False, False, False])
    np.testing.assert_array_equal(
        returned_in_window(np.array([H - 1, H - 1, H]), np.array([False, True, False]), H), [True, False, False]
    )
    np.testing.assert_array_equal(churned_after_gap([1, H, H + 1, np.inf, np.nan], H), [False, False, True, True, True])


@pytest.mark.parametrize("name", list(CASES))
def test_env_rollout_and_logs_agree_at_the_boundary(name: str, logged) -> None:
    days, return_visits, active = CASES[name]
    # the env: its retention return counts the return visits; the horizon (not churn) ends
    # the episode exactly when the shopper is active at H
    total, terminated, truncated = env_episode(days)
    assert total == return_visits
    assert (truncated, terminated) == (active, not active)
    # true-value rollouts
    value = evaluate_policy(ScriptedShoppers([days]), UniformPolicy(SPACE), 2, seed=0)
    assert value.return_visits.estimate == return_visits
    assert value.active_at_horizon.estimate == float(active)
    # logged trajectories, decisions and off-policy steps of the shopper's first lifetime
    visits, _ = logged
    mine = visits["user_id"].to_numpy() == name
    first = mine & (visits["trajectory_id"].to_numpy() == visits.loc[mine, "trajectory_id"].min())
    np.testing.assert_array_equal(visits.loc[first, "day"], lifetime(days))
    decisions = LoggedDecisions.from_visits(visits, ActionMap.fit(visits), H)
    assert decisions.returned[first].sum() == return_visits
    assert decisions.returned[first & ~decisions.in_window].sum() == 0  # a visit outside returns nothing
    steps = steps_from_decisions(decisions)
    tid = int(visits.loc[first, "trajectory_id"].iloc[0])
    assert steps.trajectory_reward[steps.trajectory_id == tid].sum() == return_visits
    assert (steps.trajectory_id == tid).sum() == int(in_window(visits.loc[first, "day"], H).sum())
    # the logged lifetime is active at H exactly when the shopper is
    table = trajectory_table(visits)
    row = table.loc[table["trajectory_id"] == tid].iloc[0]
    assert (row["duration_days"] >= H or not row["churned"]) == active


def test_retention_curves_read_at_h_agree(logged) -> None:
    scripts = [days for days, _, _ in CASES.values()]
    expected_active = np.mean([active for _, _, active in CASES.values()])
    expected_visits = np.mean([visits for _, visits, _ in CASES.values()])
    place = rollout(ScriptedShoppers(scripts), UniformPolicy(SPACE), "uniform", len(scripts), seed=0)
    assert place.values["return_visits"].estimate == pytest.approx(expected_visits)
    assert place.values["active_at_horizon"].estimate == pytest.approx(expected_active)
    assert place.curve.at[str(H)].estimate == pytest.approx(expected_active)
    visits, log_end = logged
    first = first_lifetimes(trajectory_table(visits))
    first = first.loc[first["user_id"] != "zz-late"]
    duration, churned = lifetime_durations(first, log_end, H)
    assert kaplan_meier(duration, churned).at(H)[0] == pytest.approx(expected_active)


def test_horizon_from_gaps_is_the_rounded_up_quantile_within_its_bounds():
    gaps = np.arange(1.0, 101.0)  # the 0.9-quantile of 1..100 is 90.1: 91 days
    assert horizon_from_gaps(gaps, span_days=365) == 91
    assert horizon_from_gaps(gaps, span_days=100) == 50  # at most half the span
    assert horizon_from_gaps(np.array([1.0, 2.0, np.nan, -3.0]), span_days=365) == 7  # at least 7 days
    assert horizon_from_gaps(gaps, span_days=365, quantile=0.5) == 51
    with pytest.raises(ValueError, match="no shopper visits twice"):
        horizon_from_gaps(np.array([np.nan]), span_days=365)
    with pytest.raises(ValueError, match="quantile"):
        horizon_from_gaps(gaps, span_days=365, quantile=1.0)
