"""Linear fitted-Q evaluation (FQE) and the linear reward model it reduces to.

Features of a (state, action) pair, with :math:`f_a` optional action features
(``action_features[a]``, e.g. one-hot arm and coupon):

.. math:: \\phi(s, a) = [1,\\ s,\\ e_a,\\ s \\otimes f_a]

FQE (Le et al. 2019) iterates ridge regressions on one fixed design, so the Gram matrix is
factored once:

.. math:: \\hat Q_{k+1} = \\arg\\min_Q \\sum_{i} \\big(Q(s_i, a_i) - r_i
          - \\gamma (1 - d_i) \\textstyle\\sum_{a'} \\pi_e(a' \\mid s'_i) \\hat Q_k(s'_i, a')\\big)^2
          + \\lambda \\lVert w \\rVert^2

with :math:`d_i = 1` at a trajectory's last step (churn or horizon: both end the estimand).
With ``n_iterations`` at least the longest trajectory and :math:`\\gamma \\le 1` the
iteration is the finite-horizon backup. ``gamma = 0`` (or one iteration) is the reward
regression :math:`\\hat r(s, a)` that DM and DR use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retentionrl.evaluation._checks import float_vector, int_vector


@dataclass(frozen=True)
class LinearQ:
    """A fitted :math:`\\hat Q(s, a) = w \\cdot \\phi(s, a)` (see the module docstring)."""

    n_actions: int
    action_features: np.ndarray
    coef: np.ndarray
    x_mean: np.ndarray
    x_scale: np.ndarray

    def design(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """:math:`\\phi(s_i, a_i)` rows, shape ``(n, p)``."""
        s = (np.asarray(obs, dtype=np.float64) - self.x_mean) / self.x_scale
        return _design(s, np.asarray(action, dtype=np.int64), self.n_actions, self.action_features)

    def q_all(self, obs: np.ndarray) -> np.ndarray:
        """:math:`\\hat Q(s_i, a)` for every action, shape ``(n, n_actions)``."""
        s = (np.asarray(obs, dtype=np.float64) - self.x_mean) / self.x_scale
        d = s.shape[1]
        k = self.action_features.shape[1]
        c = self.coef
        w0, ws, we, wsf = c[0], c[1 : 1 + d], c[1 + d : 1 + d + self.n_actions], c[1 + d + self.n_actions :]
        out = w0 + (s @ ws)[:, None] + we[None, :]
        if k:
            out = out + s @ wsf.reshape(d, k) @ self.action_features.T
        return out

    def feature_sum(self, obs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """:math:`\\sum_{i, a} W_{ia} \\phi(s_i, a)` for weights ``(n, n_actions)``, shape ``(p,)``
        (the adjoint of :meth:`q_all`: ``coef @ feature_sum(obs, W) == (W * q_all(obs)).sum()``),
        without building the ``(n, n_actions, p)`` features."""
        s = (np.asarray(obs, dtype=np.float64) - self.x_mean) / self.x_scale
        w = np.asarray(weights, dtype=np.float64)
        m = w.sum(axis=1)
        return np.concatenate([[m.sum()], s.T @ m, w.sum(axis=0), (s.T @ (w @ self.action_features)).ravel()])

    def q_logged(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        return self.design(obs, action) @ self.coef

    def v(self, obs: np.ndarray, target_dist: np.ndarray) -> np.ndarray:
        """:math:`\\hat V(s_i) = \\sum_a \\pi_e(a \\mid s_i) \\hat Q(s_i, a)`."""
        return np.einsum("ia,ia->i", target_dist, self.q_all(obs))


def _design(s: np.ndarray, action: np.ndarray, n_actions: int, feats: np.ndarray) -> np.ndarray:
    n = s.shape[0]
    onehot = np.zeros((n, n_actions))
    onehot[np.arange(n), action] = 1.0
    parts = [np.ones((n, 1)), s, onehot]
    if feats.shape[1]:
        parts.append((s[:, :, None] * feats[action][:, None, :]).reshape(n, -1))
    return np.hstack(parts)


@dataclass(frozen=True)
class RidgeDesign:
    """The fixed design :math:`\\Phi` of logged (state, action) rows with its ridge inverse
    :math:`(\\Phi^\\top \\Phi + \\lambda I)^{-1}`, computed once and shared by every fit
    on the same rows (the reward model and the FQE of every target policy)."""

    x: np.ndarray
    inv_gram: np.ndarray
    template: LinearQ
    ridge: float = 1.0

    @classmethod
    def build(
        cls,
        obs: np.ndarray,
        action: np.ndarray,
        n_actions: int,
        action_features: np.ndarray | None = None,
        ridge: float = 1.0,
    ) -> RidgeDesign:
        """:param ridge: L2 penalty :math:`\\lambda > 0` on standardized features (not the intercept)."""
        obs = np.asarray(obs, dtype=np.float64)
        if obs.ndim != 2 or not np.isfinite(obs).all():
            raise ValueError(f"obs must be a finite 2-d array, got shape {obs.shape}")
        action = int_vector("action", action, obs.shape[0], 0, n_actions)
        if not ridge > 0:
            raise ValueError(f"ridge must be > 0, got {ridge!r}")
        feats = np.zeros((n_actions, 0)) if action_features is None else np.asarray(action_features, dtype=np.float64)
        if feats.ndim != 2 or feats.shape[0] != n_actions:
            raise ValueError(f"action_features must have shape ({n_actions}, k), got {feats.shape}")
        mean, scale = obs.mean(axis=0), obs.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        template = LinearQ(n_actions, feats, np.zeros(0), mean, scale)
        x = template.design(obs, action)
        gram = x.T @ x + ridge * np.eye(x.shape[1])
        gram[0, 0] -= ridge
        return cls(x, np.linalg.inv(gram), template, float(ridge))

    def cross_fit(self, obs: np.ndarray, y: np.ndarray, fold: np.ndarray) -> CrossFittedRidge:
        """The reward model :math:`\\hat r(s, a)` of DM and DR, cross-fitted: each row's
        predictions (every action) from the ridge fit on the rows of the **other** folds
        (``fold`` ``(n,)`` ints; put all rows of a shopper in one fold); a single fold is fitted
        and predicted in-sample. With its fit influence
        (:class:`retentionrl.evaluation.fit_influence.RewardFit`), so intervals can include the fit."""
        fold = np.asarray(fold)
        obs = np.asarray(obs, dtype=np.float64)
        y = float_vector("y", y, self.x.shape[0])
        if fold.shape != y.shape or obs.shape[0] != y.shape[0]:
            raise ValueError(f"obs, y and fold must have {self.x.shape[0]} rows, got {obs.shape}, {fold.shape}")
        t = self.template
        penalty = self.ridge * np.eye(self.x.shape[1])
        penalty[0, 0] = 0.0
        folds = np.unique(fold)
        out = np.empty((obs.shape[0], t.n_actions))
        trained, inverses, residuals = [], [], []
        for f in folds:
            train = fold != f if folds.size > 1 else np.ones(fold.shape, dtype=bool)
            xt = self.x[train]
            inverse = np.linalg.inv(xt.T @ xt + penalty)
            coef = inverse @ (xt.T @ y[train])
            out[fold == f] = LinearQ(t.n_actions, t.action_features, coef, t.x_mean, t.x_scale).q_all(obs[fold == f])
            trained.append(train)
            inverses.append(inverse)
            residuals.append(y - self.x @ coef)
        return CrossFittedRidge(out, self, obs, fold, folds, tuple(trained), tuple(inverses), tuple(residuals))

    def solve(self, y: np.ndarray) -> LinearQ:
        """Ridge fit of targets ``y`` on the design."""
        t = self.template
        return LinearQ(t.n_actions, t.action_features, self.inv_gram @ (self.x.T @ y), t.x_mean, t.x_scale)


@dataclass(frozen=True)
class CrossFittedRidge:
    """A ridge reward model cross-fitted by :meth:`RidgeDesign.cross_fit`: its predictions
    ``estimated_rewards`` ``(n, n_actions)`` and, per fold :math:`f`, the rows it predicts
    (``fold == folds[f]``), the rows it was trained on, the inverse Gram matrix
    :math:`H_f^{-1} = (\\Phi_{-f}^\\top \\Phi_{-f} + \\Lambda)^{-1}` and the residuals
    :math:`y - \\Phi w_f` of every row, which give its fit influence (squared loss,
    :math:`\\mu' = 1`; :mod:`retentionrl.evaluation.fit_influence`)."""

    estimated_rewards: np.ndarray
    design: RidgeDesign
    obs: np.ndarray
    fold: np.ndarray
    folds: np.ndarray
    trained: tuple[np.ndarray, ...]
    inverses: tuple[np.ndarray, ...]
    residuals: tuple[np.ndarray, ...]

    def influence(self, all_actions: np.ndarray | None, logged: np.ndarray | None) -> np.ndarray:
        """:math:`\\psi_j = (y_j - \\hat r_{-f}(s_j, a_j))\\, \\phi_j^\\top H_f^{-1} G_f`, summed over the
        folds :math:`f` whose model was trained on row :math:`j`; :math:`G_f` sums the weights
        over the rows of fold :math:`f` (see :class:`retentionrl.evaluation.fit_influence.RewardFit`)."""
        x, t = self.design.x, self.design.template
        psi = np.zeros(x.shape[0])
        for f, train, inverse, residual in zip(self.folds, self.trained, self.inverses, self.residuals):
            test = (self.fold == f)[:, None]
            g = np.zeros(x.shape[1])
            if all_actions is not None:
                g += t.feature_sum(self.obs, np.where(test, all_actions, 0.0))
            if logged is not None:
                g += x.T @ np.where(test[:, 0], logged, 0.0)
            psi += np.where(train, (x @ (inverse @ g)) * residual, 0.0)
        return psi


def fit_fqe(
    obs: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    trajectory_id: np.ndarray,
    step: np.ndarray,
    target_dist: np.ndarray,
    *,
    n_actions: int,
    action_features: np.ndarray | None = None,
    gamma: float = 1.0,
    n_iterations: int | None = None,
    ridge: float = 1.0,
    design: RidgeDesign | None = None,
) -> LinearQ:
    """Fit :math:`\\hat Q^{\\pi_e}` by linear FQE on logged steps.

    :param obs: ``(n, d)`` state of each step.
    :param action: ``(n,)`` logged actions.
    :param reward: ``(n,)`` rewards.
    :param trajectory_id: ``(n,)``, with ``step`` ``(n,)``: the next state of a row is the row
        of the same trajectory with ``step + 1``; the last step of a trajectory is terminal.
    :param target_dist: ``(n, n_actions)`` :math:`\\pi_e(\\cdot \\mid s_i)` on each row's state.
    :param gamma: discount in [0, 1]; 0 gives the reward regression.
    :param n_iterations: backups; default the longest trajectory (at most 100).
    :param ridge: L2 penalty :math:`\\lambda > 0` on standardized features.
    :param design: a :class:`RidgeDesign` already built on these rows (then ``ridge`` and
        ``action_features`` are its own).
    """
    reward = float_vector("reward", reward)
    n = reward.shape[0]
    obs = np.asarray(obs, dtype=np.float64)
    if obs.ndim != 2 or obs.shape[0] != n or not np.isfinite(obs).all():
        raise ValueError(f"obs must be finite with shape ({n}, d), got {obs.shape}")
    action = int_vector("action", action, n, 0, n_actions)
    dist = np.asarray(target_dist, dtype=np.float64)
    if dist.shape != (n, n_actions):
        raise ValueError(f"target_dist must have shape ({n}, {n_actions}), got {dist.shape}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma!r}")
    tid = np.asarray(trajectory_id)
    step = np.asarray(step, dtype=np.int64)
    if tid.shape != (n,) or step.shape != (n,):
        raise ValueError(f"trajectory_id and step must have shape ({n},), got {tid.shape} and {step.shape}")
    if design is None:
        design = RidgeDesign.build(obs, action, n_actions, action_features, ridge)
    elif design.x.shape[0] != n:
        raise ValueError(f"design has {design.x.shape[0]} rows, the data {n}")

    order = np.lexsort((step, tid))
    nxt = np.full(n, -1)
    same = (tid[order][1:] == tid[order][:-1]) & (step[order][1:] == step[order][:-1] + 1)
    nxt[order[:-1][same]] = order[1:][same]
    has_next = nxt >= 0
    if n_iterations is None:
        _, counts = np.unique(tid, return_counts=True)
        n_iterations = min(int(counts.max()), 100)
    q = design.solve(reward)
    if gamma > 0:
        next_obs, next_dist = obs[nxt[has_next]], dist[nxt[has_next]]
        for _ in range(max(int(n_iterations) - 1, 0)):
            y = reward.copy()
            y[has_next] += gamma * q.v(next_obs, next_dist)
            q = design.solve(y)
    return q
