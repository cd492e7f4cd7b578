"""Whole lifetimes of logged shoppers replayed in a simulator, censored as the log censors them.

:func:`simulate_lifetimes` starts one simulated shopper per logged trajectory, at that
trajectory's first visit, and gives it the logged actions in order (the k-th simulated visit
gets the k-th logged action; past the logged ones, a draw from the log's action mix). The
simulator samples every outcome and gap. Each simulated lifetime is observed through the
same window as the real one (its first visit to the end of the log), so it is censored
exactly as the log's trajectories are (:mod:`retentionrl.interactions.trajectories`):

* a visit that would fall at or past the end of the log is not seen;
* the last seen visit ends the lifetime with churn when the simulator churned the shopper
  and the log ran on for at least :math:`H` days after it, censored otherwise.

The result has the columns of :func:`retentionrl.interactions.trajectories.trajectory_table` that the
retention curve and visit counts read: ``n_visits``, ``duration_days``, ``churned``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from retentionrl.interactions.action_map import ActionMap
from retentionrl.simulators.interface import ShopperSimulator

DAY_NS = 86_400 * 10**9


def logged_actions(visits: pd.DataFrame, action_map: ActionMap) -> tuple[np.ndarray, np.ndarray]:
    """Flat action of every visit and whether the log recorded one."""
    return action_map.encode(visits)


def simulate_lifetimes(
    sim: ShopperSimulator,
    visits: pd.DataFrame,
    action_map: ActionMap,
    log_end: pd.Timestamp,
    seed: int = 0,
    max_steps: int = 10_000,
) -> pd.DataFrame:
    """Simulated lifetimes of the trajectories of ``visits`` (module docstring).

    :param visits: visit table with trajectory columns (sorted by trajectory and visit).
    :param action_map: maps the logged actions onto ``sim``'s action space.
    """
    first = visits["visit_index"].to_numpy() == 0
    window = (
        pd.Timestamp(log_end).value - visits["start"].to_numpy()[first].astype("datetime64[ns]").view("int64")
    ) / DAY_NS
    n = int(first.sum())
    action, logged = logged_actions(visits, action_map)
    position = visits["visit_index"].to_numpy()
    trajectory = np.cumsum(first) - 1
    longest = int(position.max()) + 1 if len(position) else 0
    table = np.full((n, max(longest, 1)), -1, dtype=np.int64)
    table[trajectory[logged], position[logged]] = action[logged]
    pool = action[logged] if logged.any() else np.zeros(1, dtype=np.int64)
    rng = np.random.default_rng(seed)

    sim.reset(n, seed=seed)
    alive = np.ones(n, dtype=bool)  # still inside the window, not churned
    n_visits = np.zeros(n, dtype=np.int64)
    last_day = np.zeros(n)
    churned = np.zeros(n, dtype=bool)
    for k in range(max_steps):
        if not alive.any():
            break
        day = sim.days.copy()
        act = table[:, k] if k < table.shape[1] else np.full(n, -1)
        act = np.where(act >= 0, act, pool[rng.integers(0, pool.size, n)])
        _, out = sim.step(act.astype(np.int64))
        n_visits += alive
        last_day = np.where(alive, day, last_day)
        ended = alive & out.churned
        churned |= ended & (window - day >= sim.horizon_days)
        alive &= ~out.churned & (sim.days < window)
    return pd.DataFrame({"n_visits": n_visits, "duration_days": last_day, "churned": churned})
