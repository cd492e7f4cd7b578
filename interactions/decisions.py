"""Logged decisions: one row per visit with its observation, logged action and outcomes.

This is the bandit-feedback view of an event log that agents (baselines fit from logs)
and off-policy evaluation consume. Row :math:`i` is visit :math:`i` of the visit table
(:func:`retentionrl.interactions.trajectories.visits_with_trajectories`):

================  =====================================================================
field             meaning
================  =====================================================================
obs               HistoryFeatures observation *before* the visit, float32 ``(n, d)``
action            flat logged action (:class:`~retentionrl.interactions.action_map.ActionMap`)
logged            the visit logged an impression (an action); False rows have action 0
propensity        logged probability of the action, NaN where the log has none
click, purchase   responses at the visit
redeemed          a purchase at the visit used the offered coupon
spend             value of the visit's purchases at list price (0 without a purchase)
profit            spend - coupon cost - cost of goods (``cogs``; 0 where the log records
                  none, :attr:`retentionrl.interactions.io.EventLog.records_cogs`)
returned          the shopper's next visit lies in the retention window, day ``< H`` of the
                  trajectory (:mod:`retentionrl.interactions.horizon`): the env's retention reward
in_window         the visit lies in the window, day ``< H`` of its trajectory: a decision
                  of the estimand the rollouts' values cover
censored          the log ended before the horizon passed: ``returned`` is unknown (False)
next_visit_days   days to the shopper's next visit in the log (any gap), NaN if none
observed_days     days from the visit to the end of the log: a return within :math:`w`
                  days is observed exactly when ``observed_days >= w``
trajectory_id     trajectory of the visit; ``visit_index`` its position in it
================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retentionrl.core.atomic import atomic_path
from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.io import EventLog
from retentionrl.interactions.replay import history_features_from_visits
from retentionrl.interactions.trajectories import visits_with_trajectories


@dataclass(frozen=True)
class LoggedDecisions:
    """Per-visit arrays of a log (see the module docstring); all of length ``n``."""

    obs: np.ndarray
    action: np.ndarray
    logged: np.ndarray
    propensity: np.ndarray
    click: np.ndarray
    purchase: np.ndarray
    redeemed: np.ndarray
    spend: np.ndarray
    profit: np.ndarray
    returned: np.ndarray
    in_window: np.ndarray
    censored: np.ndarray
    next_visit_days: np.ndarray
    observed_days: np.ndarray
    trajectory_id: np.ndarray
    visit_index: np.ndarray
    action_map: ActionMap

    @property
    def n(self) -> int:
        """Number of visits."""
        return int(self.action.shape[0])

    def save(self, path: str | Path) -> None:
        """Write the per-visit arrays to an ``.npz`` file, atomically (the action map is not
        written: it belongs to whoever encoded the visits, a simulator's card or the logs)."""
        arrays = {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle

    @classmethod
    def load(cls, path: str | Path, action_map: ActionMap) -> LoggedDecisions:
        """Decisions written by :meth:`save`, encoded with ``action_map`` (no pickled objects read)."""
        with np.load(path, allow_pickle=False) as data:
            return cls(action_map=action_map, **{k: data[k] for k in data.files})

    @classmethod
    def from_visits(
        cls,
        visits: pd.DataFrame,
        action_map: ActionMap,
        horizon_days: float,
        spend_scale: float = 50.0,
        *,
        log_end: pd.Timestamp | None = None,
    ) -> LoggedDecisions:
        """Decisions of a visit table that has the trajectory columns (sorted by shopper and
        start, as :func:`~retentionrl.interactions.trajectories.visits_with_trajectories` returns it).

        :param log_end: the end of observation (:attr:`retentionrl.interactions.io.EventLog.end`);
            default: the end of the last visit.
        """
        action, logged = action_map.encode(visits)
        start = visits["start"]
        day = pd.Timedelta(days=1)
        same_user_next = np.r_[visits["user_id"].to_numpy()[1:] == visits["user_id"].to_numpy()[:-1], False]
        end = visits["end"].max() if log_end is None else log_end
        return cls(
            obs=history_features_from_visits(visits, action_map, horizon_days, spend_scale),
            action=action,
            logged=logged,
            propensity=visits["propensity"].to_numpy(dtype="float64")
            if "propensity" in visits
            else np.full(len(visits), np.nan),
            click=visits["clicked"].to_numpy(dtype=bool),
            purchase=visits["purchased"].to_numpy(dtype=bool),
            redeemed=visits["redeemed"].to_numpy(dtype=bool),
            spend=visits["spend"].to_numpy(dtype="float64"),
            profit=(visits["spend"] - visits["coupon_cost"] - visits["cogs"]).to_numpy(dtype="float64"),
            returned=visits["returned"].to_numpy(dtype=bool),
            in_window=visits["in_window"].to_numpy(dtype=bool),
            censored=visits["censored"].to_numpy(dtype=bool),
            next_visit_days=np.where(
                same_user_next, ((start.shift(-1) - start) / day).to_numpy(dtype="float64"), np.nan
            ),
            observed_days=((end - start) / day).to_numpy(dtype="float64"),
            trajectory_id=visits["trajectory_id"].to_numpy(),
            visit_index=visits["visit_index"].to_numpy(),
            action_map=action_map,
        )

    @classmethod
    def from_log(
        cls,
        log: EventLog,
        *,
        horizon_days: float = 90.0,
        spend_scale: float = 50.0,
        action_map: ActionMap | None = None,
    ) -> LoggedDecisions:
        """Decisions of an event log; the action map is fitted on it unless given."""
        visits = visits_with_trajectories(log, horizon_days=horizon_days)
        return cls.from_visits(visits, action_map or ActionMap.fit(visits), horizon_days, spend_scale, log_end=log.end)

    def take(self, mask: np.ndarray) -> LoggedDecisions:
        """The rows where ``mask`` is true (or at the given indices)."""
        fields = {k: v[mask] for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        return LoggedDecisions(action_map=self.action_map, **fields)
