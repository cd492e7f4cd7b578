"""Checking a decision log against the policy that wrote it.

A decision log is worth its propensities only if each one is the probability the served
policy gave the logged action *in the state the log itself records*: that is what off-policy
evaluation assumes when it divides by it. :func:`audit_decision_log` replays the log as every
consumer does (:class:`~retentionrl.interactions.decisions.LoggedDecisions`: visits, lifetimes
ended by gaps over :math:`H`, the history features before each visit, with the policy's arms,
coupon ladder, :math:`H` and :math:`S`) and recomputes
:math:`\\pi_{served}(a_i \\mid s_i)` for every impression the policy served, beside the logged
:math:`p_i`. Differences beyond float rounding mean the service observed something the log
does not show (or the reverse).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.io import read_events
from retentionrl.interactions.trajectories import visits_with_trajectories
from retentionrl.serve.policy import ServedPolicy


@dataclass(frozen=True)
class LogAudit:
    """What :func:`audit_decision_log` found.

    :param n_impressions: impressions in the log.
    :param n_checked: those served by this policy version, whose propensity was recomputed.
    :param max_abs_diff: the largest :math:`|p_i - \\pi_{served}(a_i \\mid s_i)|` (0 when none checked).
    :param versions: impressions per policy version in the log.
    """

    n_impressions: int
    n_checked: int
    max_abs_diff: float
    versions: dict[str, int]


def audit_decision_log(path: str | Path, policy: ServedPolicy) -> LogAudit:
    """Replay the decision log at ``path`` and recompute the propensities ``policy`` served.

    :raises LogError: the log is unreadable or breaks the event schema.
    :raises ValueError: a visit of the log holds more or fewer than one impression (not a log
        of one decision per visit, as the service writes).
    """
    log = read_events(path)
    contract = policy.contract
    visits = visits_with_trajectories(log, horizon_days=contract.horizon_days)
    impressions = log.events.loc[log.events["event"] == "impression"]
    if len(impressions) != len(visits) or not visits["rec_item"].notna().all():
        raise ValueError(
            f"{path}: {len(impressions)} impressions in {len(visits)} visits; a decision log has one per visit"
        )
    action_map = ActionMap(contract.arm_column, contract.arms, policy.action_space)
    decisions = LoggedDecisions.from_visits(
        visits, action_map, contract.horizon_days, contract.spend_scale, log_end=log.end
    )
    version = impressions["policy_version"].astype(str).to_numpy()
    mine = version == policy.version
    probs = policy.action_probs(decisions.obs[mine])[np.arange(int(mine.sum())), decisions.action[mine]]
    diff = np.abs(probs - decisions.propensity[mine])
    labels, counts = np.unique(version, return_counts=True)
    return LogAudit(
        n_impressions=len(impressions),
        n_checked=int(mine.sum()),
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        versions={str(v): int(c) for v, c in zip(labels, counts)},
    )
