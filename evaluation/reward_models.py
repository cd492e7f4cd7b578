"""Logistic-regression reward model for binary rewards (clicks), obp's ``RegressionModel``
with a logistic base model, in numpy.

One model per slot :math:`k` (as obp fits one base model per position):
:math:`\\hat q(x, a, k) = \\sigma(\\beta_k \\cdot [1, x, g_a])` with :math:`g_a` the action's
features (``action_context[a]``, or one-hot of ``a`` when there are none), fitted by
Newton's method on the L2-penalized log-likelihood
:math:`\\sum_i \\log p(r_i \\mid \\cdot) - \\frac{\\lambda}{2} \\lVert \\beta \\rVert^2`
(intercept not penalized). With ``n_folds > 1`` the predictions are cross-fitted: each
round's :math:`\\hat q` comes from the model fitted on the other folds. The fit keeps every
model's coefficients and inverse Hessian, which give its first-order fit influence
(:mod:`retentionrl.evaluation.fit_influence`; logistic: :math:`\\mu' = \\hat q (1 - \\hat q)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from retentionrl.core.checks import require_int
from retentionrl.evaluation._checks import float_vector, int_vector


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1.0, max_iter: int = 50, tol: float = 1e-8
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of an L2-penalized logistic regression of ``y`` (0/1) on ``x`` (first
    column the intercept) by Newton's method, and the penalized Hessian at them,
    :math:`H = \\sum_i \\mu_i (1 - \\mu_i) x_i x_i^\\top + \\Lambda`."""
    beta = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], float(l2))
    penalty[0] = 0.0

    def hessian(p: np.ndarray) -> np.ndarray:
        return (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])

    for _ in range(max_iter):
        p = _sigmoid(x @ beta)
        step = np.linalg.solve(hessian(p), x.T @ (y - p) - penalty * beta)
        beta += step
        if np.abs(step).max() < tol:
            break
    return beta, hessian(_sigmoid(x @ beta))


@dataclass(frozen=True)
class _Part:
    """One fitted logistic model: trained on the rows ``train``, it predicts slot ``slot`` of
    the rows ``test`` for the actions ``actions``."""

    slot: int
    actions: np.ndarray
    train: np.ndarray
    test: np.ndarray
    beta: np.ndarray
    inverse_hessian: np.ndarray


