"""Events -> visits -> trajectories, checked against values computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retentionrl.interactions.io import read_events
from retentionrl.interactions.retention import kaplan_meier
from retentionrl.interactions.trajectories import add_trajectories, trajectory_table, window_closed
from retentionrl.interactions.visits import build_visits
from tests.conftest import small_log


@pytest.fixture
def log(small_log_path: Path):
    return read_events(small_log_path, "events")


def test_session_visits_match_hand_computation(log) -> None:
    v = build_visits(log)  # auto -> session: the log has impressions
    assert v["user_id"].tolist() == ["a", "a", "b"]
    assert v["n_events"].tolist() == [3, 2, 2]  # the cancellation starts no visit
    assert v["clicked"].tolist() == [True, False, False]
    assert v["purchased"].tolist() == [True, False, True]
    np.testing.assert_allclose(v["spend"], [40.0, 0.0, 10.0])
    np.testing.assert_allclose(v["coupon_cost"], [4.0, 0.0, 0.0])
    assert v["redeemed"].tolist() == [True, False, False]
    assert v["rec_item"].tolist() == ["i1", "i2", "i3"]
    np.testing.assert_allclose(v["rec_coupon"], [0.10, 0.0, 0.0])
    np.testing.assert_allclose(v["propensity"], [0.25, 0.5, 0.125])
    assert v["end"].iloc[0] - v["start"].iloc[0] == pd.Timedelta("5min")


def test_cost_of_goods_is_unit_cost_times_quantity_over_purchases(log, tmp_path: Path) -> None:
    assert not log.records_cogs
    np.testing.assert_array_equal(build_visits(log)["cogs"], 0.0)  # no unit_cost: profit is net revenue
    df = small_log()
    df["unit_cost"] = [None, None, 12.0, None, None, None, 4.0, 4.0]  # the cancellation's cost is not counted
    df.to_parquet(tmp_path / "e.parquet", index=False)
    costed = read_events(tmp_path / "e.parquet", "events")
    assert costed.records_cogs
    v = build_visits(costed)
    np.testing.assert_allclose(v["cogs"], [24.0, 0.0, 4.0])  # 12 x 2 units; 4 x 1 unit
    np.testing.assert_allclose(v["spend"] - v["coupon_cost"] - v["cogs"], [12.0, 0.0, 6.0])


def test_session_gap_and_day_mode(log) -> None:
    assert len(build_visits(log, session_gap="3h")) == 2
    day = build_visits(log, mode="day")
    assert day["n_events"].tolist() == [5, 2]
    with pytest.raises(ValueError, match="session_gap must be positive"):
        build_visits(log, session_gap="0s")
    with pytest.raises(ValueError, match="needs a 'session_id' column"):
        build_visits(log, mode="session_id")


def test_session_id_groups_interleaved_events(tmp_path: Path) -> None:
    df = small_log()
    df["session_id"] = ["s1", "s2", "s1", "s2", "s2", "s3", "s3", "s3"]
    path = tmp_path / "e.parquet"
    df.to_parquet(path, index=False)
    v = build_visits(read_events(path, "events"))  # auto -> session_id
    assert v["n_events"].tolist() == [2, 3, 2]
    np.testing.assert_allclose(v["spend"], [40.0, 0.0, 10.0])
    assert v["start"].is_monotonic_increasing


@pytest.mark.parametrize(
    ("horizon", "trajectory", "churned", "censored"),
    [
        (90.0, [0, 0, 1], [False, False, False], [False, True, True]),
        (1.0, [0, 0, 1], [False, True, True], [False, False, False]),
        (2.5, [0, 0, 1], [False, True, False], [False, False, True]),
        (0.05, [0, 1, 2], [True, True, True], [False, False, False]),  # a 2-hour gap > H
    ],
)
def test_trajectories_churn_and_censoring(log, horizon, trajectory, churned, censored) -> None:
    # log end = the cancellation, 3 days after the first event
    v = add_trajectories(build_visits(log), log.end, horizon_days=horizon)
    assert v["trajectory_id"].tolist() == trajectory
    assert v["churned"].tolist() == churned
    assert v["censored"].tolist() == censored
    if horizon > 1:
        np.testing.assert_allclose(v["gap_days"].to_numpy()[:1], [2 / 24])
        np.testing.assert_allclose(v["day"], [0.0, 2 / 24, 0.0])
    t = trajectory_table(v)
    assert len(t) == len(set(trajectory)) and t["n_visits"].sum() == 3


@pytest.mark.parametrize(
    ("horizon", "closed"),
    [
        (90.0, [False, False, False]),  # no window closes within the log's 3 days
        (1.0, [True, True, True]),  # windows close on Jan 2 10:00 and Jan 3 10:00
        (2.5, [True, True, False]),  # the second trajectory (from Jan 2 10:00) closes Jan 4 22:00, after the end
    ],
)
def test_a_window_is_closed_when_it_ends_before_the_log(log, horizon, closed) -> None:
    # visits Jan 1 10:00 and 12:00 and Jan 2 10:00; the log ends Jan 4 10:00
    v = add_trajectories(build_visits(log), log.end, horizon_days=horizon)
    assert window_closed(v, log.end, horizon).tolist() == closed
    # a window that ends exactly at the log's end is closed: its last day is observed
    assert window_closed(v, log.end, 3.0).tolist()[:2] == [True, True]
    assert window_closed(v, log.end - pd.Timedelta(seconds=1), 3.0).tolist()[:2] == [False, False]


def test_visit_totals_conserve_events(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    df = pd.DataFrame(
        {
            "user_id": rng.integers(0, 80, n),
            "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 60 * 86_400, n), unit="s"),
            "event": rng.choice(["impression", "view", "purchase", "cancel"], n),
            "item_id": rng.integers(0, 50, n),
            "price": rng.uniform(1, 20, n).round(2),
        }
    )
    path = tmp_path / "e.parquet"
    df.to_parquet(path, index=False)
    log = read_events(path, "events")
    v = build_visits(log, session_gap="6h")
    assert v["n_events"].sum() == (df["event"] != "cancel").sum()
    np.testing.assert_allclose(v["spend"].sum(), df.loc[df["event"] == "purchase", "price"].sum())
    t = add_trajectories(v, log.end)
    assert ((t["churned"] | t["censored"]).groupby(t["trajectory_id"]).sum() == 1).all()


def test_kaplan_meier_matches_hand_computation() -> None:
    curve = kaplan_meier(np.array([0.0, 10.0, 20.0]), np.array([True, True, False]))
    assert curve.at(-1)[0] == 1.0
    assert curve.at(7)[0] == pytest.approx(2 / 3)
    assert curve.at(15)[0] == pytest.approx(1 / 3)
    assert curve.at(25)[0] == pytest.approx(1 / 3)
    lo, hi = curve.at(7)[1:]
    assert lo < 2 / 3 < hi


def test_retention_curve_from_logs_matches_the_worlds_truth(tmp_path: Path) -> None:
    """Censoring open lifetimes H days before the log's end removes the upward bias."""
    from retentionrl.interactions.retention import first_lifetimes, lifetime_durations
    from retentionrl.simulators.policy_registry import make_policy
    from retentionrl.simulators.world.config import WorldConfig
    from retentionrl.simulators.world.logs import write_world_logs
    from retentionrl.simulators.world.simulator import GroundTruthWorld

    write_world_logs(WorldConfig(), 3_000, 240, 5, tmp_path / "w.parquet")
    log = read_events(tmp_path / "w.parquet", "events")
    first = first_lifetimes(trajectory_table(add_trajectories(build_visits(log), log.end)))
    estimate, low, high = kaplan_meier(*lifetime_durations(first, log.end, 90.0)).at(90)
    truth = GroundTruthWorld().evaluate(make_policy("softmax", WorldConfig()), 6_000, 1).active_at_horizon
    assert low - 0.02 < truth.estimate < high + 0.02, (estimate, low, high, truth)
    naive = kaplan_meier(first["duration_days"].to_numpy(), first["churned"].to_numpy()).at(90)[0]
    assert naive > high  # censoring at the last visit counts recent churners as survivors
