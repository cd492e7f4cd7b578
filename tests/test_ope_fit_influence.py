"""The reward model's fit influence: equal to the derivative of a refit, and it makes the
intervals of the model-based estimators cover their sampling spread."""

from __future__ import annotations

import numpy as np
import pytest

from retentionrl.evaluation.bandit import (
    IPS,
    BanditInputs,
    DirectMethod,
    DoublyRobust,
    SwitchDR,
    evaluate_bandit,
)
from retentionrl.evaluation.fqe import RidgeDesign
from retentionrl.evaluation.reward_models import logistic_reward_model, select_logistic_reward_model


def _functional(
    q: np.ndarray, all_actions: np.ndarray, logged: np.ndarray, action: np.ndarray, position: np.ndarray
) -> float:
    rows = np.arange(q.shape[0])
    return float((all_actions * q).sum() + (logged * q[rows, action, position]).sum())


def test_ridge_influence_is_the_derivative_of_the_weighted_refit():
    rng = np.random.default_rng(0)
    n, n_actions = 120, 3
    obs = rng.normal(size=(n, 2))
    action = rng.integers(0, n_actions, n)
    y = obs[:, 0] + (action == 1) + rng.normal(0, 1.0, n)
    feats = np.eye(n_actions)[:, :2]
    design = RidgeDesign.build(obs, action, n_actions, feats)
    fold = rng.integers(0, 3, n)
    fit = design.cross_fit(obs, y, fold)
    all_actions, logged = rng.normal(size=(n, n_actions)), rng.normal(size=n)
    psi = fit.influence(all_actions, logged)
    penalty = np.eye(design.x.shape[1])
    penalty[0, 0] = 0.0
    t = design.template

    def refit(weight: np.ndarray) -> np.ndarray:
        q = np.empty((n, n_actions))
        for f in np.unique(fold):
            train = fold != f
            x, w = design.x[train], weight[train]
            coef = np.linalg.solve(x.T @ (x * w[:, None]) + penalty, x.T @ (w * y[train]))
            q[fold == f] = type(t)(n_actions, t.action_features, coef, t.x_mean, t.x_scale).q_all(obs[fold == f])
        return q[:, :, None]

    zeros = np.zeros(n, dtype=np.int64)
    base = _functional(refit(np.ones(n)), all_actions[:, :, None], logged, action, zeros)
    eps = 1e-6
    for j in (0, 17, 99):
        bumped = refit(1.0 + eps * (np.arange(n) == j))
        numeric = (_functional(bumped, all_actions[:, :, None], logged, action, zeros) - base) / eps
        assert psi[j] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def _weighted_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> np.ndarray:
    beta = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hess, x.T @ (w * (y - p)) - penalty * beta)
        beta += step
        if np.abs(step).max() < 1e-13:
            break
    return beta


@pytest.mark.parametrize("per_action", [False, True])
def test_logistic_influence_is_the_derivative_of_the_weighted_refit(per_action):
    rng = np.random.default_rng(1)
    n, n_actions, len_list, l2 = 600, 3, 2, 2.0
    context = rng.normal(size=(n, 2))
    action = rng.integers(0, n_actions, n)
    position = rng.integers(0, len_list, n)
    reward = (rng.random(n) < 1 / (1 + np.exp(-(context[:, 0] + 0.5 * action - 1)))).astype(float)
    fit = logistic_reward_model(
        context, action, reward, n_actions, position, len_list, n_folds=2, l2=l2, seed=0, per_action=per_action
    )
    all_actions, logged = rng.normal(size=(n, n_actions, len_list)), rng.normal(size=n)
    psi = fit.influence(all_actions, logged)

    def features(rows: np.ndarray, acts: np.ndarray) -> np.ndarray:
        x = np.hstack([np.ones((acts.size, 1)), fit.context[rows]])
        return x if per_action else np.hstack([x, fit.action_features[acts]])

    def refit(weight: np.ndarray) -> np.ndarray:
        q = np.empty_like(fit.estimated_rewards)
        for part in fit.parts:
            beta = _weighted_logistic(
                features(part.train, action[part.train]), reward[part.train], weight[part.train], l2
            )
            test = np.flatnonzero(part.test)
            for a in part.actions:
                q[test, a, part.slot] = 1 / (1 + np.exp(-(features(test, np.full(test.size, a)) @ beta)))
        return q

    base = _functional(refit(np.ones(n)), all_actions, logged, action, position)
    eps = 1e-6
    for j in (3, 250, 511):
        bumped = refit(1.0 + eps * (np.arange(n) == j))
        numeric = (_functional(bumped, all_actions, logged, action, position) - base) / eps
        assert psi[j] == pytest.approx(numeric, rel=1e-3, abs=1e-7)


