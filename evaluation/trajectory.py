"""Trajectory (sequential) off-policy estimators for churn-ended, variable-length trajectories.

Trajectory :math:`i` has :math:`T_i` steps (visits) -- it ends when the shopper churns or the
horizon passes, so lengths differ; that is the normal case. With per-step ratios
:math:`\\rho_{it} = \\pi_e(a_{it} \\mid s_{it}) / \\pi_b(a_{it} \\mid s_{it})`, cumulative
weights :math:`w_{it} = \\prod_{t' \\le t} \\rho_{it'}` (:math:`w_{i,-1} = 1`), the full weight
:math:`W_i = w_{i,T_i-1}`, the return :math:`G_i = \\sum_t \\gamma^t r_{it}`, and a model
:math:`\\hat Q`, :math:`\\hat V(s) = \\sum_a \\pi_e(a \\mid s) \\hat Q(s, a)`:

=========  =====================================================================================
estimator  :math:`\\hat V`
=========  =====================================================================================
IS         :math:`\\frac1N \\sum_i W_i G_i`
PDIS       :math:`\\frac1N \\sum_i \\sum_t \\gamma^t w_{it} r_{it}`
WIS        :math:`\\sum_i W_i G_i / \\sum_i W_i`
PDWIS      :math:`\\sum_t \\gamma^t \\sum_i w_{it} r_{it} / \\sum_i w_{it}`
DR         :math:`\\frac1N \\sum_i \\sum_t \\gamma^t [w_{it} (r_{it} - \\hat Q(s_{it}, a_{it}))
           + w_{i,t-1} \\hat V(s_{it})]` (Jiang & Li 2016; Thomas & Brunskill 2016)
FQE        :math:`\\frac1N \\sum_i \\hat V(s_{i0})` (Le et al. 2019), see :mod:`retentionrl.evaluation.fqe`
=========  =====================================================================================

Variable length: a trajectory that ended is an absorbing state in which every policy acts
alike, so past its end :math:`\\rho = 1` (its weight stays :math:`W_i`) and :math:`r = 0`.
That is what the padded ``(N, T_max)`` arrays hold; PDWIS's step-wise normaliser therefore
keeps counting ended trajectories with their final weight, as it should.

Every estimator is written as ``num`` and ``den`` arrays of shape ``(N, C)`` with
:math:`\\hat V = \\sum_c \\sum_i num_{ic} / \\sum_i den_{ic}`, so one set of bootstrap
resamples over trajectories (never steps) serves all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from retentionrl.core.interval import Interval
from retentionrl.evaluation._checks import float_vector, probability_vector, propensity_vector
from retentionrl.evaluation.diagnostics import WeightDiagnostics
from retentionrl.evaluation.intervals import (
    empirical_bernstein_lower,
    percentile_interval,
    resampled_sums,
)


@dataclass(frozen=True)
class TrajectoryInputs:
    """Padded ``(N, T_max)`` arrays of a set of trajectories (build with :meth:`prepare`)."""

    reward: np.ndarray
    ratio: np.ndarray
    mask: np.ndarray
    q_factual: np.ndarray
    v_policy: np.ndarray
    gamma: float
    trajectory_ids: np.ndarray

    @property
    def n_trajectories(self) -> int:
        return int(self.reward.shape[0])

    @property
    def cum_weight(self) -> np.ndarray:
        """:math:`w_{it}`; past the end it stays :math:`W_i` (ratios are padded with 1)."""
        return np.cumprod(self.ratio, axis=1)

    @property
    def discount(self) -> np.ndarray:
        return self.gamma ** np.arange(self.reward.shape[1], dtype=np.float64)

    @property
    def has_model(self) -> bool:
        return bool(np.isfinite(self.v_policy).all())

    @classmethod
    def prepare(
        cls,
        trajectory_id: np.ndarray,
        step: np.ndarray,
        reward: np.ndarray,
        propensity: np.ndarray,
        target_prob: np.ndarray,
        q_factual: np.ndarray | None = None,
        v_policy: np.ndarray | None = None,
        gamma: float = 1.0,
    ) -> TrajectoryInputs:
        """Check per-step arrays (one row per logged step, any order) and pad them.

        :param trajectory_id: ``(n,)`` trajectory of each step (shopper lifetimes).
        :param step: ``(n,)`` 0-based step within the trajectory; each trajectory must have
            steps ``0, 1, ..., T_i - 1`` exactly once.
        :param reward: ``(n,)`` reward of the step.
        :param propensity: ``(n,)`` :math:`\\pi_b(a_t \\mid s_t)` in (0, 1].
        :param target_prob: ``(n,)`` :math:`\\pi_e(a_t \\mid s_t)` in [0, 1].
        :param q_factual: ``(n,)`` :math:`\\hat Q(s_t, a_t)` (for DR).
        :param v_policy: ``(n,)`` :math:`\\hat V(s_t)` (for DR and FQE).
        :param gamma: discount in [0, 1].
        """
        reward = float_vector("reward", reward)
        n = reward.shape[0]
        propensity = propensity_vector(propensity, n)
        target = probability_vector("target_prob", target_prob, n)
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {gamma!r}")
        tid = np.asarray(trajectory_id)
        if tid.shape != (n,):
            raise ValueError(f"trajectory_id must have shape ({n},), got {tid.shape}")
        step = np.asarray(step)
        if step.shape != (n,) or step.dtype.kind not in "iu":
            raise ValueError(f"step must be an integer array of shape ({n},), got {step.dtype} {step.shape}")
        if (step < 0).any():
            raise ValueError(f"step must be >= 0; row {int(np.flatnonzero(step < 0)[0])} has {int(step.min())}")
        ids, row = np.unique(tid, return_inverse=True)
        lengths = np.bincount(row, minlength=ids.size)
        t_max = int(lengths.max())
        if (step >= lengths[row]).any():
            bad = int(np.flatnonzero(step >= lengths[row])[0])
            raise ValueError(
                f"trajectory {ids[row[bad]].item()!r} has {lengths[row[bad]]} steps but row {bad} "
                f"has step {int(step[bad])}: steps must be 0..T-1, each once"
            )
        shape = (ids.size, t_max)
        seen = np.zeros(shape, dtype=np.int64)
        np.add.at(seen, (row, step), 1)
        if (seen > 1).any():
            i, t = np.argwhere(seen > 1)[0]
            raise ValueError(f"trajectory {ids[i].item()!r} has step {t} more than once")

        def pad(values: np.ndarray | None, fill: float, name: str) -> np.ndarray:
            out = np.full(shape, fill)
            if values is None:
                out[row, step] = np.nan
                return out
            out[row, step] = float_vector(name, values, n)
            return out

        mask = np.zeros(shape, dtype=bool)
        mask[row, step] = True
        ratio = np.ones(shape)
        ratio[row, step] = target / propensity
        return cls(
            pad(reward, 0.0, "reward"),
            ratio,
            mask,
            pad(q_factual, 0.0, "q_factual"),
            pad(v_policy, 0.0, "v_policy"),
            float(gamma),
            ids,
        )


@dataclass(frozen=True)
class TrajTerms:
    """``num``, ``den`` of shape ``(N, C)``: :math:`\\hat V = \\sum_c \\sum_i num / \\sum_i den`."""

    num: np.ndarray
    den: np.ndarray
    self_normalized: bool

    def value(self) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float((self.num.sum(axis=0) / self.den.sum(axis=0)).sum())


class TrajectoryEstimator:
    """Base: subclasses define :meth:`terms`; ``estimate`` and ``interval`` are shared."""

    name: ClassVar[str] = "trajectory"
    needs_model: ClassVar[bool] = False
    fixed_model_interval: ClassVar[bool] = True
    """Whether resampling trajectories with the model held fixed gives a valid interval."""

    def terms(self, inputs: TrajectoryInputs) -> TrajTerms:
        raise NotImplementedError

    def _checked_terms(self, inputs: TrajectoryInputs) -> TrajTerms:
        if self.needs_model and not inputs.has_model:
            raise ValueError(f"{self.name} needs q_factual and v_policy (a fitted Q); none were given")
        return self.terms(inputs)

    def estimate(self, inputs: TrajectoryInputs) -> float:
        """Point estimate on trajectories padded by :meth:`TrajectoryInputs.prepare`."""
        return self._checked_terms(inputs).value()

    def interval(
        self, inputs: TrajectoryInputs, alpha: float = 0.05, n_bootstrap: int = 200, seed: int = 0
    ) -> Interval:
        """Bootstrap interval over trajectories and empirical-Bernstein lower bound; see
        :func:`evaluate_trajectories`."""
        return evaluate_trajectories([self], inputs, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)[self.name]


def _column(x: np.ndarray) -> np.ndarray:
    return x.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class TrajectoryIS(TrajectoryEstimator):
    """Trajectory-wise IS: :math:`\\frac1N \\sum_i W_i G_i`."""

    name: ClassVar[str] = "is"

    def terms(self, inputs: TrajectoryInputs) -> TrajTerms:
        big_w = inputs.cum_weight[:, -1:]
        ret = _column(inputs.reward * inputs.discount)
        return TrajTerms(big_w * ret, np.ones_like(ret), False)


@dataclass(frozen=True)
class PerDecisionIS(TrajectoryEstimator):
    """PDIS: :math:`\\frac1N \\sum_i \\sum_t \\gamma^t w_{it} r_{it}`."""

    name: ClassVar[str] = "pdis"

    def terms(self, inputs: TrajectoryInputs) -> TrajTerms:
        num = _column(inputs.cum_weight * inputs.reward * inputs.discount)
        return TrajTerms(num, np.ones_like(num), False)


@dataclass(frozen=True)
class WeightedIS(TrajectoryEstimator):
    """WIS: :math:`\\sum_i W_i G_i / \\sum_i W_i`."""

    name: ClassVar[str] = "wis"

    def terms(self, inputs: TrajectoryInputs) -> TrajTerms:
        big_w = inputs.cum_weight[:, -1:]
        return TrajTerms(big_w * _column(inputs.reward * inputs.discount), big_w, True)


@dataclass(frozen=True)
class PerDecisionWIS(TrajectoryEstimator):
    """PDWIS: :math:`\\sum_t \\gamma^t \\sum_i w_{it} r_{it} / \\sum_i w_{it}`."""

    name: ClassVar[str] = "pdwis"

    def terms(self, inputs: TrajectoryInputs) -> TrajTerms:
        w = inputs.cum_weight
        return TrajTerms(w * inputs.reward * inputs.discount, w, True)


@dataclass(frozen=True)
class TrajectoryDR(TrajectoryEstimator):
    """Per-decision DR: :math:`\\frac1N \\sum_i \\sum_t \\gamma^t [w_{it} (r_{it} - \\hat Q_{it})
    + w_{i,t-1} \\hat V_{it}]`; unbiased with correct propensities for any :math:`\\hat Q`."""

    name: ClassVar[str] = "dr"
    needs_model: ClassVar[bool] = True

    def terms(self, inputs: TrajectoryInputs) -> TrajTerms:
        w = inputs.cum_weight
        prev = np.hstack([np.ones((w.shape[0], 1)), w[:, :-1]])
        step = w * (inputs.reward - inputs.q_factual) + prev * inputs.v_policy
        num = _column(np.where(inputs.mask, step, 0.0) * inputs.discount)
        return TrajTerms(num, np.ones_like(num), False)


@dataclass(frozen=True)
class FQEValue(TrajectoryEstimator):
    """FQE's estimate from a fitted Q: :math:`\\frac1N \\sum_i \\hat V(s_{i0})`.

    Resampling trajectories with the Q held fixed would leave out the fit's own variance
    (and is degenerate when every shopper starts from the same empty history), so its
    bootstrap interval is NaN here; refit FQE per resample for one."""

    name: ClassVar[str] = "fqe"
    needs_model: ClassVar[bool] = True
    fixed_model_interval: ClassVar[bool] = False

    def terms(self, inputs: TrajectoryInputs) -> TrajTerms:
        num = inputs.v_policy[:, :1].copy()
        return TrajTerms(num, np.ones_like(num), False)


def default_trajectory_estimators(with_model: bool = True) -> list[TrajectoryEstimator]:
    base: list[TrajectoryEstimator] = [TrajectoryIS(), PerDecisionIS(), WeightedIS(), PerDecisionWIS()]
    return base + [TrajectoryDR(), FQEValue()] if with_model else base


def trajectory_diagnostics(inputs: TrajectoryInputs) -> WeightDiagnostics:
    """ESS and largest weight of the full-trajectory weights :math:`W_i`."""
    return WeightDiagnostics.of(inputs.cum_weight[:, -1])


def evaluate_trajectories(
    estimators: Sequence[TrajectoryEstimator],
    inputs: TrajectoryInputs,
    *,
    alpha: float = 0.05,
    n_bootstrap: int = 200,
    seed: int = 0,
    value_range: float | None = None,
) -> dict[str, Interval]:
    """Estimates and intervals of several estimators from one set of trajectory resamples."""
    names = [e.name for e in estimators]
    if len(set(names)) != len(names):
        raise ValueError(f"estimator names must be unique, got {names}")
    terms = {est.name: est._checked_terms(inputs) for est in estimators}
    resampled = [name for name, est in zip(names, estimators) if est.fixed_model_interval]
    # one draw of trajectory resamples for every estimator: the resampled sums of each one's
    # num and den columns side by side (the bandit estimators' engine, resampled_sums)
    stats = [np.hstack([terms[name].num, terms[name].den]) for name in resampled]
    sums = resampled_sums(np.hstack(stats), n_bootstrap, seed) if stats else np.empty((0, 0))
    starts = np.cumsum([0] + [s.shape[1] for s in stats])
    out: dict[str, Interval] = {}
    for name, est in zip(names, estimators):
        t = terms[name]
        if not est.fixed_model_interval:
            out[name] = Interval(t.value(), float("nan"), float("nan"), alpha=alpha)
            continue
        i, c = resampled.index(name), t.num.shape[1]
        num, den = sums[:, starts[i] : starts[i] + c], sums[:, starts[i] + c : starts[i] + 2 * c]
        with np.errstate(divide="ignore", invalid="ignore"):
            values = (num / den).sum(axis=1)
        lower = float("nan")
        if not t.self_normalized and inputs.n_trajectories >= 2:
            lower = empirical_bernstein_lower(t.num.sum(axis=1), alpha, value_range)
        out[name] = percentile_interval(t.value(), values, alpha, lower)
    return out
