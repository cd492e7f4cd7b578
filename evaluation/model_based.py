"""Model-based trajectory estimates: the learned simulator as the model of whole lifetimes.

Importance weighting over a shopper's lifetime fails for a policy far from the logging
one: the product of per-visit ratios is 0 for almost every lifetime. The learned
simulator is a model of the whole lifetime, so it can stand in where the weights vanish.
For held-out lifetime :math:`i` with logged visits :math:`t = 0 .. T_i - 1` (states
:math:`s_{it}`, the visit's history; actions :math:`a_{it}`, logged propensities
:math:`p_{it}`; reward :math:`r_{it} = 1` if the shopper comes back inside the window),
a simulator :math:`k` gives, by rollouts started from the *logged* history (teacher
forcing, :meth:`retentionrl.simulators.learned.simulator.LearnedSimulator.observe`):

.. math::

    \\hat Q_k(s_{it}, a_{it}) = E_k[\\textstyle\\sum_{t' \\ge t} r_{it'} \\mid s_{it}, a_{it}, \\text{then } \\pi],
    \\qquad \\hat V_k(s_{it}) = E_k[\\textstyle\\sum_{t' \\ge t} r_{it'} \\mid s_{it}, \\pi]

(each the mean of ``rollouts`` simulated continuations; the return visits they count stop
where the logged one stops: at the window :math:`H` or, for a lifetime the log's end cuts
short, at that end). With :math:`w_{it} = \\prod_{t' \\le t} \\pi(a_{it'} \\mid s_{it'}) / p_{it'}`:

=============  ===========================================================================
estimator      per lifetime, member :math:`k`
=============  ===========================================================================
``sim-dm``     :math:`\\hat V_k(s_{i0})`: the simulator alone (direct method)
``sim-dr``     :math:`\\sum_t [w_{it} (r_{it} - \\hat Q_k(s_{it}, a_{it})) + w_{i,t-1} \\hat V_k(s_{it})]`
               (per-decision doubly robust, Jiang & Li 2016, with the simulator as its model)
``sim-magic``  :math:`\\sum_j x_j g^{(j)}_i`, MAGIC's blend (Thomas & Brunskill 2016) of the
               :math:`j`-step returns :math:`g^{(j)}_i = \\hat V_k(s_{i0}) + \\sum_{t \\le j} w_{it}
               (r_{it} + \\hat V_k(s_{i,t+1}) - \\hat Q_k(s_{it}, a_{it}))`, :math:`j = -1`
               (``sim-dm``) to :math:`T - 1` (``sim-dr``); :math:`x` on the simplex minimises
               :math:`x^\\top (\\Omega + b b^\\top) x`, :math:`\\Omega` the covariance of the
               :math:`\\bar g^{(j)}` over lifetimes and :math:`b_j` the distance of
               :math:`\\bar g^{(j)}` from ``sim-dr``'s bootstrap interval (its bias as far as
               the logs can tell)
=============  ===========================================================================

``sim-dr`` is unbiased for any simulator when the propensities are exact; where the
weights survive (policies close to the logging one) the logged rewards correct the
simulator, where they vanish (far policies) it reads the simulator's value, corrected
at the first visits by what the shopper did -- but a far policy's few surviving weights
are huge, so its variance explodes. ``sim-magic`` (the default) trades the two: it leans on
the logged returns where their weights are stable and on the simulator where they are
not. Where the weights vanish every one of them is biased by the simulator's errors:
there their honesty rests on the simulator.

**Intervals** (Hanna, Stone & Niekum 2017, "Bootstrapping with models"): a model-based
estimate varies with the held-out lifetimes *and* with the logs the model was fitted on.
The members of a bootstrap ensemble (:mod:`retentionrl.simulators.learned.ensemble`: each fitted
on a resample of the training shoppers) stand for the second: the spread of their
estimates is the bootstrap standard error of a fitted model's estimate. The estimate is
the members' mean :math:`\\hat\\theta`; the interval adds the two variances,

.. math::

    \\hat\\theta \\pm t_{1 - \\alpha/2,\\, P(K - 1)} \\sqrt{(1 + 1/K)\\, \\bar r\\, \\hat\\theta^2 + s^2_{\\text{lifetimes}} / N},

with :math:`s^2_{\\text{lifetimes}}` the variance over held-out lifetimes of their member-averaged
values and :math:`\\bar r` the members' variance relative to :math:`\\hat\\theta^2`, pooled over the
:math:`P` policies estimated together (so :math:`P(K - 1)` degrees of freedom: members are few,
and a normal quantile on a 3-member spread undercovers); :math:`1 + 1/K` because the
full fit misses the truth by about one bootstrap standard error and the members' mean
misses the full fit by :math:`1/\\sqrt K` of one. Pooling assumes the fitting noise
is proportional to a policy's value alike for every policy. Why this rule: the percentile
interval of resampled lifetimes with a random member per resample covered world truth
in only 69-75% of 16 development seeds (``experiments/model_based_truth.py``), too narrow
by about 1.5x; this one was then checked on 30 fresh seeds (README). One simulator gives
the held-out part only, which leaves out the model's uncertainty; the result says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm
from scipy.stats import t as student_t
from tqdm.auto import tqdm

from retentionrl.core.checks import require_int
from retentionrl.core.interval import Interval
from retentionrl.core.policy import Policy
from retentionrl.evaluation._checks import alpha_level
from retentionrl.evaluation.intervals import percentile_interval, resampled_sums
from retentionrl.evaluation.trajectory import TrajectoryInputs
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.simulators.learned.simulator import LearnedSimulator

ESTIMATORS: tuple[str, ...] = ("sim-dm", "sim-dr", "sim-magic")
ROLLOUTS = 8
"""Simulated continuations per logged visit for each of :math:`\\hat Q` and :math:`\\hat V`:
their Monte-Carlo noise is part of each lifetime's value, so the bootstrap over lifetimes
counts it; 8 keeps it well below the spread between shoppers (tests/test_model_based.py)."""


@dataclass(frozen=True)
class Lifetimes:
    """Held-out lifetimes on right-padded ``(N, T)`` grids (visit :math:`t` of lifetime :math:`i`
    at ``[i, t]``; ``mask`` marks real visits). Build with :meth:`from_decisions`.

    :param cutoff: ``(N,)`` days from the first visit after which returns are not counted:
        the window :math:`H`, or the days to the log's end when that comes first.
    :param gap: days from each visit to the next (known for every visit but the last).
    """

    trajectory_ids: np.ndarray
    mask: np.ndarray
    obs: np.ndarray
    action: np.ndarray
    propensity: np.ndarray
    reward: np.ndarray
    click: np.ndarray
    purchase: np.ndarray
    redeemed: np.ndarray
    spend: np.ndarray
    gap: np.ndarray
    cutoff: np.ndarray

    @property
    def n(self) -> int:
        """Number of lifetimes."""
        return int(self.mask.shape[0])

    @property
    def length(self) -> np.ndarray:
        """Visits of each lifetime, ``(N,)``."""
        return self.mask.sum(axis=1)

    @classmethod
    def from_decisions(cls, decisions: LoggedDecisions, horizon_days: float) -> Lifetimes:
        """The in-window visits of ``decisions`` (:attr:`LoggedDecisions.in_window`) by lifetime.

        :raises ValueError: an in-window visit has no logged action or no propensity (the
            estimators need both at every visit of a lifetime).
        """
        d = decisions.take(decisions.in_window)
        if d.n == 0:
            raise ValueError("no visit lies in the retention window: nothing to estimate")
        if not d.logged.all():
            raise ValueError(
                f"{int((~d.logged).sum())} visits in the window have no logged action (impression); "
                "model-based trajectory estimates need the action at every visit"
            )
        if np.isnan(d.propensity).any():
            raise ValueError(
                f"{int(np.isnan(d.propensity).sum())} logged visits have no propensity; "
                "estimate them with a logging-policy clone and pass the decisions with them"
            )
        ids, row = np.unique(d.trajectory_id, return_inverse=True)
        step = d.visit_index.astype(np.int64)
        lengths = np.bincount(row, minlength=ids.size)
        if (step >= lengths[row]).any():
            raise ValueError("the visits in the window of a lifetime must be its visits 0 .. T - 1")
        shape = (ids.size, int(lengths.max()))

        def grid(values: np.ndarray, fill: float = 0.0) -> np.ndarray:
            out = np.full(shape + values.shape[1:], fill, dtype=np.float64)
            out[row, step] = values
            return out

        mask = np.zeros(shape, dtype=bool)
        mask[row, step] = True
        first = step == 0
        cutoff = np.full(ids.size, float(horizon_days))
        cutoff[row[first]] = np.minimum(float(horizon_days), d.observed_days[first])
        return cls(
            trajectory_ids=ids,
            mask=mask,
            obs=grid(np.asarray(d.obs, dtype=np.float64)),
            action=grid(d.action).astype(np.int64),
            propensity=grid(d.propensity, 1.0),
            reward=grid(d.returned.astype(np.float64)),
            click=grid(d.click.astype(np.float64)),
            purchase=grid(d.purchase.astype(np.float64)),
            redeemed=grid(d.redeemed.astype(np.float64)),
            spend=grid(d.spend),
            gap=grid(d.next_visit_days, np.nan),
            cutoff=cutoff,
        )

    def target_probs(self, policy: Policy) -> np.ndarray:
        """:math:`\\pi(a_{it} \\mid s_{it})` on the grid (1 past each lifetime's end)."""
        probs = np.ones(self.mask.shape)
        i, t = np.nonzero(self.mask)
        chosen = policy.action_probs(self.obs[i, t])[np.arange(i.size), self.action[i, t]]
        probs[i, t] = chosen
        return probs

    def inputs(self, target_prob: np.ndarray, q: np.ndarray, v: np.ndarray) -> TrajectoryInputs:
        """The trajectory estimators' padded inputs: the target's probabilities of the logged
        actions (:meth:`target_probs`) and the model ``q``, ``v``, all ``(N, T)``."""
        ratio = np.where(self.mask, target_prob / self.propensity, 1.0)
        return TrajectoryInputs(self.reward, ratio, self.mask, q, v, 1.0, self.trajectory_ids)


def simulated_q(
    simulator: LearnedSimulator,
    policy: Policy,
    lifetimes: Lifetimes,
    *,
    rollouts: int = ROLLOUTS,
    seed: int = 0,
    max_batch: int = 1 << 15,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """:math:`\\hat Q(s_{it}, a_{it})` and :math:`\\hat V(s_{it})` of ``policy`` in ``simulator``
    at every logged visit, ``(N, T)`` each (0 past a lifetime's end); see the module docstring.

    For each visit index :math:`t`, the lifetimes that reach it are replayed ``2 rollouts``
    times through their first :math:`t` logged visits (outcomes and gaps as logged), then
    half continue from the logged action :math:`a_{it}` and half from an action of ``policy``,
    and all follow ``policy`` until they churn or pass their cutoff.

    :param max_batch: most simulated shoppers stepped at once.
    """
    rollouts = require_int("rollouts", rollouts, 1)
    require_int("max_batch", max_batch, 2 * rollouts)
    if simulator.action_space != policy.action_space:
        raise ValueError(f"policy {policy.name!r} acts in another action space than the simulator")
    n, t_max = lifetimes.mask.shape
    q = np.zeros((n, t_max))
    v = np.zeros((n, t_max))
    per_chunk = max(1, max_batch // (2 * rollouts))
    jobs = [
        (t, rows[start : start + per_chunk])
        for t in range(t_max)
        for rows in [np.flatnonzero(lifetimes.mask[:, t])]
        for start in range(0, rows.size, per_chunk)
    ]
    seeds = np.random.SeedSequence(seed).spawn(len(jobs))
    for (t, rows), job_seed in tqdm(
        list(zip(jobs, seeds)), desc=f"simulator Q of {policy.name}", unit="batch", disable=not progress
    ):
        counts = _continuations(simulator, policy, lifetimes, t, np.tile(rows, 2 * rollouts), job_seed)
        counts = counts.reshape(2 * rollouts, rows.size)
        q[rows, t] = counts[:rollouts].mean(axis=0)
        v[rows, t] = counts[rollouts:].mean(axis=0)
    return q, v


def _continuations(
    sim: LearnedSimulator, policy: Policy, life: Lifetimes, t: int, rows: np.ndarray, seed: np.random.SeedSequence
) -> np.ndarray:
    """Return visits counted from visit ``t`` of lifetimes ``rows`` (the first half of ``rows``
    starting from the logged action, the second from ``policy``'s), one continuation each."""
    sim_seed, policy_seed = seed.spawn(2)
    rng = np.random.default_rng(policy_seed)
    obs = sim.reset(rows.size, seed=int(sim_seed.generate_state(1)[0]))
    for u in range(t):
        outcome = SimpleNamespace(
            click=life.click[rows, u],
            purchase=life.purchase[rows, u],
            redeemed=life.redeemed[rows, u],
            spend=life.spend[rows, u],
        )
        obs, _ = sim.observe(life.action[rows, u], outcome, life.gap[rows, u])
    logged_first = np.arange(rows.size) < rows.size // 2
    first = np.where(logged_first, life.action[rows, t], policy.act(obs, rng))
    cutoff = life.cutoff[rows]
    counts = np.zeros(rows.size)
    live = np.arange(rows.size)  # the batch shrinks to the shoppers still inside their window
    obs, out = sim.step(first)
    while live.size:
        alive = ~out.churned & (sim.days < cutoff[live])
        live = live[alive]
        counts[live] += 1.0
        if not live.size:
            break
        obs = sim.keep_rows(alive)
        obs, out = sim.step(policy.act(obs, rng))
    return counts


def step_returns(inputs: TrajectoryInputs) -> np.ndarray:
    """The :math:`j`-step returns :math:`g^{(j)}_i`, ``(N, T + 1)`` for :math:`j = -1 .. T - 1`
    (module docstring): column 0 is the direct method, the last column per-decision DR."""
    w = inputs.cum_weight
    v_next = np.hstack([inputs.v_policy[:, 1:], np.zeros((w.shape[0], 1))])
    residual = np.where(inputs.mask, w * (inputs.reward + v_next - inputs.q_factual), 0.0)
    return inputs.v_policy[:, :1] + np.hstack([np.zeros((w.shape[0], 1)), np.cumsum(residual, axis=1)])


def magic_weights(g: np.ndarray, *, alpha: float = 0.05, n_bootstrap: int = 200, seed: int = 0) -> np.ndarray:
    """MAGIC's blend :math:`x` of the step returns ``g`` ``(N, J)`` (module docstring): the point
    of the simplex minimising :math:`x^\\top (\\Omega + b b^\\top) x`."""
    n, j = g.shape
    if n < 2 or j == 1:
        return np.full(j, 1.0 / j)
    means = g.mean(axis=0)
    dr = percentile_interval(means[-1], resampled_sums(g[:, -1:], n_bootstrap, seed)[:, 0] / n, alpha)
    bias = np.maximum(0.0, np.maximum(dr.low - means, means - dr.high))
    error = np.cov(g, rowvar=False) / n + np.outer(bias, bias)
    scale = float(np.abs(error).max()) or 1.0
    error = error / scale  # the optimiser's tolerances are absolute
    start = np.zeros(j)
    start[int(np.argmin(np.diag(error)))] = 1.0
    result = minimize(
        lambda x: float(x @ error @ x),
        start,
        jac=lambda x: 2.0 * error @ x,
        bounds=[(0.0, 1.0)] * j,
        constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones_like(x)}],
        method="SLSQP",
    )
    x = np.clip(result.x if result.success else start, 0.0, None)
    return x / x.sum()


@dataclass(frozen=True)
class ModelBasedEstimate:
    """The model-based estimates of one policy: per estimator the interval over held-out
    lifetimes and members, and each member's own estimate (their spread is the model's
    uncertainty)."""

    policy: str
    intervals: dict[str, Interval]
    members: dict[str, list[float]]
    n_lifetimes: int
    notes: list[str] = field(default_factory=list)


def model_based_estimates(
    members: Sequence[LearnedSimulator],
    policies: Mapping[str, Policy],
    lifetimes: Lifetimes,
    *,
    rollouts: int = ROLLOUTS,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, ModelBasedEstimate]:
    """``sim-dm``, ``sim-dr`` and ``sim-magic`` of each policy from ``members`` (the module docstring).

    :param members: simulators fitted on logs other than the held-out ones (a bootstrap
        ensemble's members; one simulator gives an interval over the lifetimes only).
    :param progress: a progress bar over (policy, member) pairs.
    """
    if not members:
        raise ValueError("model-based estimates need at least one simulator")
    alpha = alpha_level(alpha)
    bar = tqdm(total=len(policies) * len(members), desc="model-based estimates", unit="fit", disable=not progress)
    values: dict[str, np.ndarray] = {}  # (K, N, 3): sim-dm, sim-dr, sim-magic per member and lifetime
    for p_index, (name, policy) in enumerate(policies.items()):
        per_member = []
        for k, sim in enumerate(members):
            bar.set_postfix_str(f"{name}, simulator {k + 1} of {len(members)}")
            q, v = simulated_q(sim, policy, lifetimes, rollouts=rollouts, seed=seed + 1_000 * k + 7 * p_index)
            bar.update()
            g = step_returns(lifetimes.inputs(lifetimes.target_probs(policy), q, v))
            blend = magic_weights(g, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)
            per_member.append(np.stack([g[:, 0], g[:, -1], g @ blend], axis=1))
        values[name] = np.stack(per_member)
    bar.close()
    k_members = len(members)
    notes = (
        ["one simulator: the interval leaves out the model's own uncertainty (fit an ensemble)"]
        if k_members == 1
        else []
    )
    intervals = model_intervals(values, alpha)
    return {
        name: ModelBasedEstimate(
            name,
            intervals[name],
            {est: [float(m) for m in v.mean(axis=1)[:, e]] for e, est in enumerate(ESTIMATORS)},
            lifetimes.n,
            list(notes),
        )
        for name, v in values.items()
    }


def model_intervals(values: Mapping[str, np.ndarray], alpha: float = 0.05) -> dict[str, dict[str, Interval]]:
    """Each policy's estimates and intervals from its per-member, per-lifetime values
    ``(K, N, len(ESTIMATORS))`` (module docstring, "Intervals"): the estimate is the members'
    mean :math:`\\hat\\theta`, the half-width :math:`t_{1 - \\alpha/2,\\, P(K-1)}
    \\sqrt{(1 + 1/K)\\, \\bar r\\, \\hat\\theta^2 + s^2_{\\text{lifetimes}} / N}` with :math:`\\bar r` the
    members' relative variance pooled over the :math:`P` policies (``z`` and no member term
    for :math:`K = 1`)."""
    k, n, n_est = next(iter(values.values())).shape
    member_means = {name: v.mean(axis=1) for name, v in values.items()}  # (K, 3)
    estimates = {name: m.mean(axis=0) for name, m in member_means.items()}
    if k > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.stack(
                [np.nan_to_num(m.var(axis=0, ddof=1) / estimates[name] ** 2) for name, m in member_means.items()]
            )
        pooled, q = relative.mean(axis=0), float(student_t.ppf(1 - alpha / 2, len(values) * (k - 1)))
    else:
        pooled, q = np.zeros(n_est), float(norm.ppf(1 - alpha / 2))
    out: dict[str, dict[str, Interval]] = {}
    for name, v in values.items():
        theta = estimates[name]
        lifetime_var = v.mean(axis=0).var(axis=0, ddof=1) / n if n > 1 else np.full(n_est, np.nan)
        half = q * np.sqrt(pooled * (1 + 1 / k) * theta**2 + lifetime_var)
        out[name] = {
            est: Interval(float(theta[e]), float(theta[e] - half[e]), float(theta[e] + half[e]), alpha=alpha)
            for e, est in enumerate(ESTIMATORS)
        }
    return out


def estimate_on_decisions(
    members: Sequence[LearnedSimulator],
    policies: Mapping[str, Policy],
    decisions: LoggedDecisions,
    horizon_days: float,
    *,
    propensity: np.ndarray | None = None,
    rollouts: int = ROLLOUTS,
    n_bootstrap: int = 200,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, ModelBasedEstimate]:
    """:func:`model_based_estimates` on logged ``decisions`` (their in-window lifetimes).

    :param propensity: per decision, the probability of the logged action to use where the
        log holds none (a logging-policy clone's, as the other estimators use); ``None``: the logged ones.
    :raises ValueError: as :meth:`Lifetimes.from_decisions`.
    """
    if propensity is not None:
        decisions = dataclasses.replace(
            decisions, propensity=np.where(decisions.logged, np.asarray(propensity, dtype=np.float64), np.nan)
        )
    lifetimes = Lifetimes.from_decisions(decisions, horizon_days)
    return model_based_estimates(
        members, policies, lifetimes, rollouts=rollouts, n_bootstrap=n_bootstrap, seed=seed, progress=progress
    )
