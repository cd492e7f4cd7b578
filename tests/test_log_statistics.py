"""Purchase-day statistics: hand-computed values, BG/NBD recovery of a known r, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retentionrl.evaluation.log_statistics import LogStatistics, purchase_log_statistics, statistics_table
from retentionrl.interactions.io import EventLog, read_events
from tests.conftest import shared_file

DAY0 = pd.Timestamp("2024-01-01")


def _read(rows: list[tuple], tmp_path: Path) -> EventLog:
    """A world-format log (``user_id, timestamp, event, item_id, session_id, propensity, price``)."""
    columns = ["user_id", "timestamp", "event", "item_id", "session_id", "propensity", "price"]
    frame = pd.DataFrame(rows, columns=columns)
    path = tmp_path / "events.parquet"
    frame.to_parquet(path, index=False)
    return read_events(path, "events")


def _visit(user: str, day: float, session: int, *, buy: bool = True) -> list[tuple]:
    """One world visit on ``day`` (fractional: time of day): impression, click and, if ``buy``, a purchase."""
    t = DAY0 + pd.Timedelta(days=day)
    rows = [
        (user, t, "impression", "i1", session, 0.25, None),
        (user, t + pd.Timedelta("1min"), "click", "i1", session, None, None),
    ]
    return rows + [(user, t + pd.Timedelta("5min"), "purchase", "i1", session, None, 10.0)] if buy else rows


def _hand_log(tmp_path: Path) -> EventLog:
    """Purchase days, with day 0 = 2024-01-01 and the log's last event on day 300:

    ====  ==================  ===========================================================
    A     0, 10, 40, 200      two purchases on day 0 count once; first lifetime 0..40
                              (gap 160 > H), L = 40
    B     0                   a cancel on day 5 and a visit without purchase on day 150
                              count nothing; never returns, L = 0
    C     5, 100              gap 95 > H: never returns, L = 0
    D     20, 110, 150        gap 90 = H is a return; churned at 150 (300 - 150 >= H),
                              L = 130
    E     250, 259, 260, 300  23:58 and 00:01 are two calendar days; first purchase < H
                              before the end: outside the cohort, censored at 0
    F     --                  impressions and clicks only: not a customer
    ====  ==================  ===========================================================
    """
    rows = [
        *_visit("A", 0.4, 0),
        ("A", DAY0 + pd.Timedelta("18h"), "purchase", "i2", 0, None, 5.0),
        *_visit("A", 10.5, 1),
        *_visit("A", 40.5, 2),
        *_visit("A", 200.5, 3),
        *_visit("B", 0.5, 0),
        ("B", DAY0 + pd.Timedelta("5D12h"), "cancel", "i1", 0, None, 10.0),
        *_visit("B", 150.5, 1, buy=False),
        *_visit("C", 5.5, 0),
        *_visit("C", 100.5, 1),
        *_visit("D", 20.5, 0),
        *_visit("D", 110.5, 1),
        *_visit("D", 150.5, 2),
        *_visit("E", 250.5, 0),
        *_visit("E", 259 + 23.9 / 24, 1),
        *_visit("E", 260 + 1 / 1440, 2),
        *_visit("E", 300.5, 3),
        *_visit("F", 3.5, 0, buy=False),
        *_visit("F", 299.5, 1, buy=False),
    ]
    return _read(rows, tmp_path)


def test_hand_made_log_matches_hand_computation(tmp_path: Path) -> None:
    stats = purchase_log_statistics(_hand_log(tmp_path), bgnbd=False)
    assert stats.window_days == 300
    assert (stats.n_customers, stats.n_transactions) == (5, 14)  # A 4, B 1, C 2, D 3, E 4
    assert stats.transactions_per_customer_mean == pytest.approx(2.8)
    assert stats.transactions_per_customer_median == 3.0
    assert stats.single_purchase_day_share == pytest.approx(0.2)  # B
    assert stats.never_return_cohort == 4  # A, B, C, D
    assert stats.never_return_share == pytest.approx(0.5)  # B, C
    # gaps 1, 9, 10, 30, 40, 40, 90, 95, 160; linear quantiles at positions 0.8, 2, 4, 6, 7.2
    gaps = [stats.gap_days_p10, stats.gap_days_p25, stats.gap_days_p50, stats.gap_days_p75, stats.gap_days_p90]
    np.testing.assert_allclose(gaps, [7.4, 10.0, 40.0, 90.0, 108.0])
    # Kaplan-Meier on L = A 40, B 0, C 0, D 130 (churned), E censored at 0:
    # S(0) = 1 - 2/5, S(40) = 0.6 * (1 - 1/2)
    assert stats.active_share_day30 == pytest.approx(0.6)
    assert stats.active_share_day90 == pytest.approx(0.3)
    fit = [stats.bgnbd_r, stats.bgnbd_alpha, stats.bgnbd_a, stats.bgnbd_b, stats.bgnbd_penalizer, stats.visit_rate_cv]
    assert all(math.isnan(v) for v in fit)


def test_horizon_sets_the_return_window(tmp_path: Path) -> None:
    stats = purchase_log_statistics(_hand_log(tmp_path), horizon_days=100, bgnbd=False)
    assert stats.never_return_cohort == 4  # D: 300 - 20 >= 100
    assert stats.never_return_share == pytest.approx(0.25)  # C's gap of 95 days is a return now


def test_short_log_leaves_undefined_statistics_nan(tmp_path: Path) -> None:
    log = _read([*_visit("A", 0.5, 0), *_visit("B", 3.5, 0), *_visit("B", 20.5, 1, buy=False)], tmp_path)
    stats = purchase_log_statistics(log, bgnbd=False)
    assert (stats.n_customers, stats.single_purchase_day_share, stats.never_return_cohort) == (2, 1.0, 0)
    for value in (stats.never_return_share, stats.gap_days_p50, stats.active_share_day30, stats.active_share_day90):
        assert math.isnan(value)
    data = stats.to_dict()
    assert data["never_return_share"] is None and data["active_share_day30"] is None


def _simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, days: int, seed: int) -> pd.DataFrame:
    """Purchases of a BG/NBD population: first purchases uniform in the first half of the window;
    while alive, Poisson arrivals at rate lambda ~ Gamma(r, alpha); dropout after the G-th
    repeat, G ~ Geometric(p), p ~ Beta(a, b). Given K arrivals in the customer's age, their
    times are K sorted uniforms, and the first min(K, G) are kept."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, days // 2, n) + rng.random(n)
    age = days - first
    arrivals = rng.poisson(rng.gamma(r, 1.0 / alpha, n) * age)
    dropout_after = rng.geometric(rng.beta(a, b, n))
    owner = np.repeat(np.arange(n), arrivals)
    at = first[owner] + rng.random(owner.size) * age[owner]
    order = np.lexsort((at, owner))
    owner, at = owner[order], at[order]
    keep = np.arange(owner.size) - np.searchsorted(owner, owner) < dropout_after[owner]
    times = np.r_[first, at[keep]]
    return pd.DataFrame(
        {
            "user_id": np.r_[np.arange(n), owner[keep]],
            "timestamp": DAY0 + pd.to_timedelta(times, unit="D"),
            "event": "purchase",
            "item_id": 0,
        }
    )


