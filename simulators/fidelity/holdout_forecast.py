"""Forecasting each shopper's visits after a cutoff: replay their history, then simulate on.

For every shopper with visits before the cutoff, :func:`forecast_visits`

1. feeds the visits of the shopper's current lifetime (the one the cutoff censors) through
   :meth:`~retentionrl.simulators.learned.simulator.LearnedSimulator.observe` with the logged actions and outcomes
   (teacher forcing: GRU state and observable history as after the real visits);
2. at the last visit, draws the gap from the model's return hazard *given that no return
   happened before the cutoff*, ``c`` days after it;
3. steps the simulator on (action 0: purchase-only logs have no actions) until the visits
   pass the end of the holdout window, counting visits per week.

A lifetime that ends with churn makes the shopper **dormant** :math:`H` days after their
last visit; they come back after the days the simulator's reactivation law draws
(:mod:`retentionrl.simulators.learned.reactivation`), as a new lifetime: fresh model state, stepped on
as in 3. A shopper already dormant at the cutoff (no visit in the :math:`H` days before
it, :math:`c \\ge H`) starts there, the reactivation drawn given a dormancy already
:math:`c - H` days long. A simulator whose law has no reactivation (``shape`` 0, as one
fitted on a log where nobody came back) forecasts 0 visits for dormant shoppers.

Each replica is one draw of the shopper's future, so the replicas are a sample of the
predictive distribution of their visit count: its mean forecasts totals, its median is the
point forecast that minimises the absolute error. Trajectories are right-aligned in the
batch (shorter ones start later; slots before their start are reset after each step), and
shoppers are processed in groups of similar length, so the work is about the number of
logged visits.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd

from retentionrl.simulators.learned.simulator import LearnedSimulator

DAY_NS = 86_400 * 10**9


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
    :param groups: trajectories are replayed in this many groups of similar length.
    :raises ValueError: when the visits' lifetimes were cut with another horizon.
    """
    n_weeks = int(np.ceil(holdout_days / 7))
    users = visits["user_id"].drop_duplicates().to_numpy()
    index, columns = pd.Index(users, name="user_id"), pd.RangeIndex(replicas, name="replica")
    per_user = pd.DataFrame(0.0, index=index, columns=columns)
    spend = pd.DataFrame(0.0, index=index, columns=columns)
    weekly = np.zeros(n_weeks)
    last = visits.drop_duplicates("user_id", keep="last")
    dormant = last["churned"].to_numpy()
    if not np.array_equal(dormant, _days_since_last_visit(last, cutoff) >= sim.horizon_days):
        raise ValueError(
            f"the visits' lifetimes were not cut with the simulator's horizon H = {sim.horizon_days} days "
            "at the cutoff: build them with add_trajectories(visits, cutoff, horizon_days=sim.horizon_days)"
        )
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(groups + 1)]
    parts: list[tuple[np.ndarray, _Futures]] = []
    if dormant.any():
        chosen = last.loc[dormant]
        parts.append(
            (
                chosen["user_id"].to_numpy(),
                _simulate_dormant(sim, chosen, cutoff, holdout_days, replicas, n_weeks, seeds[-1]),
            )
        )
    current = visits.loc[visits["trajectory_id"].isin(last.loc[~dormant, "trajectory_id"])]
    if not current.empty:
        lengths = current.groupby("trajectory_id", sort=False).size()
        bounds = np.quantile(lengths.to_numpy(), np.linspace(0, 1, groups + 1)[1:-1]) if groups > 1 else []
        group_of = np.searchsorted(np.unique(bounds), lengths.to_numpy(), side="left")
        for g in range(groups):
            chosen_traj = lengths.index[group_of == g]
            if len(chosen_traj):
                part = current.loc[current["trajectory_id"].isin(chosen_traj)]
                owners = part.loc[part["visit_index"].to_numpy() == 0, "user_id"].to_numpy()
                parts.append((owners, _simulate_group(sim, part, cutoff, holdout_days, replicas, n_weeks, seeds[g])))
    for owners, futures in parts:
        per_user.loc[owners] = futures.visits.reshape(replicas, len(owners)).T
        spend.loc[owners] = futures.spend.reshape(replicas, len(owners)).T
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
    """Step 1-3 of the module docstring for the open lifetimes in ``part``."""
    first = part["visit_index"].to_numpy() == 0
    traj = np.cumsum(first) - 1
    n_traj = int(traj[-1]) + 1
    length = np.bincount(traj)
    longest = int(length.max())
    offset = longest - length  # right alignment: trajectory i's visit k happens at step offset_i + k
    step_of = offset[traj] + part["visit_index"].to_numpy()
    action, logged = sim.card.action_map.encode(part)
    action = np.where(logged, action, 0)
    fields = {
        "action": action,
        "click": part["clicked"].to_numpy(float),
        "purchase": part["purchased"].to_numpy(float),
        "redeemed": part["redeemed"].to_numpy(float),
        "spend": part["spend"].to_numpy(float),
        "gap": part["gap_days"].to_numpy(float),
    }
    grid = {k: np.zeros((n_traj, longest)) for k in fields}
    grid["gap"][:] = 1.0
    for k, v in fields.items():
        grid[k][traj, step_of] = v
    since_last = _days_since_last_visit(part.loc[np.r_[first[1:], True]], cutoff)
    grid["gap"][np.arange(n_traj), longest - 1] = np.nan  # unknown: drawn given > since_last

    def tile(a: np.ndarray) -> np.ndarray:
        return np.tile(a, (replicas,) + (1,) * (a.ndim - 1))

    grid = {k: tile(v) for k, v in grid.items()}
    offset_r, since_r = tile(offset), tile(since_last)
    sim.reset(n_traj * replicas, seed=seed)
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
        )
        waiting = offset_r > t
        if waiting.any():
            sim.replace(waiting)
    rng = np.random.default_rng(seed)
    lifetime_visits = tile(length).astype(np.float64)
    reactivation = sim.horizon_days + sim.reactivation.sample(lifetime_visits, rng)
    at = -since_r + np.where(out.churned, reactivation, out.gap_days)  # day of the next visit, from the cutoff
    return _continue(sim, rng, at, out.churned.copy(), lifetime_visits, holdout_days, n_weeks)