def _synthetic_log(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    obs = rng.normal(size=(n, 2))
    behavior = np.array([0.6, 0.3, 0.1])
    action = rng.choice(3, size=n, p=behavior)
    reward = 0.5 * obs[:, 0] + np.array([0.0, 0.5, 1.0])[action] + rng.normal(0.0, 2.0, n)
    target = np.tile([0.1, 0.3, 0.6], (n, 1))
    return obs, action, reward, behavior[action], target


def test_fit_influence_leaves_estimates_and_model_free_intervals_unchanged():
    rng = np.random.default_rng(2)
    obs, action, reward, propensity, target = _synthetic_log(rng, 300)
    fit = RidgeDesign.build(obs, action, 3).cross_fit(obs, reward, rng.integers(0, 2, 300))
    estimators = [DirectMethod(), IPS(), DoublyRobust(), SwitchDR(tau=2.0)]
    fixed = evaluate_bandit(
        estimators, BanditInputs.prepare(reward, action, propensity, target, estimated_rewards=fit.estimated_rewards)
    )
    moving = evaluate_bandit(
        estimators, BanditInputs.prepare(reward, action, propensity, target, estimated_rewards=fit)
    )
    for est in estimators:
        assert moving[est.name].estimate == fixed[est.name].estimate
    # same resamples (float32 products: equal to rounding)
    assert (moving["ips"].low, moving["ips"].high) == pytest.approx((fixed["ips"].low, fixed["ips"].high), rel=1e-6)
    assert moving["dm"].high - moving["dm"].low > 2 * (fixed["dm"].high - fixed["dm"].low)


def test_dm_interval_with_the_fit_matches_its_sampling_spread():
    """Over replicated logs, DM's bootstrap standard error with the fit is close to the
    spread of its estimates; with the model held fixed it is far too small."""
    rng = np.random.default_rng(3)
    estimates, se_fit, se_fixed = [], [], []
    for _ in range(60):
        obs, action, reward, propensity, target = _synthetic_log(rng, 400)
        fit = RidgeDesign.build(obs, action, 3).cross_fit(obs, reward, rng.integers(0, 2, 400))
        for model, out in ((fit, se_fit), (fit.estimated_rewards, se_fixed)):
            iv = DirectMethod().interval(
                BanditInputs.prepare(reward, action, propensity, target, estimated_rewards=model), seed=1
            )
            out.append((iv.high - iv.low) / 3.92)
        estimates.append(iv.estimate)
    spread = np.std(estimates, ddof=1)
    assert 0.75 < np.mean(se_fit) / spread < 1.35
    assert np.mean(se_fixed) / spread < 0.5


def test_l2_selection_follows_the_cross_fitted_log_loss():
    """Clicks driven by the context pick a light penalty; pure noise picks the heaviest
    (the model falls back to the click rate); the chosen fit is the one of least log-loss."""
    rng = np.random.default_rng(3)
    n = 3_000
    context = rng.normal(size=(n, 2))
    action = rng.integers(0, 2, n)
    driven = (rng.random(n) < 1 / (1 + np.exp(-3 * context[:, 0]))).astype(float)
    noise = (rng.random(n) < 0.3).astype(float)
    grid = (0.1, 1e6)
    for reward, expected in ((driven, 0.1), (noise, 1e6)):
        fit, chosen, losses = select_logistic_reward_model(context, action, reward, 2, l2_grid=grid, seed=1)
        assert chosen == expected
        assert losses[chosen] == min(losses.values()) == fit.log_loss
        p = np.clip(fit.estimated_rewards[np.arange(n), action, 0], 1e-12, 1 - 1e-12)
        assert fit.log_loss == pytest.approx(-np.mean(reward * np.log(p) + (1 - reward) * np.log(1 - p)))
    with pytest.raises(TypeError, match="do not pass l2"):
        select_logistic_reward_model(context, action, noise, 2, l2=1.0)
