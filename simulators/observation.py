"""Reading policy inputs: checking an observation batch and finding feature columns.

Policies act on :class:`retentionrl.interactions.history.HistoryFeatures` rows; the column layout is
fixed by :func:`retentionrl.interactions.history.history_feature_names`, so a policy finds a feature
by name here rather than by a hard-coded number.
"""

from __future__ import annotations

import numpy as np

from retentionrl.core.actions import ActionSpace
from retentionrl.interactions.history import SCALAR_FEATURES, history_feature_names


def check_observation(obs: np.ndarray, action_space: ActionSpace) -> np.ndarray:
    """``obs`` as a float array after checking its shape ``(n, n_features)``."""
    obs = np.asarray(obs, dtype=np.float64)
    d = len(history_feature_names(action_space.n_arms))
    if obs.ndim != 2 or obs.shape[1] != d:
        raise ValueError(f"observations must have shape (n, {d}) (history features), got {obs.shape}")
    return obs


def column(name: str) -> int:
    """Column of the scalar history feature ``name`` (one of ``SCALAR_FEATURES``)."""
    if name not in SCALAR_FEATURES:
        raise ValueError(f"unknown history feature {name!r}; expected one of {SCALAR_FEATURES}")
    return SCALAR_FEATURES.index(name)


def arm_shares(obs: np.ndarray) -> np.ndarray:
    """The per-arm engagement shares of each row, shape ``(n, n_arms)``."""
    return obs[:, len(SCALAR_FEATURES) :]


def visit_count(obs: np.ndarray) -> np.ndarray:
    """Number of prior visits of each row, recovered from ``log_visits``."""
    return np.rint(np.expm1(obs[:, column("log_visits")])).astype(np.int64)


def greedy_arm(obs: np.ndarray, arm_scores: np.ndarray, affinity_weight: float, explore_top: int = 1) -> np.ndarray:
    """The arm each row is shown by a greedy rule on scores and the shopper's affinity.

    :math:`\\arg\\max_g (score_g + w \\cdot share_g)` (ties: lowest arm), except that a
    shopper with no engagement yet (all shares 0) at prior visit :math:`k` is shown the
    :math:`(k \\bmod K)`-th best arm by score, :math:`K` = ``explore_top`` >= 1, so that a
    deterministic rule still tries a few arms before it settles.
    """
    shares = arm_shares(obs)
    best = np.argmax(arm_scores[None, :] + affinity_weight * shares, axis=1)
    if explore_top == 1:
        return best
    ranked = np.argsort(-arm_scores, kind="stable")[:explore_top]
    ranked = ranked[np.isfinite(arm_scores[ranked])]
    rotate = ranked[visit_count(obs) % ranked.size]
    return np.where(shares.max(axis=1) > 0, best, rotate)
