"""Replaying logged visits through :class:`~retentionrl.interactions.history.HistoryFeatures`.

The observation a policy or a simulator sees at a visit is the
:class:`~retentionrl.interactions.history.HistoryFeatures` vector of the shopper's trajectory so far.
Online (in a simulator) it is built one visit at a time; offline it must be rebuilt from
the log, identically, for off-policy evaluation and for fitting the learned simulator.

:func:`history_features_from_visits` replays every trajectory at once: it loops over the
visit *position* :math:`k` (0, 1, ..., longest trajectory - 1), never over shoppers. The
trajectories are ordered by length, longest first, so the ones still running at position
:math:`k` are a prefix of that order and the batch simply shrinks to them; the total work
is proportional to the number of visits.

At each trajectory's first visit the history is empty (a reactivation after churn starts a
new trajectory, hence a new history). The update after visit :math:`k` reads the logged
action (:meth:`ActionMap.encode`: a visit with no logged impression counts as action 0,
arm 0 with no coupon, as the encoding maps it), ``clicked``, ``purchased``, ``redeemed``,
``spend`` and ``gap_days`` (days to the next visit, continuous, as the log's timestamps
give them).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.history import HistoryFeatures

REPLAY_COLUMNS: tuple[str, ...] = (
    "trajectory_id",
    "visit_index",
    "clicked",
    "purchased",
    "redeemed",
    "spend",
    "gap_days",
)
"""Visit-table columns the replay reads (besides the action columns of the action map)."""


def history_features_from_visits(
    visits: pd.DataFrame,
    action_map: ActionMap,
    horizon_days: float,
    spend_scale: float = 50.0,
) -> np.ndarray:
    """The :class:`HistoryFeatures` observation at every logged visit.

    :param visits: a visit table with trajectory columns
        (:func:`retentionrl.interactions.trajectories.visits_with_trajectories`), sorted by
        ``(user_id, start)`` so that each trajectory's visits are contiguous and in order.
    :param action_map: maps the logged actions to (arm, coupon index).
    :param horizon_days: :math:`H` of the features, >= 1.
    :param spend_scale: :math:`S` of the features, > 0.
    :returns: float32 array ``(len(visits), 11 + n_arms)``; row :math:`i` is the observation
        *before* visit :math:`i` happened (its own outcome not included).
    """
    missing = [c for c in REPLAY_COLUMNS if c not in visits.columns]
    if missing:
        raise ValueError(f"visits lack the columns {missing}; build them with visits_with_trajectories")
    history = HistoryFeatures(action_map.space, horizon_days, spend_scale=spend_scale)
    n = len(visits)
    out = np.empty((n, len(history.names)), dtype=np.float32)
    if n == 0:
        return out
    trajectory = visits["trajectory_id"].to_numpy()
    position = visits["visit_index"].to_numpy().astype(np.int64)
    starts = np.flatnonzero(np.r_[True, trajectory[1:] != trajectory[:-1]])
    lengths = np.diff(np.r_[starts, n])
    if np.any(position != np.arange(n) - np.repeat(starts, lengths)):
        raise ValueError("visits are not sorted by trajectory and visit_index; sort by (user_id, start)")

    # rank of each trajectory by length (longest first): the running ones are a prefix
    rank_of_traj = np.empty(len(starts), dtype=np.int64)
    rank_of_traj[np.argsort(-lengths, kind="stable")] = np.arange(len(starts))
    rank = np.repeat(rank_of_traj, lengths)
    order = np.lexsort((rank, position))  # grouped by position k, ranks 0..n_k-1 inside
    running = np.bincount(position)  # n_k: trajectories with a visit at position k
    bounds = np.r_[0, np.cumsum(running)]

    arm, coupon_index = action_map.space.decode(action_map.encode(visits)[0])
    click = visits["clicked"].to_numpy(dtype=np.float64)
    purchase = visits["purchased"].to_numpy(dtype=np.float64)
    redeemed = visits["redeemed"].to_numpy(dtype=np.float64)
    spend = visits["spend"].to_numpy(dtype=np.float64)
    gap = visits["gap_days"].to_numpy(dtype=np.float64)

    history.reset(int(running[0]))
    for k in range(len(running)):
        rows = order[bounds[k] : bounds[k + 1]]
        if rows.size < history.n:
            history.keep_rows(np.arange(history.n) < rows.size)
        out[rows] = history.features()
        outcome = SimpleNamespace(
            click=click[rows], purchase=purchase[rows], redeemed=redeemed[rows], spend=spend[rows]
        )
        history.update(arm[rows], coupon_index[rows], outcome, gap[rows])
    return out