def _simulate_dormant(
    sim: LearnedSimulator,
    last: pd.DataFrame,
    cutoff: pd.Timestamp,
    holdout_days: float,
    replicas: int,
    n_weeks: int,
    seed: int,
) -> _Futures:
    """Shoppers dormant at the cutoff (``last``: their last visit): reactivation drawn given
    the dormancy so far, then new lifetimes (module docstring)."""
    since = np.tile(_days_since_last_visit(last, cutoff), replicas)
    lifetime_visits = np.tile(last["visit_index"].to_numpy(np.float64) + 1.0, replicas)
    rng = np.random.default_rng(seed)
    dormant_days = since - sim.horizon_days
    at = sim.reactivation.sample(lifetime_visits, rng, dormant_days) - dormant_days
    sim.reset(at.size, seed=seed)
    return _continue(sim, rng, at, np.ones(at.size, bool), lifetime_visits, holdout_days, n_weeks)


def _days_since_last_visit(last: pd.DataFrame, cutoff: pd.Timestamp) -> np.ndarray:
    start = last["start"].to_numpy().astype("datetime64[ns]").view("int64")
    return (pd.Timestamp(cutoff).value - start) / DAY_NS


def _continue(
    sim: LearnedSimulator,
    rng: np.random.Generator,
    at: np.ndarray,
    fresh: np.ndarray,
    lifetime_visits: np.ndarray,
    holdout_days: float,
    n_weeks: int,
) -> _Futures:
    """Visits of every row until its next one falls after the window (steps 3 and after).

    :param at: day (from the cutoff) of each row's next visit; ``inf``: none.
    :param fresh: that visit starts a new lifetime (a reactivation): the row's model state
        is reset before it.
    :param lifetime_visits: visits so far in each row's lifetime (the reactivation law's
        :math:`n`).
    """
    counts, spend, weekly = np.zeros(at.size), np.zeros(at.size), np.zeros(n_weeks)
    actions = np.zeros(at.size, dtype=np.int64)
    pending = at < holdout_days
    while pending.any():
        restart = pending & fresh
        if restart.any():
            sim.replace(restart)
            lifetime_visits = np.where(restart, 0.0, lifetime_visits)
        counts += pending
        weekly += np.bincount(np.clip((at[pending] // 7).astype(np.int64), 0, n_weeks - 1), minlength=n_weeks)
        lifetime_visits = lifetime_visits + pending
        _, out = sim.step(actions)
        spend += np.where(pending, out.spend, 0.0)
        reactivation = sim.horizon_days + sim.reactivation.sample(lifetime_visits, rng)
        at = np.where(pending, at + np.where(out.churned, reactivation, out.gap_days), at)
        fresh = np.where(pending, out.churned, fresh)
        pending &= at < holdout_days
    return _Futures(counts, spend, weekly)
