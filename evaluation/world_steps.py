"""Logged steps of a retentionrl event log for off-policy evaluation.

:func:`steps_from_decisions` turns :class:`retentionrl.interactions.decisions.LoggedDecisions` into
:class:`retentionrl.evaluation.runner.LoggedSteps`. The decisions are each trajectory's visits in the
retention window, days :math:`[0, H)` of the trajectory (``in_window``), as in the env's
episodes and the rollouts (:mod:`retentionrl.interactions.horizon`): per-decision reward = profit of the
visit (spend - coupon cost - cost of goods); per-trajectory reward at a visit = 1 if the
shopper's next visit lies in the window (``returned``), so a trajectory's return is its
number of return visits within :math:`H`, the rollouts' ``return_visits``. Rows without a
logged action are dropped; a missing propensity raises unless ``propensity`` is given (e.g.
from :class:`retentionrl.agents.baselines.LoggingPolicyClone`).
"""

from __future__ import annotations

import numpy as np

from retentionrl.core.actions import ActionSpace
from retentionrl.evaluation.runner import LoggedSteps
from retentionrl.interactions.decisions import LoggedDecisions


def action_features(space: ActionSpace) -> np.ndarray:
    """One-hot arm then one-hot coupon level of every flat action, ``(n_actions, arms + coupons)``."""
    arm, coupon = space.decode(np.arange(space.n_actions))
    return np.hstack([np.eye(space.n_arms)[arm], np.eye(space.n_coupons)[coupon]])


def steps_from_decisions(decisions: LoggedDecisions, propensity: np.ndarray | None = None) -> LoggedSteps:
    """The logged rows of ``decisions`` as :class:`LoggedSteps` (see the module docstring)."""
    keep = decisions.logged & decisions.in_window
    d = decisions.take(keep)
    p = d.propensity if propensity is None else np.asarray(propensity, dtype=np.float64)[keep]
    if np.isnan(p).any():
        raise ValueError(
            f"{int(np.isnan(p).sum())} logged visits have no propensity; "
            "estimate them with retentionrl.agents.baselines.LoggingPolicyClone and pass them"
        )
    # steps renumbered within trajectories after dropping rows without an action
    order = np.lexsort((d.visit_index, d.trajectory_id))
    tid = d.trajectory_id[order]
    start = np.r_[True, tid[1:] != tid[:-1]]
    step_sorted = np.arange(tid.size) - np.flatnonzero(start)[np.cumsum(start) - 1]
    step = np.empty_like(step_sorted)
    step[order] = step_sorted
    space = d.action_map.space
    return LoggedSteps(
        obs=np.asarray(d.obs, dtype=np.float64),
        action=d.action.astype(np.int64),
        propensity=p,
        trajectory_id=d.trajectory_id,
        step=step,
        bandit_reward=d.profit,
        trajectory_reward=d.returned.astype(np.float64),
        n_actions=space.n_actions,
        action_features=action_features(space),
    )
