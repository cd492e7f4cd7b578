"""Visits -> per-shopper trajectories with return gaps, churn and censoring.

A *trajectory* is one lifetime of a shopper: a run of visits in which each return comes
within the horizon ``H`` (default 90 days) of the visit before. With visit times
:math:`t_1 < t_2 < \\dots` and gaps :math:`g_k = t_{k+1} - t_k` (in days):

* :math:`g_k > H` ends the trajectory at visit *k* with **churn**
  (:func:`retentionrl.interactions.horizon.churned_after_gap`); a later return starts a new trajectory
  (a reactivation) for the same shopper;
* the shopper's last visit :math:`t_K` ends a trajectory with churn when
  :math:`T_{end} - t_K \\ge H` (the log ran on for a whole horizon without a return), and
  is **censored** otherwise: the shopper may still come back after the log ends.

:func:`add_trajectories` adds to the visit table (sorted by ``(user_id, start)``):

================  ====================================================================
trajectory_id     0, 1, ... over the whole log
visit_index       0-based position of the visit within its trajectory
day               days since the trajectory's first visit
gap_days          days to the shopper's next visit within the trajectory; NaN at its end
churned           this visit ends its trajectory with churn
censored          this visit ends its trajectory, censored by the end of the log
in_window         the visit lies in the trajectory's retention window, ``day < H``
returned          the next visit of the trajectory lies in the window: the visit's
                  retention flag (:func:`retentionrl.interactions.horizon.returned_in_window`); a
                  trajectory's return visits within ``H`` are its sum
================  ====================================================================

``in_window`` and ``returned`` count as the env's reward and the rollouts' return visits
do (:mod:`retentionrl.interactions.horizon`): the window is days :math:`[0, H)` of the trajectory, so a
return on day ``H`` exactly keeps the trajectory going (a gap of ``H`` is not churn) but
is not a return visit within the horizon. A trajectory censored by the end of the log
before its window closed has ``returned`` False where the log cannot tell.

:func:`trajectory_table` has one row per trajectory: ``trajectory_id, user_id, start,
n_visits, duration_days`` (first to last visit), ``churned``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from retentionrl.interactions.horizon import churned_after_gap, in_window, returned_in_window
from retentionrl.interactions.io import EventLog
from retentionrl.interactions.visits import VisitMode, build_visits

DAY_NS = 86_400 * 10**9


def add_trajectories(visits: pd.DataFrame, log_end: pd.Timestamp, *, horizon_days: float = 90.0) -> pd.DataFrame:
    """Return a copy of ``visits`` with the trajectory columns of the module docstring."""
    if not horizon_days > 0:
        raise ValueError(f"horizon_days must be > 0, got {horizon_days}")
    out = visits.copy()
    users, _ = pd.factorize(out["user_id"], sort=False)
    start = out["start"].to_numpy().view("int64")
    same_user_next = np.r_[users[1:] == users[:-1], False]
    gap = np.where(same_user_next, (np.r_[start[1:], 0] - start) / DAY_NS, np.nan)
    horizon_ends = churned_after_gap(gap, horizon_days)  # gap too long, or no next visit
    last_of_user = ~same_user_next
    traj_start = np.r_[True, horizon_ends[:-1]]
    trajectory = np.cumsum(traj_start) - 1
    first_start = start[np.flatnonzero(traj_start)][trajectory]
    observed_after = (pd.Timestamp(log_end).value - start) / DAY_NS
    out["trajectory_id"] = trajectory
    out["visit_index"] = np.arange(len(out)) - np.flatnonzero(traj_start)[trajectory]
    day = (start - first_start) / DAY_NS
    out["day"] = day
    out["gap_days"] = np.where(horizon_ends, np.nan, gap)
    out["churned"] = horizon_ends & ~(last_of_user & (observed_after < horizon_days))
    out["censored"] = last_of_user & (observed_after < horizon_days)
    out["in_window"] = in_window(day, horizon_days)
    next_day = np.r_[day[1:], np.nan]  # the next row's day: the next visit's where it is in the trajectory
    out["returned"] = returned_in_window(next_day, horizon_ends, horizon_days)
    return out


def window_closed(visits: pd.DataFrame, log_end: pd.Timestamp, horizon_days: float) -> np.ndarray:
    """Bool ``(n,)``: the visit's trajectory window, days :math:`[0, H)` from its first visit, ended
    before the log did, so its ``returned`` is known (elsewhere a return after the log's end
    reads False). ``visits`` has the :func:`add_trajectories` columns."""
    start = visits["start"].to_numpy().view("int64")
    first_start = start - visits["day"].to_numpy() * DAY_NS
    return first_start + horizon_days * DAY_NS <= pd.Timestamp(log_end).value


def trajectory_table(visits: pd.DataFrame) -> pd.DataFrame:
    """One row per trajectory from a visit table that has :func:`add_trajectories` columns."""
    ends = visits["churned"].to_numpy() | visits["censored"].to_numpy()
    last = visits.loc[ends]
    first = visits.loc[visits["visit_index"].to_numpy() == 0]
    return pd.DataFrame(
        {
            "trajectory_id": first["trajectory_id"].to_numpy(),
            "user_id": first["user_id"].to_numpy(),
            "start": first["start"].to_numpy(),
            "n_visits": last["visit_index"].to_numpy() + 1,
            "duration_days": last["day"].to_numpy(),
            "churned": last["churned"].to_numpy(),
        }
    )


def visits_with_trajectories(
    log: EventLog, *, horizon_days: float = 90.0, mode: VisitMode = "auto", session_gap: str = "30min"
) -> pd.DataFrame:
    """Visits of ``log`` (:func:`~retentionrl.interactions.visits.build_visits`) with trajectory columns."""
    return add_trajectories(build_visits(log, mode=mode, session_gap=session_gap), log.end, horizon_days=horizon_days)
