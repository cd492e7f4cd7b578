"""One call that runs every estimator for one target policy on one set of logged steps.

Per decision: the seven bandit estimators of :mod:`retentionrl.evaluation.bandit` on ``bandit_reward``
(value per logged step, bootstrap over trajectories/shoppers), with a linear reward model
(ridge regression), cross-fitted over shoppers by default
(:meth:`retentionrl.evaluation.fqe.RidgeDesign.cross_fit`); the bootstrap moves the model with each
resample of shoppers (its first-order fit influence, :mod:`retentionrl.evaluation.fit_influence`), so
the intervals of DM, DR and their variants include the reward model's fit variability. Per
trajectory: IS, PDIS, WIS, PDWIS, DR and FQE of :mod:`retentionrl.evaluation.trajectory` on
``trajectory_reward`` (value per trajectory).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from retentionrl.core.interval import Interval
from retentionrl.core.policy import Policy
from retentionrl.evaluation.bandit import BanditInputs, default_estimators, evaluate_bandit
from retentionrl.evaluation.diagnostics import WeightDiagnostics, unsupported_mass
from retentionrl.evaluation.fqe import CrossFittedRidge, RidgeDesign, fit_fqe
from retentionrl.evaluation.trajectory import (
    TrajectoryInputs,
    default_trajectory_estimators,
    evaluate_trajectories,
    trajectory_diagnostics,
)


@dataclass(frozen=True)
class OPEResult:
    """Estimates with intervals and weight diagnostics of one target policy."""

    policy: str
    bandit: dict[str, Interval]
    trajectory: dict[str, Interval]
    bandit_diagnostics: WeightDiagnostics
    trajectory_diagnostics: WeightDiagnostics
    notes: list[str] = field(default_factory=list)
    model: dict[str, Interval] = field(default_factory=dict)
    """Model-based trajectory estimates (:mod:`retentionrl.evaluation.model_based`), when a simulator was given."""


@dataclass(frozen=True)
class LoggedSteps:
    """Logged steps as plain arrays (one row per visit), shared by all target policies."""

    obs: np.ndarray
    action: np.ndarray
    propensity: np.ndarray
    trajectory_id: np.ndarray
    step: np.ndarray
    bandit_reward: np.ndarray
    trajectory_reward: np.ndarray
    n_actions: int
    action_features: np.ndarray | None = None


def evaluate_offline(
    steps: LoggedSteps,
    target_dist: np.ndarray,
    *,
    policy: str = "target",
    behavior_dist: np.ndarray | None = None,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    sequential: bool = True,
    design: RidgeDesign | None = None,
    cross_fit: int = 2,
    reward_fit: CrossFittedRidge | None = None,
) -> OPEResult:
    """Run all estimators for the target policy with ``target_dist`` ``(n, n_actions)`` =
    :math:`\\pi_e(\\cdot \\mid s_i)` on the logged states.

    :param behavior_dist: :math:`\\pi_b(\\cdot \\mid s_i)` for the support diagnostic; without
        it the support is the set of logged actions.
    :param sequential: also run the trajectory estimators (and fit FQE).
    :param design: the ridge design of these steps (:func:`design_of`), to share it across
        target policies; built here when None.
    :param cross_fit: folds of shoppers for the per-decision reward model (each step's
        :math:`\\hat r` from the fit on the other folds' shoppers); 0 or 1 = fit on all steps.
    :param reward_fit: that reward model already fitted on these steps (:func:`reward_fit_of`;
        it does not depend on the target), to share it across target policies; fitted here
        when None.
    """
    dist = np.asarray(target_dist, dtype=np.float64)
    n = steps.action.shape[0]
    if dist.shape != (n, steps.n_actions):
        raise ValueError(f"target_dist must have shape ({n}, {steps.n_actions}), got {dist.shape}")
    if design is None:
        design = design_of(steps)
    if reward_fit is None:
        reward_fit = reward_fit_of(steps, design, cross_fit, seed)
    inputs = BanditInputs.prepare(
        steps.bandit_reward,
        steps.action,
        steps.propensity,
        dist,
        estimated_rewards=reward_fit,
        groups=steps.trajectory_id,
    )
    bandit = evaluate_bandit(default_estimators(), inputs, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)
    unsupported = unsupported_mass(dist, behavior_dist, None if behavior_dist is not None else steps.action)
    bandit_diag = WeightDiagnostics.of(inputs.weight, unsupported)
    trajectory: dict[str, Interval] = {}
    traj_diag = WeightDiagnostics(0, float("nan"), float("nan"), float("nan"), unsupported)
    if sequential:
        q = fit_fqe(
            steps.obs,
            steps.action,
            steps.trajectory_reward,
            steps.trajectory_id,
            steps.step,
            dist,
            n_actions=steps.n_actions,
            action_features=steps.action_features,
            gamma=1.0,
            design=design,
        )
        prob = dist[np.arange(n), steps.action]
        tin = TrajectoryInputs.prepare(
            steps.trajectory_id,
            steps.step,
            steps.trajectory_reward,
            steps.propensity,
            prob,
            q.q_logged(steps.obs, steps.action),
            q.v(steps.obs, dist),
        )
        trajectory = evaluate_trajectories(
            default_trajectory_estimators(), tin, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed
        )
        d = trajectory_diagnostics(tin)
        traj_diag = WeightDiagnostics(d.n_units, d.ess, d.max_weight, d.max_weight_share, unsupported)
    return OPEResult(policy, bandit, trajectory, bandit_diag, traj_diag)


def evaluate_policies(
    steps: LoggedSteps,
    policies: Mapping[str, Policy],
    *,
    n_bootstrap: int = 200,
    seed: int = 0,
    sequential: bool = True,
    cross_fit: int = 2,
) -> dict[str, OPEResult]:
    """:func:`evaluate_offline` of each policy (its probabilities on the logged states) on the
    same steps, the ridge design and the per-decision reward model built once: they do not
    depend on the target, so each result is the one a call of its own would give."""
    design = design_of(steps)
    reward_fit = reward_fit_of(steps, design, cross_fit, seed)
    return {
        name: evaluate_offline(
            steps,
            policy.action_probs(steps.obs),
            policy=name,
            n_bootstrap=n_bootstrap,
            seed=seed,
            sequential=sequential,
            design=design,
            cross_fit=cross_fit,
            reward_fit=reward_fit,
        )
        for name, policy in policies.items()
    }


def reward_fit_of(steps: LoggedSteps, design: RidgeDesign, cross_fit: int = 2, seed: int = 0) -> CrossFittedRidge:
    """The per-decision reward model of ``bandit_reward`` on ``design``, cross-fitted over
    ``cross_fit`` random folds of shoppers (0 or 1: fitted and predicted on all steps)."""
    _, shopper = np.unique(steps.trajectory_id, return_inverse=True)
    fold = (np.random.default_rng(seed).permutation(int(shopper.max()) + 1) % max(cross_fit, 1))[shopper.ravel()]
    return design.cross_fit(steps.obs, steps.bandit_reward, fold)


def design_of(steps: LoggedSteps) -> RidgeDesign:
    """The ridge design of the logged (state, action) rows, shared by all fits on them."""
    return RidgeDesign.build(steps.obs, steps.action, steps.n_actions, steps.action_features)
