"""Per-decision (bandit) off-policy estimators, with positions as obp handles them.

Notation for round :math:`i` (of :math:`n`): context :math:`x_i`, logged action
:math:`a_i` at slot :math:`k_i`, reward :math:`r_i`, logging propensity
:math:`p_i = \\pi_b(a_i \\mid x_i, k_i)`; the target policy's distribution
:math:`\\pi_e(\\cdot \\mid x_i, k_i)` (``action_dist[i, :, k_i]``); a reward model
:math:`\\hat q(x, a, k)` (``estimated_rewards``). Then

.. math::
   w_i = \\pi_e(a_i \\mid x_i, k_i) / p_i, \\quad
   \\hat q_i^{\\pi} = \\sum_a \\pi_e(a \\mid x_i, k_i)\\, \\hat q(x_i, a, k_i), \\quad
   \\hat q_i = \\hat q(x_i, a_i, k_i).

The value is position-wise as in obp: the mean over rounds of all slots (for OBD, the
expected clicks per shown slot). Every estimator here is written as per-round terms

.. math:: \\hat V = \\frac1n \\sum_i b_i + \\frac{\\sum_i u_i}{\\sum_i d_i}

(``base``, ``num``, ``den``), so the estimate, the bootstrap over units (shoppers) and the
concentration bound all reuse the same terms, computed once (the obp IPW pattern).

The reward model enters the estimators that use it (all but IPS and SNIPS) through
:math:`\\hat q^{\\pi}_i` and :math:`\\hat w_i \\hat q_i` (``residual_weight`` :math:`\\hat w_i`
below: :math:`u_i = \\hat w_i (r_i - \\hat q_i)`). Given as a plain array it is held fixed: the
interval then conditions on the model (right to first order for DR and SNDR with a
cross-fitted model, whose terms are orthogonal to the model's error; far too narrow for DM).
Given as a fit (:class:`retentionrl.evaluation.fit_influence.RewardFit`) the bootstrap also moves the
model as a refit on each resample would, to first order: each resample adds
:math:`\\sum_j (c_j - 1) \\psi_j` with :math:`\\psi` the fit influence of the functional
:math:`\\frac1n \\sum_i \\hat q^{\\pi}_i - \\sum_i \\hat w_i \\hat q_i / \\sum_i d_i` (the estimate's
dependence on :math:`\\hat q`).

==========  ==============================  ==============================  ==========
estimator   b_i                             u_i                             d_i
==========  ==============================  ==============================  ==========
DM          q̂^π_i                           0                               1
IPS         0                               w_i r_i                         1
SNIPS       0                               w_i r_i                         w_i
DR          q̂^π_i                           w_i (r_i - q̂_i)                 1
SNDR        q̂^π_i                           w_i (r_i - q̂_i)                 w_i
Switch-DR   q̂^π_i                           1[w_i <= τ] w_i (r_i - q̂_i)     1
DRos        q̂^π_i                           λ w_i / (w_i² + λ) (r_i - q̂_i)  1
==========  ==============================  ==============================  ==========

References: Dudík et al. 2011 (DR), Swaminathan & Joachims 2015 (SNIPS), Wang et al. 2017
(Switch), Su et al. 2020 (DRos), Saito et al. 2021 (obp).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from retentionrl.core.interval import Interval
from retentionrl.evaluation._checks import (
    float_vector,
    int_vector,
    per_action_array,
    positive,
    propensity_vector,
)
from retentionrl.evaluation.fit_influence import RewardFit
from retentionrl.evaluation.intervals import (
    empirical_bernstein_lower,
    percentile_interval,
    resampled_sums,
    unit_index,
    unit_sums,
)


@dataclass(frozen=True)
class BanditInputs:
    """Checked per-round quantities every bandit estimator reads (built by :meth:`prepare`).

    ``weight`` is :math:`w_i`; ``q_factual`` :math:`\\hat q_i` and ``q_policy``
    :math:`\\hat q^{\\pi}_i` are NaN when no reward model was given; ``unit`` numbers the
    independent units (shoppers) 0..n_units-1. ``fit`` is the reward model when it was given
    as a :class:`~retentionrl.evaluation.fit_influence.RewardFit` (else None), and ``policy_influence``
    its fit influence on :math:`\\frac1n \\sum_i \\hat q^{\\pi}_i` (None without a fit).
    """

    reward: np.ndarray
    weight: np.ndarray
    q_factual: np.ndarray
    q_policy: np.ndarray
    unit: np.ndarray
    n_units: int
    fit: RewardFit | None = None
    policy_influence: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.reward.shape[0])

    @property
    def has_model(self) -> bool:
        return bool(np.isfinite(self.q_policy).all())

    @classmethod
    def prepare(
        cls,
        reward: np.ndarray,
        action: np.ndarray,
        propensity: np.ndarray,
        action_dist: np.ndarray,
        position: np.ndarray | None = None,
        estimated_rewards: np.ndarray | RewardFit | None = None,
        groups: np.ndarray | None = None,
    ) -> BanditInputs:
        """Check the arrays (ValueError naming the argument, rows and values) and compute
        :math:`w_i`, :math:`\\hat q_i`, :math:`\\hat q^{\\pi}_i` once.

        :param reward: ``(n,)`` finite rewards.
        :param action: ``(n,)`` logged actions in ``[0, n_actions)``.
        :param propensity: ``(n,)`` logging probabilities in (0, 1].
        :param action_dist: ``(n, n_actions, len_list)`` target probabilities (``(n,
            n_actions)`` without positions), each slot summing to 1.
        :param position: ``(n,)`` 0-based slots in ``[0, len_list)``; None = one slot.
        :param estimated_rewards: reward model :math:`\\hat q`, same shape as ``action_dist``;
            or a :class:`~retentionrl.evaluation.fit_influence.RewardFit` of that model, for intervals that
            include its fit (module docstring).
        :param groups: ``(n,)`` unit ids (shopper or trajectory) for the bootstrap; None =
            every round its own unit.
        """
        reward = float_vector("reward", reward)
        n = reward.shape[0]
        dist = np.asarray(action_dist, dtype=np.float64)
        len_list = dist.shape[2] if dist.ndim == 3 else 1
        dist = per_action_array("action_dist", dist, n, len_list, probabilities=True)
        n_actions = dist.shape[1]
        action = int_vector("action", action, n, 0, n_actions)
        propensity = propensity_vector(propensity, n)
        if position is None:
            if len_list != 1:
                raise ValueError(f"action_dist has len_list={len_list} slots but position is None; give the positions")
            position = np.zeros(n, dtype=np.int64)
        else:
            position = int_vector("position", position, n, 0, len_list)
        rows = np.arange(n)
        weight = dist[rows, action, position] / propensity
        fit = estimated_rewards if isinstance(estimated_rewards, RewardFit) else None
        policy_influence = None
        if estimated_rewards is None:
            q_factual = q_policy = np.full(n, np.nan)
        else:
            given = (
                estimated_rewards.estimated_rewards if isinstance(estimated_rewards, RewardFit) else estimated_rewards
            )
            q = per_action_array("estimated_rewards", given, n, len_list, probabilities=False)
            if q.shape != dist.shape:
                raise ValueError(f"estimated_rewards must have the shape of action_dist {dist.shape}, got {q.shape}")
            q_factual = q[rows, action, position]
            q_policy = np.einsum("ia,ia->i", dist[rows, :, position], q[rows, :, position])
            if fit is not None:
                at_slot = np.zeros_like(dist)
                at_slot[rows, :, position] = dist[rows, :, position] / n
                policy_influence = fit.influence(at_slot.reshape(np.shape(given)), None)
        unit, n_units = unit_index(groups, n)
        return cls(reward, weight, q_factual, q_policy, unit, n_units, fit, policy_influence)


@dataclass(frozen=True)
class Terms:
    """Per-round terms: the estimate is ``mean(base) + sum(num) / sum(den)``.

    ``residual_weight`` is :math:`\\hat w_i` of an estimator that uses the reward model
    (``base`` :math:`= \\hat q^{\\pi}`, ``num`` :math:`= \\hat w (r - \\hat q)`); None when it does
    not."""

    base: np.ndarray
    num: np.ndarray
    den: np.ndarray
    self_normalized: bool
    residual_weight: np.ndarray | None = None

    def value(self) -> float:
        den = self.den.sum()
        return float(self.base.mean() + (self.num.sum() / den if den > 0 else np.nan))


class BanditEstimator:
    """Base of the estimators: subclasses define :meth:`terms` (and a docstring formula)."""

    name: ClassVar[str] = "estimator"
    needs_model: ClassVar[bool] = False

    def terms(self, inputs: BanditInputs) -> Terms:
        raise NotImplementedError

    def _checked_terms(self, inputs: BanditInputs) -> Terms:
        if self.needs_model and not inputs.has_model:
            raise ValueError(f"{self.name} needs estimated_rewards (a reward model); none was given")
        return self.terms(inputs)

    def estimate(self, inputs: BanditInputs) -> float:
        """The point estimate :math:`\\hat V` on rounds checked by :meth:`BanditInputs.prepare`."""
        return self._checked_terms(inputs).value()

    def interval(self, inputs: BanditInputs, alpha: float = 0.05, n_bootstrap: int = 200, seed: int = 0) -> Interval:
        """Bootstrap percentile interval over the units of ``inputs`` and the empirical-Bernstein
        lower bound at level ``alpha``; see :func:`evaluate_bandit`."""
        return evaluate_bandit([self], inputs, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)[self.name]


def _residual(inputs: BanditInputs) -> np.ndarray:
    return inputs.reward - inputs.q_factual


@dataclass(frozen=True)
class DirectMethod(BanditEstimator):
    """DM: :math:`\\hat V = \\frac1n \\sum_i \\sum_a \\pi_e(a \\mid x_i, k_i) \\hat q(x_i, a, k_i)`."""

    name: ClassVar[str] = "dm"
    needs_model: ClassVar[bool] = True

    def terms(self, inputs: BanditInputs) -> Terms:
        zero = np.zeros(inputs.n)
        return Terms(inputs.q_policy, zero, np.ones(inputs.n), False, zero)


@dataclass(frozen=True)
class IPS(BanditEstimator):
    """IPS: :math:`\\hat V = \\frac1n \\sum_i w_i r_i`; unbiased when :math:`p_i > 0`
    wherever :math:`\\pi_e > 0`."""

    name: ClassVar[str] = "ips"

    def terms(self, inputs: BanditInputs) -> Terms:
        return Terms(np.zeros(inputs.n), inputs.weight * inputs.reward, np.ones(inputs.n), False)


@dataclass(frozen=True)
class SNIPS(BanditEstimator):
    """SNIPS: :math:`\\hat V = \\sum_i w_i r_i / \\sum_i w_i`; stays within
    :math:`[\\min r, \\max r]`."""

    name: ClassVar[str] = "snips"

    def terms(self, inputs: BanditInputs) -> Terms:
        return Terms(np.zeros(inputs.n), inputs.weight * inputs.reward, inputs.weight, True)


@dataclass(frozen=True)
class DoublyRobust(BanditEstimator):
    """DR: :math:`\\hat V = \\frac1n \\sum_i [\\hat q^{\\pi}_i + w_i (r_i - \\hat q_i)]`."""

    name: ClassVar[str] = "dr"
    needs_model: ClassVar[bool] = True

    def terms(self, inputs: BanditInputs) -> Terms:
        return Terms(inputs.q_policy, inputs.weight * _residual(inputs), np.ones(inputs.n), False, inputs.weight)


@dataclass(frozen=True)
class SelfNormalizedDR(BanditEstimator):
    """SNDR: :math:`\\hat V = \\frac1n \\sum_i \\hat q^{\\pi}_i
    + \\sum_i w_i (r_i - \\hat q_i) / \\sum_i w_i`."""

    name: ClassVar[str] = "sndr"
    needs_model: ClassVar[bool] = True

    def terms(self, inputs: BanditInputs) -> Terms:
        return Terms(inputs.q_policy, inputs.weight * _residual(inputs), inputs.weight, True, inputs.weight)


@dataclass(frozen=True)
class SwitchDR(BanditEstimator):
    """Switch-DR: :math:`\\hat V = \\frac1n \\sum_i [\\hat q^{\\pi}_i
    + 1[w_i \\le \\tau]\\, w_i (r_i - \\hat q_i)]`: DR where the weight is at most
    :math:`\\tau`, DM beyond. :math:`\\tau = \\infty` is DR (obp's default).

    :param tau: switching threshold, > 0 (inf allowed).
    """

    tau: float = float("inf")
    name: ClassVar[str] = "switch-dr"
    needs_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        positive("tau", self.tau, allow_inf=True)

    def terms(self, inputs: BanditInputs) -> Terms:
        kept = (inputs.weight <= self.tau) * inputs.weight
        return Terms(inputs.q_policy, kept * _residual(inputs), np.ones(inputs.n), False, kept)


@dataclass(frozen=True)
class DRos(BanditEstimator):
    """DR with optimistic shrinkage: :math:`\\hat V = \\frac1n \\sum_i [\\hat q^{\\pi}_i
    + \\hat w_i (r_i - \\hat q_i)]`, :math:`\\hat w_i = \\lambda w_i / (w_i^2 + \\lambda)`;
    :math:`\\lambda \\to \\infty` is DR, :math:`\\lambda \\to 0` is DM.

    :param lam: shrinkage :math:`\\lambda`, > 0 (inf allowed).
    """

    lam: float = 1.0
    name: ClassVar[str] = "dros"
    needs_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        positive("lam", self.lam, allow_inf=True)

    def terms(self, inputs: BanditInputs) -> Terms:
        w = inputs.weight
        shrunk = w if np.isinf(self.lam) else self.lam * w / (w**2 + self.lam)
        return Terms(inputs.q_policy, shrunk * _residual(inputs), np.ones(inputs.n), False, shrunk)


ALL_BANDIT_ESTIMATORS: tuple[type[BanditEstimator], ...] = (
    DirectMethod,
    IPS,
    SNIPS,
    DoublyRobust,
    SelfNormalizedDR,
    SwitchDR,
    DRos,
)


def default_estimators(with_model: bool = True) -> list[BanditEstimator]:
    """The seven estimators with default settings (only IPS and SNIPS without a model)."""
    if not with_model:
        return [IPS(), SNIPS()]
    return [DirectMethod(), IPS(), SNIPS(), DoublyRobust(), SelfNormalizedDR(), SwitchDR(), DRos()]


def tuned_estimators(inputs: BanditInputs, taus: Sequence[float], lambdas: Sequence[float]) -> list[BanditEstimator]:
    """The seven estimators, with Switch-DR's :math:`\\tau` chosen among ``taus`` and DRos's
    :math:`\\lambda` among ``lambdas`` by estimated MSE on ``inputs`` (:func:`tune_by_mse`)."""
    return [
        DirectMethod(),
        IPS(),
        SNIPS(),
        DoublyRobust(),
        SelfNormalizedDR(),
        tune_by_mse([SwitchDR(t) for t in taus], inputs),
        tune_by_mse([DRos(lam) for lam in lambdas], inputs),
    ]


def fit_influence(inputs: BanditInputs, terms: Terms) -> np.ndarray:
    """The fit influence :math:`\\psi` ``(n,)`` of an estimator's dependence on the reward
    model, :math:`\\frac1n \\sum_i \\hat q^{\\pi}_i - \\sum_i \\hat w_i \\hat q_i / \\sum_i d_i`
    (module docstring); zeros when the estimator does not use the model or the model was
    given as a plain array (held fixed)."""
    if inputs.fit is None or inputs.policy_influence is None or terms.residual_weight is None:
        return np.zeros(inputs.n)
    if not terms.residual_weight.any():
        return inputs.policy_influence
    return inputs.policy_influence + inputs.fit.influence(None, -terms.residual_weight / terms.den.sum())


def tune_by_mse(candidates: Sequence[BanditEstimator], inputs: BanditInputs) -> BanditEstimator:
    """Pick the candidate with the smallest estimated MSE:
    :math:`(\\hat V_c - \\hat V_{DR})^2 + \\widehat{\\mathrm{Var}}(\\text{terms}_c) / n`, with
    DR (unbiased under correct propensities) as the bias reference -- the "mse" tuning of obp
    in its simplest form. The per-round terms include :math:`n \\psi_i` (:func:`fit_influence`)
    when the reward model was given as a fit."""
    if not candidates:
        raise ValueError("candidates is empty")
    reference = DoublyRobust().terms(inputs).value()
    best, best_score = candidates[0], np.inf
    for candidate in candidates:
        t = candidate._checked_terms(inputs)
        per_round = t.base + t.num * inputs.n / max(t.den.sum(), 1e-300) + inputs.n * fit_influence(inputs, t)
        score = (t.value() - reference) ** 2 + per_round.var(ddof=1) / inputs.n
        if score < best_score:
            best, best_score = candidate, score
    return best


def evaluate_bandit(
    estimators: Sequence[BanditEstimator],
    inputs: BanditInputs,
    *,
    alpha: float = 0.05,
    n_bootstrap: int = 200,
    seed: int = 0,
    value_range: float | None = None,
) -> dict[str, Interval]:
    """Estimates with intervals for several estimators, from **one** set of resamples.

    Each estimator's per-round terms are computed once and summed per unit; the distinct
    unit sums (shared arrays such as :math:`\\hat q^{\\pi}` and the constant ``den`` of the
    non-self-normalized estimators enter once) are stacked into one matrix ``S`` and every
    resample's counts :math:`c` are applied to all of them at once
    (:func:`retentionrl.evaluation.intervals.resampled_sums`, in chunks: the ``(B, units)`` count matrix
    is never held whole). A resample's estimate is
    :math:`\\sum c B / \\sum c N + \\sum c U / \\sum c D` (B, U, D the unit sums of the terms,
    N the unit's round count), plus :math:`\\sum_u c_u (\\Psi_u - \\bar\\Psi)` for the unit sums
    :math:`\\Psi_u` of the fit influence (:func:`fit_influence`; zero when the model is held
    fixed). Non-self-normalized estimators also get the empirical-Bernstein lower bound over
    unit values :math:`(B_u + U_u) / \\bar N + N_{units} (\\Psi_u - \\bar\\Psi)` (whose mean is the
    estimate); ``value_range`` is their known range, else the observed one.
    """
    names = [e.name for e in estimators]
    if len(set(names)) != len(names):
        raise ValueError(f"estimator names must be unique, got {names}")
    n_units = inputs.n_units
    identity = n_units == inputs.n and bool((inputs.unit == np.arange(inputs.n)).all())

    def sums(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) if identity else unit_sums(x, inputs.unit, n_units)

    columns: list[np.ndarray] = [np.ones(n_units) if identity else unit_sums(np.ones(inputs.n), inputs.unit, n_units)]
    index: dict[int, int] = {}

    def column(x: np.ndarray, constant_one: bool = False) -> int:
        if constant_one:
            return 0  # D_u = N_u when every d_i is 1
        key = -1 if not x.any() else id(x)  # all zero columns share one
        if key not in index:
            index[key] = len(columns)
            columns.append(sums(x))
        return index[key]

    plan = []
    for est in estimators:
        t = est._checked_terms(inputs)
        den_one = not t.self_normalized and bool((t.den == 1.0).all())
        psi = fit_influence(inputs, t) if inputs.fit is not None else None  # in the plan: column() keys by id
        plan.append(
            (est, t, psi, column(t.base), column(t.num), column(t.den, den_one), None if psi is None else column(psi))
        )
    stats = np.column_stack(columns)
    resampled_all = resampled_sums(stats, n_bootstrap, seed)
    size = columns[0]
    out: dict[str, Interval] = {}
    for est, t, _, jb, ju, jd, jf in plan:
        with np.errstate(divide="ignore", invalid="ignore"):
            resampled = resampled_all[:, jb] / resampled_all[:, 0] + resampled_all[:, ju] / resampled_all[:, jd]
        if jf is not None:
            resampled += resampled_all[:, jf] - stats[:, jf].sum()
        lower = float("nan")
        if not t.self_normalized and n_units >= 2:
            unit_values = (stats[:, jb] + stats[:, ju]) / size.mean()
            if jf is not None:
                unit_values += n_units * (stats[:, jf] - stats[:, jf].mean())
            lower = empirical_bernstein_lower(unit_values, alpha, value_range)
        out[est.name] = percentile_interval(t.value(), resampled, alpha, lower)
    return out