@dataclass(frozen=True)
class LogisticRewardFit:
    """The fitted reward model of :func:`logistic_reward_model`: ``estimated_rewards``
    ``(n, n_actions, len_list)`` and its fit influence (a
    :class:`retentionrl.evaluation.fit_influence.RewardFit`). ``context`` and ``action_features`` are
    standardized; ``action_features`` is None for per-action models (features
    :math:`[1, x]`, else :math:`[1, x, g_a]`)."""

    estimated_rewards: np.ndarray
    context: np.ndarray
    action_features: np.ndarray | None
    action: np.ndarray
    reward: np.ndarray
    position: np.ndarray
    parts: tuple[_Part, ...]

    @property
    def log_loss(self) -> float:
        """Cross-fitted log-loss of the logged rounds,
        :math:`-\\frac1n \\sum_i [r_i \\log \\hat q_i + (1 - r_i) \\log(1 - \\hat q_i)]` with
        :math:`\\hat q_i` the prediction of round :math:`i`'s action and slot (from the folds
        without round :math:`i`), clipped to :math:`[10^{-12}, 1 - 10^{-12}]`."""
        rows = np.arange(self.reward.shape[0])
        p = np.clip(self.estimated_rewards[rows, self.action, self.position], 1e-12, 1 - 1e-12)
        return float(-np.mean(self.reward * np.log(p) + (1 - self.reward) * np.log(1 - p)))

    def _design(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        x = np.hstack([np.ones((actions.shape[0], 1)), self.context[rows]])
        return x if self.action_features is None else np.hstack([x, self.action_features[actions]])

    def influence(self, all_actions: np.ndarray | None, logged: np.ndarray | None) -> np.ndarray:
        """:math:`\\psi` of :mod:`retentionrl.evaluation.fit_influence`, model by model: the weights on
        the entries a model predicts, times :math:`\\hat q (1 - \\hat q)`, summed into
        :math:`G` over its features, then spread over its training rows."""
        psi = np.zeros(self.reward.shape[0])
        for part in self.parts:
            q = self.estimated_rewards[part.test][:, part.actions, part.slot]
            w = np.zeros_like(q)
            if all_actions is not None:
                w += np.asarray(all_actions, dtype=np.float64)[part.test][:, part.actions, part.slot]
            if logged is not None:
                act, pos = self.action[part.test], self.position[part.test]
                col = np.searchsorted(part.actions, act).clip(0, part.actions.size - 1)
                hit = (pos == part.slot) & (part.actions[col] == act)
                w[hit, col[hit]] += np.asarray(logged, dtype=np.float64)[part.test][hit]
            w *= q * (1.0 - q)
            m = w.sum(axis=1)
            g = np.concatenate([[m.sum()], self.context[part.test].T @ m])
            if self.action_features is not None:
                g = np.concatenate([g, w.sum(axis=0) @ self.action_features[part.actions]])
            x = self._design(part.train, self.action[part.train])
            psi[part.train] += (x @ (part.inverse_hessian @ g)) * (self.reward[part.train] - _sigmoid(x @ part.beta))
        return psi


def logistic_reward_model(
    context: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    n_actions: int,
    position: np.ndarray | None = None,
    len_list: int = 1,
    action_context: np.ndarray | None = None,
    *,
    n_folds: int = 3,
    l2: float = 1.0,
    seed: int = 0,
    per_action: bool = False,
    groups: np.ndarray | None = None,
) -> LogisticRewardFit:
    """Cross-fitted :math:`\\hat q(x_i, a, k)` for every round, action and slot
    (``estimated_rewards``, ``(n, n_actions, len_list)``) with its fit influence (see the
    module docstring).

    :param per_action: fit one model per (slot, action) on the context alone,
        :math:`\\hat q(x, a, k) = \\sigma(\\beta_{k,a} \\cdot [1, x])` (every action-context
        interaction; for few actions with many rounds each, e.g. Hillstrom's three arms).
    :param groups: ``(n,)`` ids whose rounds must share a fold, e.g. the original row of
        each round of a bootstrap resample: otherwise a duplicated round is predicted by a
        model fitted on its own copy, which defeats the cross-fitting."""
    reward = float_vector("reward", reward)
    n = reward.shape[0]
    if not np.isin(reward, (0.0, 1.0)).all():
        raise ValueError("reward must be binary (0/1) for the logistic reward model")
    context = np.asarray(context, dtype=np.float64).reshape(n, -1)
    action = int_vector("action", action, n, 0, n_actions)
    position = np.zeros(n, dtype=np.int64) if position is None else int_vector("position", position, n, 0, len_list)
    require_int("n_folds", n_folds, 1)
    feats = np.eye(n_actions) if action_context is None else np.asarray(action_context, dtype=np.float64)
    if feats.shape[0] != n_actions:
        raise ValueError(f"action_context must have {n_actions} rows, got {feats.shape}")
    mean, scale = context.mean(axis=0), context.std(axis=0)
    context = (context - mean) / np.where(scale > 0, scale, 1.0)
    fmean, fscale = feats.mean(axis=0), feats.std(axis=0)
    feats = (feats - fmean) / np.where(fscale > 0, fscale, 1.0)
    if groups is None:
        fold = np.random.default_rng(seed).permutation(n) % n_folds
    else:
        _, unit = np.unique(np.asarray(groups).reshape(n), return_inverse=True)
        fold = (np.random.default_rng(seed).permutation(int(unit.max()) + 1) % n_folds)[unit.ravel()]
    out = np.zeros((n, n_actions, len_list))
    parts: list[_Part] = []
    for f in range(n_folds):
        test = fold == f
        train = ~test if n_folds > 1 else test
        for k in range(len_list):
            for acts in [np.array([a]) for a in range(n_actions)] if per_action else [np.arange(n_actions)]:
                rows = train & (position == k) & np.isin(action, acts)
                x = np.hstack([np.ones((int(rows.sum()), 1)), context[rows]])
                if not per_action:
                    x = np.hstack([x, feats[action[rows]]])
                beta, hess = fit_logistic(x, reward[rows], l2)
                logit = (beta[0] + context[test] @ beta[1 : 1 + context.shape[1]])[:, None]
                if not per_action:
                    logit = logit + (feats @ beta[1 + context.shape[1] :])[None, :]
                out[np.ix_(test, acts, np.array([k]))] = _sigmoid(logit)[:, :, None]
                parts.append(_Part(k, acts, rows, test, beta, np.linalg.inv(hess)))
    return LogisticRewardFit(out, context, None if per_action else feats, action, reward, position, tuple(parts))


def select_logistic_reward_model(
    *args: Any, l2_grid: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6), **kwargs: Any
) -> tuple[LogisticRewardFit, float, dict[float, float]]:
    """:func:`logistic_reward_model` (the same arguments but ``l2``) with the L2 penalty chosen
    from ``l2_grid`` by the cross-fitted log-loss (:attr:`LogisticRewardFit.log_loss`; it uses
    the log only, never the target policy or a truth). The default grid ends at penalties under
    which the features are all but off (the model is then each slot's click rate), so
    "no feature helps" is a candidate too. Returns (the chosen fit, its l2, log-loss per
    l2)."""
    if "l2" in kwargs:
        raise TypeError("select_logistic_reward_model chooses l2 from l2_grid; do not pass l2")
    losses: dict[float, float] = {}
    best: tuple[LogisticRewardFit, float] | None = None
    for l2 in l2_grid:
        fit = logistic_reward_model(*args, l2=l2, **kwargs)
        losses[l2] = fit.log_loss
        if best is None or losses[l2] < losses[best[1]]:
            best = (fit, l2)
    if best is None:
        raise ValueError("l2_grid is empty")
    return best[0], best[1], losses
