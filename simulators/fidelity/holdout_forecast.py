r"""Forecasting each shopper's visits after a cutoff: replay their history, then simulate on.

For every shopper with visits before the cutoff, :func:`forecast_visits`

1. feeds the shopper's visits through
   :meth:`~retentionrl.simulators.learned.simulator.LearnedSimulator.observe` with the logged actions and
   outcomes (teacher forcing: model state and observable history as after the real visits).
   The whole history is fed, earlier lifetimes included: a dormancy spell (a gap longer than
   :math:`H`) enters the shopper's memory as a gap of :math:`H` days, the longest the model
   knows, so that a shopper who came back carries their past with them;
2. at the last visit, ``c`` days before the cutoff: a shopper seen within :math:`H` days
   (``c < H``) draws the gap from the model's churn-or-return law *given no return before
   the cutoff*; a shopper quiet for longer (``c >= H``) churned there;
3. after a churn the shopper is **dormant** from :math:`H` days after their last visit and
   comes back after the days the simulator's reactivation law draws
   (:mod:`retentionrl.simulators.learned.reactivation`), given the dormancy so far
   (:math:`c - H` days for a shopper dormant at the cutoff); :math:`n` is the visits of the
   lifetime that ended;
4. the simulator steps on (action 0: purchase-only logs have no actions), each churn followed
   by a reactivation as in 3 and entered into memory as in 1, until the next visit falls
   after the holdout window; visits and spend are counted per shopper, visits per week.

A simulator whose reactivation law has no reactivation (``shape`` 0, as one fitted on a log
where nobody came back) forecasts 0 visits for shoppers dormant at the cutoff.

Each replica is one draw of the shopper's future, so the replicas are a sample of the
predictive distribution of their visit count: its mean forecasts totals, its median is the
point forecast that minimises the absolute error. Histories are right-aligned in the batch
(shorter ones start later; slots before their start are reset after each step), and
shoppers are processed in groups of similar length, so the work is about the number of
logged visits.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd

from retentionrl.interactions.trajectories import DAY_NS
from retentionrl.simulators.learned.simulator import LearnedSimulator


@dataclass(frozen=True)
class HoldoutForecast:
    """Simulated futures of every shopper in the holdout window.

    :param visits: visits of each shopper (rows, indexed by ``user_id``) in each replica
        (columns).
    :param spend: what each shopper spent in those visits, same shape.
    :param weekly: the mean over replicas of all shoppers' visits in each week of the
        window (the last week partial where the window is not whole weeks).
    """

    visits: pd.DataFrame
    spend: pd.DataFrame
    weekly: np.ndarray


def forecast_visits(
    sim: LearnedSimulator,
    visits: pd.DataFrame,
    cutoff: pd.Timestamp,
    holdout_days: float,
    *,
    replicas: int = 10,
    seed: int = 0,
    groups: int = 4,
) -> HoldoutForecast:
    """Simulated visits (and spend) per shopper in ``[cutoff, cutoff + holdout_days)``.

    :param visits: calibration visits with trajectory columns computed with the simulator's
        horizon and ``log_end`` = ``cutoff``, sorted by ``(user_id, start)``.
    :param replicas: draws of each shopper's future.
    :param groups: shoppers are replayed in this many groups of similar history length.
    :raises ValueError: when the visits' lifetimes were cut with another horizon.
    """
    n_weeks = int(np.ceil(holdout_days / 7))
    last = visits.drop_duplicates("user_id", keep="last")
    if not np.array_equal(last["churned"].to_numpy(), _days_since_last_visit(last, cutoff) >= sim.horizon_days):
        raise ValueError(
            f"the visits' lifetimes were not cut with the simulator's horizon H = {sim.horizon_days} days "
            "at the cutoff: build them with add_trajectories(visits, cutoff, horizon_days=sim.horizon_days)"
        )
    index = pd.Index(last["user_id"].to_numpy(), name="user_id")
    columns = pd.RangeIndex(replicas, name="replica")
    per_user, spend = pd.DataFrame(0.0, index=index, columns=columns), pd.DataFrame(0.0, index=index, columns=columns)
    weekly = np.zeros(n_weeks)
    lengths = visits.groupby("user_id", sort=False).size()
    bounds = np.quantile(lengths.to_numpy(), np.linspace(0, 1, groups + 1)[1:-1]) if groups > 1 else []
    group_of = np.searchsorted(np.unique(bounds), lengths.to_numpy(), side="left")
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(groups)]
    for g in range(groups):
        owners = lengths.index[group_of == g]
        if len(owners):
            part = visits.loc[visits["user_id"].isin(owners)]
            futures = _simulate_group(sim, part, cutoff, holdout_days, replicas, n_weeks, seeds[g])
            order = part["user_id"].drop_duplicates().to_numpy()
            per_user.loc[order] = futures.visits.reshape(replicas, len(order)).T
            spend.loc[order] = futures.spend.reshape(replicas, len(order)).T
            weekly += futures.weekly / replicas
    return HoldoutForecast(per_user, spend, weekly)


@dataclass(frozen=True)
class _Futures:
    """Per row (replica-major: row ``r * n + i`` is shopper ``i`` in replica ``r``): visits and
    spend in the window; and all rows' visits per week."""

    visits: np.ndarray
    spend: np.ndarray
    weekly: np.ndarray


