"""Forecasting each shopper's visits after a cutoff: replay their history, then simulate on.

For every shopper with visits before the cutoff, :func:`forecast_visits`

1. feeds the visits of the shopper's current trajectory (the one the cutoff censors) through
   :meth:`~retentionrl.simulators.learned.simulator.LearnedSimulator.observe` with the logged actions and outcomes
   (teacher forcing: GRU state and observable history as after the real visits);
2. at the last visit, draws the gap from the model's return hazard *given that no return
   happened before the cutoff*, ``c`` days after it;
3. steps the simulator on (action 0: purchase-only logs have no actions) until the visits
   pass the end of the holdout window or the shopper churns, counting visits per week.

Each replica is one draw of the shopper's future, so the replicas are a sample of the
predictive distribution of their visit count: its mean forecasts totals, its median is the
point forecast that minimises the absolute error.

A shopper whose trajectory already ended with churn before the cutoff (no visit within
:math:`H` days of it) is forecast 0 visits: the simulator models returns within the horizon,
not reactivations. Trajectories are right-aligned in the batch (shorter ones start later;
slots before their start are reset after each step), and shoppers are processed in groups
of similar length, so the work is about the number of logged visits.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from retentionrl.simulators.learned.simulator import LearnedSimulator

DAY_NS = 86_400 * 10**9


def forecast_visits(
    sim: LearnedSimulator,
    visits: pd.DataFrame,
    cutoff: pd.Timestamp,
    holdout_days: float,
    *,
    replicas: int = 10,
    seed: int = 0,
    groups: int = 4,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Simulated visits per shopper in ``[cutoff, cutoff + holdout_days)``, and per week.

    :param visits: calibration visits with trajectory columns (``log_end`` = ``cutoff``),
        sorted by ``(user_id, start)``.
    :returns: the visit count of every shopper (rows, indexed by ``user_id``) in every
        replica (columns), and the mean over replicas of all shoppers' visits in each week
        of the holdout window.
    """
    n_weeks = int(np.ceil(holdout_days / 7))
    users = visits["user_id"].drop_duplicates().to_numpy()
    per_user = pd.DataFrame(0.0, index=pd.Index(users, name="user_id"), columns=pd.RangeIndex(replicas, name="replica"))
    weekly = np.zeros(n_weeks)
    last = visits.drop_duplicates("user_id", keep="last")
    active_traj = last.loc[~last["churned"].to_numpy(), "trajectory_id"].to_numpy()
    current = visits.loc[visits["trajectory_id"].isin(active_traj)]
    if current.empty:
        return per_user, weekly
    lengths = current.groupby("trajectory_id", sort=False).size()
    bounds = np.quantile(lengths.to_numpy(), np.linspace(0, 1, groups + 1)[1:-1]) if groups > 1 else []
    group_of = np.searchsorted(np.unique(bounds), lengths.to_numpy(), side="left")
    rng_seeds = np.random.SeedSequence(seed).spawn(groups)
    for g in range(groups):
        chosen = lengths.index[group_of == g]
        if not len(chosen):
            continue
        part = current.loc[current["trajectory_id"].isin(chosen)]
        counts, week_counts = _simulate_group(
            sim, part, cutoff, holdout_days, replicas, n_weeks, int(rng_seeds[g].generate_state(1)[0])
        )
        per_user.loc[counts.index] = counts.to_numpy()
        weekly += week_counts
    return per_user, weekly


def _simulate_group(
    sim: LearnedSimulator,
    part: pd.DataFrame,
    cutoff: pd.Timestamp,
    holdout_days: float,
    replicas: int,
    n_weeks: int,
    seed: int,
) -> tuple[pd.DataFrame, np.ndarray]:
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
    last_start = part["start"].to_numpy().astype("datetime64[ns]").view("int64")[np.r_[first[1:], True]]
    since_last = (pd.Timestamp(cutoff).value - last_start) / DAY_NS  # days from last visit to the cutoff
    grid["gap"][np.arange(n_traj), longest - 1] = np.nan  # unknown: drawn given > since_last

    def tile(a: np.ndarray) -> np.ndarray:
        return np.tile(a, (replicas,) + (1,) * (a.ndim - 1))

    grid = {k: tile(v) for k, v in grid.items()}
    offset_r, since_r = tile(offset), tile(since_last)
    n = n_traj * replicas
    sim.reset(n, seed=seed)
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
    at = -since_r + out.gap_days  # day of the next visit, from the cutoff
    alive = ~out.churned & (at < holdout_days)
    counts = np.zeros(n)
    weekly = np.zeros(n_weeks)
    zeros = np.zeros(n, dtype=np.int64)
    while alive.any():
        counts += alive
        weekly += np.bincount(np.clip((at[alive] // 7).astype(np.int64), 0, n_weeks - 1), minlength=n_weeks)
        _, out = sim.step(zeros)
        at = at + np.where(out.churned, 0.0, out.gap_days)
        alive &= ~out.churned & (at < holdout_days)
    users = part.loc[first, "user_id"].to_numpy()
    return pd.DataFrame(counts.reshape(replicas, n_traj).T, index=users), weekly / replicas