@pytest.mark.parametrize(("r", "alpha"), [(0.7, 14.0), (2.0, 40.0)])
def test_bgnbd_fit_recovers_the_visit_rate_shape(r: float, alpha: float, tmp_path: Path) -> None:
    path = tmp_path / "bgnbd.parquet"
    _simulate_bgnbd(3_000, r, alpha, a=0.8, b=4.0, days=365, seed=0).to_parquet(path, index=False)
    stats = purchase_log_statistics(read_events(path, "events"))
    assert stats.bgnbd_penalizer == 0.0
    assert stats.bgnbd_r == pytest.approx(r, rel=0.10)
    assert stats.bgnbd_alpha == pytest.approx(alpha, rel=0.15)  # mean rate r / alpha: 0.05 per day
    assert stats.visit_rate_cv == pytest.approx(1.0 / math.sqrt(stats.bgnbd_r))


def test_dict_round_trip_and_table(tmp_path: Path) -> None:
    stats = purchase_log_statistics(_hand_log(tmp_path), bgnbd=False)
    data = json.loads(json.dumps(stats.to_dict(), allow_nan=False))
    assert LogStatistics.from_dict(data).to_dict() == stats.to_dict()
    table = statistics_table({"hand": stats, "again": LogStatistics.from_dict(data)}).splitlines()
    assert table[0].split() == ["statistic", "hand", "again"]
    assert len(table) == 2 + len(data)
    assert "never return within H (cohort)" in table[2 + list(data).index("never_return_share")]
    assert table[2 + list(data).index("bgnbd_r")].split()[-2:] == ["n/a", "n/a"]


def test_bad_input(tmp_path: Path) -> None:
    cancel = ("A", DAY0 + pd.Timedelta("2D"), "cancel", "i1", 0, None, 1.0)
    no_purchase = _read([*_visit("A", 0.5, 0, buy=False), cancel], tmp_path)
    with pytest.raises(ValueError, match=r"events\.parquet: no purchase events \(event counts: .*'impression': 1"):
        purchase_log_statistics(no_purchase)
    log = _hand_log(tmp_path)
    for horizon in (0.0, -5.0, math.nan):
        with pytest.raises(ValueError, match="horizon_days must be > 0"):
            purchase_log_statistics(log, horizon_days=horizon)
    with pytest.raises(ValueError, match=r"missing keys \['window_days'\], unknown keys \['windows'\]"):
        data = purchase_log_statistics(log, bgnbd=False).to_dict()
        LogStatistics.from_dict({**{k: v for k, v in data.items() if k != "window_days"}, "windows": 300})
    with pytest.raises(ValueError, match="at least one log"):
        statistics_table({})


def test_online_retail() -> None:
    log = read_events(shared_file("online_retail", "online_retail.parquet"), "online-retail")
    stats = purchase_log_statistics(log)
    assert (stats.n_customers, stats.n_transactions, stats.never_return_cohort) == (4_339, 16_766, 3_370)
    assert stats.window_days == 373
    assert stats.gap_days_p10 < stats.gap_days_p50 < stats.gap_days_p90
    assert 0 < stats.active_share_day90 < stats.active_share_day30 < 1
    assert stats.bgnbd_penalizer == 0.0  # converges unpenalized (penalizer 0.01 falls back to 0.1 on this log)
    assert 0.5 < stats.bgnbd_r < 1.2