def _simulate_group(
    sim: LearnedSimulator,
    part: pd.DataFrame,
    cutoff: pd.Timestamp,
    holdout_days: float,
    replicas: int,
    n_weeks: int,
    seed: int,
) -> _Futures:
    """Steps 1-4 of the module docstring for the shoppers of ``part`` (all their visits)."""
    users = part["user_id"].to_numpy()
    first = np.r_[True, users[1:] != users[:-1]]
    is_last = np.r_[first[1:], True]
    shopper = np.cumsum(first) - 1
    n_shoppers = int(shopper[-1]) + 1
    length = np.bincount(shopper)
    longest = int(length.max())
    offset = longest - length  # right alignment: shopper i's visit k happens at step offset_i + k
    position = np.arange(len(part)) - np.flatnonzero(first)[shopper]
    step_of = offset[shopper] + position
    start = part["start"].to_numpy().astype("datetime64[ns]").view("int64")
    horizon = float(sim.horizon_days)
    gap = np.minimum((np.r_[start[1:], 0] - start) / DAY_NS, horizon)  # a dormancy spell remembered as H
    action, logged = sim.card.action_map.encode(part)
    fields = {
        "action": np.where(logged, action, 0),
        "click": part["clicked"].to_numpy(float),
        "purchase": part["purchased"].to_numpy(float),
        "redeemed": part["redeemed"].to_numpy(float),
        "spend": part["spend"].to_numpy(float),
        "gap": np.where(is_last, 1.0, gap),
    }
    grid = {k: np.zeros((n_shoppers, longest)) for k in fields}
    grid["gap"][:] = 1.0
    for k, v in fields.items():
        grid[k][shopper, step_of] = v
    final = part.loc[is_last]
    since_last = _days_since_last_visit(final, cutoff)
    dormant = final["churned"].to_numpy()
    grid["gap"][:, -1] = np.where(dormant, np.inf, np.nan)  # churned; or drawn given > since_last

    def tile(a: np.ndarray) -> np.ndarray:
        return np.tile(a, (replicas,) + (1,) * (a.ndim - 1))

    grid = {k: tile(v) for k, v in grid.items()}
    offset_r, since_r = tile(offset), tile(since_last)
    sim.reset(n_shoppers * replicas, seed=seed)
    for t in range(longest):
        outcome = SimpleNamespace(
            click=grid["click"][:, t],
            purchase=grid["purchase"][:, t],
            redeemed=grid["redeemed"][:, t],
            spend=grid["spend"][:, t],
        )
        _, out = sim.observe(
            grid["action"][:, t].astype(np.int64),
            outcome,
            grid["gap"][:, t],
            min_gap_days=since_r if t == longest - 1 else None,
            memory_gap=horizon,
        )
        waiting = offset_r > t
        if waiting.any():
            sim.replace(waiting)
    rng = np.random.default_rng(seed)
    lifetime_visits = tile(final["visit_index"].to_numpy(np.float64) + 1.0)
    dormant_days = np.maximum(since_r - horizon, 0.0)  # 0 where the dormancy begins after the cutoff
    back = horizon + sim.reactivation.sample(lifetime_visits, rng, dormant_days)
    at = -since_r + np.where(out.churned, back, out.gap_days)  # day of the next visit, from the cutoff
    return _continue(sim, rng, at, out.churned.copy(), lifetime_visits, holdout_days, n_weeks)


def _days_since_last_visit(last: pd.DataFrame, cutoff: pd.Timestamp) -> np.ndarray:
    start = last["start"].to_numpy().astype("datetime64[ns]").view("int64")
    return (pd.Timestamp(cutoff).value - start) / DAY_NS


def _continue(
    sim: LearnedSimulator,
    rng: np.random.Generator,
    at: np.ndarray,
    reactivating: np.ndarray,
    lifetime_visits: np.ndarray,
    holdout_days: float,
    n_weeks: int,
) -> _Futures:
    """Visits of every row until its next one falls after the window (step 4).

    :param at: day (from the cutoff) of each row's next visit; ``inf``: none.
    :param reactivating: that visit starts a new lifetime (its visit count starts again).
    :param lifetime_visits: visits so far in each row's lifetime (the reactivation law's
        :math:`n`).
    """
    counts, spend, weekly = np.zeros(at.size), np.zeros(at.size), np.zeros(n_weeks)
    actions = np.zeros(at.size, dtype=np.int64)
    horizon = float(sim.horizon_days)
    pending = at < holdout_days
    while pending.any():
        lifetime_visits = np.where(pending & reactivating, 0.0, lifetime_visits) + pending
        counts += pending
        weekly += np.bincount(np.clip((at[pending] // 7).astype(np.int64), 0, n_weeks - 1), minlength=n_weeks)
        _, out = sim.step(actions, memory_gap=horizon)
        spend += np.where(pending, out.spend, 0.0)
        back = horizon + sim.reactivation.sample(lifetime_visits, rng)
        at = np.where(pending, at + np.where(out.churned, back, out.gap_days), at)
        reactivating = np.where(pending, out.churned, reactivating)
        pending &= at < holdout_days
    return _Futures(counts, spend, weekly)
