"""Certified policy improvement: a high-confidence lower bound from held-out logs alone.

A shop deploys a policy :math:`\\pi` only when its logs say, with confidence
:math:`1 - \\delta`, that it does at least as well as the logging policy :math:`\\pi_b`
(high-confidence off-policy evaluation, HCOPE: Thomas, Theocharous & Ghavamzadeh 2015).
Each held-out shopper's lifetime :math:`i` (visits :math:`t`, logged propensities
:math:`p_{it} = \\pi_b(a_{it} \\mid s_{it})`) gives one independent value:

.. math::

    G_i = \\sum_t r_{it}, \\qquad
    \\rho_{it} = \\frac{\\pi(a_{it} \\mid s_{it})}{p_{it}}, \\qquad
    w_{it} = \\prod_{t' \\le t} \\rho_{it'}, \\qquad
    D_i = \\sum_t \\min(w_{it}, c)\\, r_{it} - G_i

with :math:`r` the return-visit indicator (metric ``return_visits``) or the visit's profit
(``profit``). The reward at visit :math:`t` depends only on the actions up to :math:`t`,
so :math:`E[\\sum_t w_{it} r_{it}] = V(\\pi)` (per-decision importance sampling, Precup et
al. 2000) and :math:`E[G_i] = V(\\pi_b)`; :math:`E[D_i] \\le V(\\pi) - V(\\pi_b)` whenever
every :math:`r_{it} \\ge 0` (clipping at :math:`c` only removes mass), so a lower bound on
:math:`E[D_i]` is a lower bound on the improvement. :math:`D_i \\in [-G_i, (c - 1) G_i]`.

==============  ===========================================================================
method          lower bound on :math:`E[D]` and what it assumes
==============  ===========================================================================
``bernstein``   Maurer & Pontil's empirical Bernstein bound with range :math:`b = c\\,
(default)       \\max_i G_i` (:func:`retentionrl.evaluation.intervals.empirical_bernstein_lower`): holds
                with probability :math:`\\ge 1 - \\delta` for independent lifetimes, exact
                logged propensities, every :math:`r_{it} \\ge 0` and :math:`G \\le \\max_i G_i`
                (the observed largest lifetime value stands in for the true range)
``bootstrap``   the :math:`\\delta` quantile of the mean of :math:`D` over resamples of
                lifetimes: approximate (HCPI's bootstrap variant, Thomas et al. 2015b), often
                tighter, no finite-sample guarantee
==============  ===========================================================================

**Candidates a certificate can cover.** A policy far from :math:`\\pi_b` has weights
:math:`W_i` that are zero for almost every lifetime, and no bound certifies it. The mixture
:math:`\\pi_\\alpha = (1 - \\alpha)\\pi + \\alpha \\pi_b` (with probability :math:`\\alpha`
the shop keeps its current decision) has per-visit ratios
:math:`(1 - \\alpha)\\pi(a \\mid s) / p + \\alpha \\ge \\alpha`, computable from the logged
propensities alone. :func:`certify` chooses :math:`\\alpha` and the clip :math:`c` on
*validation* lifetimes and computes the certificate on others, never on the lifetimes it
chose them with: on separate validation logs where given (the pipeline passes its train
split, so the certificate uses every held-out lifetime), else on a random half of the
certification logs. The pair chosen is the one with the best *predicted* bound, the bound
the validation lifetimes would give with as many lifetimes as the certificate will have
(HCPI's candidate selection, Thomas et al. 2015b): the validation estimate less its bound's
width scaled by :math:`\\sqrt{n_{val} / n_{cert}}`. Without the scaling, 16,000 validation
lifetimes would choose a policy further from :math:`\\pi_b` than 4,000 can certify. With
several candidate policies (:func:`certify_best`) the policy is chosen the same way, with its
mix and clip, and only the chosen one is certified, so the confidence stays
:math:`1 - \\delta` however many were tried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from retentionrl.evaluation._checks import alpha_level
from retentionrl.evaluation.diagnostics import effective_sample_size
from retentionrl.evaluation.intervals import empirical_bernstein_lower, resampled_sums
from retentionrl.evaluation.runner import LoggedSteps

METRICS: tuple[str, ...] = ("return_visits", "profit")
METHODS: tuple[str, ...] = ("bernstein", "bootstrap")
MIXES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
"""Shares :math:`\\alpha` of the logging policy tried on the validation lifetimes."""
CLIPS: tuple[float, ...] = (2.0, 5.0, 10.0, 50.0)
"""Clips :math:`c` of the lifetime weights tried on the validation lifetimes."""


@dataclass(frozen=True)
class Certificate:
    """The verdict on one policy against the logging policy (JSON-ready with :meth:`to_dict`).

    :param estimate: the mean of :math:`D` on the certification lifetimes: the clipped
        importance-weighted improvement per lifetime.
    :param lower_bound: its high-confidence lower bound (``method``, ``confidence``).
    :param baseline_value: the logging policy's value per lifetime there (mean of :math:`G`).
    :param mix: :math:`\\alpha`, the logging policy's share in the certified policy.
    :param n: lifetimes the certificate is computed on; ``ess`` their weights' Kish ESS.
    :param validation: how ``mix`` and ``clip`` were chosen: ``lifetimes`` (the validation
        lifetimes), ``separate`` (1: separate validation logs; 0: a half of these),
        ``predicted_lower_bound`` (module docstring) and ``candidates`` (how many policies
        :func:`certify_best` chose among); empty where nothing was chosen.
    :param lifetimes_needed: where not certified with an estimate above 0, about how many
        certification lifetimes would certify it at this estimate (:func:`lifetimes_needed`);
        None otherwise.
    """

    policy: str
    baseline: str
    metric: str
    method: str
    confidence: float
    mix: float
    clip: float
    n: int
    ess: float
    estimate: float
    lower_bound: float
    baseline_value: float
    verdict: str
    reason: str
    assumptions: list[str] = field(default_factory=list)
    validation: dict[str, float] = field(default_factory=dict)
    lifetimes_needed: int | None = None

    def headline(self) -> str:
        """One line: the verdict and its numbers."""
        among = int(self.validation.get("candidates", 1))
        chosen = (
            f"; {f'the policy (of {among} candidates), ' if among > 1 else ''}mix and clip chosen on "
            f"{self.validation['lifetimes']:,.0f} lifetimes of "
            f"{'separate logs' if self.validation.get('separate') else 'the other half'}"
            if self.validation
            else ""
        )
        who = self.policy if self.mix == 0 else f"{self.policy} mixed with the logging policy (alpha = {self.mix:g})"
        return (
            f"{self.verdict}: {who} vs {self.baseline}, {self.metric} per lifetime: improvement "
            f"{self.estimate:+.3f}, {self.confidence:.0%} lower bound {self.lower_bound:+.3f} ({self.method}, "
            f"n = {self.n:,}, ESS {self.ess:.1f}{chosen}){'' if self.verdict == 'improves' else ': ' + self.reason}"
        )

    def to_dict(self) -> dict[str, object]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def lifetimes(
    steps: LoggedSteps, target_taken: np.ndarray, metric: str, mix: float, clip: float = np.inf
) -> tuple[np.ndarray, np.ndarray]:
    """Per lifetime (in the order of their sorted ids): the clipped importance-weighted value
    :math:`\\sum_t \\min(w_{it}, c)\\, r_{it}` of the mixture :math:`\\pi_\\alpha` and the
    logged value :math:`G_i` (module docstring).

    :param target_taken: :math:`\\pi(a_{it} \\mid s_{it})` of the target at each logged step.
    """
    return _StepWeights(steps, target_taken, metric, mix).lifetimes(clip)


class _StepWeights:
    """The per-decision weights :math:`w_{it}` of one target and mixture, and each step's
    value, in lifetime order: computed once, then clipped at any :math:`c`."""

    def __init__(self, steps: LoggedSteps, target_taken: np.ndarray, metric: str, mix: float) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {mix!r}")
        unit, log_ratio = _log_ratios(steps, target_taken, mix)
        self.n = int(unit.max()) + 1 if unit.size else 0
        order = np.lexsort((steps.step, unit))
        u, log_ratio = unit[order], log_ratio[order]
        # w_it = prod_{t' <= t} rho: a running product restarted at each lifetime, in logs (0 stays 0)
        cum = np.cumsum(np.where(np.isfinite(log_ratio), log_ratio, 0.0))
        first = np.r_[True, u[1:] != u[:-1]]
        start = np.flatnonzero(first)[np.cumsum(first) - 1]
        cum -= np.r_[0.0, cum][start]
        dead = np.maximum.accumulate(np.where(~np.isfinite(log_ratio), np.arange(u.size), -1))
        self.unit, self.weight = u, np.where(dead >= start, 0.0, np.exp(np.minimum(cum, 700.0)))
        self.reward = (steps.trajectory_reward if metric == "return_visits" else steps.bandit_reward)[order]
        self.value = np.bincount(u, weights=self.reward, minlength=self.n)

    def lifetimes(self, clip: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
        """:func:`lifetimes` at clip ``clip``."""
        weighted = np.bincount(self.unit, weights=np.minimum(self.weight, clip) * self.reward, minlength=self.n)
        return weighted, self.value


def improvement_bound(
    weighted: np.ndarray,
    value: np.ndarray,
    clip: float,
    confidence: float,
    method: str,
    seed: int = 0,
    n_bootstrap: int = 1000,
) -> tuple[float, float]:
    """The mean of :math:`D = \\sum_t \\min(w_t, c) r_t - G` (``weighted - value``, from
    :func:`lifetimes` with the same ``clip``) and its lower bound (module docstring)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if not clip >= 1.0:
        raise ValueError(f"clip must be >= 1, got {clip!r}")
    delta = alpha_level(1.0 - confidence)
    d = weighted - value
    if method == "bernstein":
        return float(d.mean()), empirical_bernstein_lower(d, delta, value_range=clip * float(np.max(np.abs(value))))
    means = resampled_sums(d[:, None], n_bootstrap, seed)[:, 0] / d.size
    return float(d.mean()), float(np.quantile(means, delta))


def predicted_bound(
    weighted: np.ndarray, value: np.ndarray, clip: float, confidence: float, method: str, n: int, seed: int = 0
) -> float:
    """The lower bound validation lifetimes predict for a certificate on ``n`` lifetimes: their
    estimate less their bound's width times :math:`\\sqrt{n_{val} / n}` (a width shrinks as
    :math:`1 / \\sqrt{n}`; the Bernstein bound's range term shrinks faster, so for it the
    prediction errs low when ``n`` is the larger)."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n!r}")
    estimate, lower = improvement_bound(weighted, value, clip, confidence, method, seed)
    return float(estimate - (estimate - lower) * np.sqrt(weighted.size / n))


def lifetimes_needed(estimate: float, lower: float, n: int) -> int | None:
    """About how many certification lifetimes would put the lower bound above 0 if the
    estimate and the spread of :math:`D` stayed as they are on ``n``: the bound's width
    :math:`e - l` shrinks as :math:`1 / \\sqrt{n}` (as :func:`predicted_bound` assumes), so it
    clears 0 beyond :math:`n (e - l)^2 / e^2` lifetimes. A planning figure, like an A/B test's
    sample size: the estimate is itself uncertain, and the Bernstein bound's range term shrinks
    as :math:`1 / n`, so for it the figure errs high.

    :returns: None where the bound is already above 0, or where the estimate is not (no number
        of lifetimes certifies a policy estimated no better than logging).
    """
    if lower > 0 or not estimate > 0:
        return None
    count = n * ((estimate - lower) / estimate) ** 2
    return int(np.floor(count)) + 1 if np.isfinite(count) else None


def certify(
    steps: LoggedSteps,
    target_taken: np.ndarray,
    *,
    policy: str,
    validation: tuple[LoggedSteps, np.ndarray] | None = None,
    **options: Any,
) -> Certificate:
    """The certificate of ``policy`` (its probabilities of the logged actions,
    ``target_taken``) against the logging policy on ``steps``: :func:`certify_best` with one
    candidate, whose ``options`` it takes (``metric``, ``confidence``, ``method``, ``mix``,
    ``clip``, ``seed``).

    :param validation: separate validation logs and the policy's probabilities of their
        logged actions (lifetimes disjoint from ``steps``, e.g. the train split): the mix and
        the clip are chosen there and the certificate uses every lifetime of ``steps``.
        None: they are chosen on a seeded random half of ``steps``, certified on the other.
    """
    return certify_best(
        steps,
        {policy: target_taken},
        validation=None if validation is None else (validation[0], {policy: validation[1]}),
        **options,
    )


def certify_best(
    steps: LoggedSteps,
    candidates: Mapping[str, np.ndarray],
    *,
    metric: str = "return_visits",
    confidence: float = 0.95,
    method: str = "bernstein",
    mix: float | None = None,
    clip: float | None = None,
    seed: int = 0,
    validation: tuple[LoggedSteps, Mapping[str, np.ndarray]] | None = None,
) -> Certificate:
    """The certificate of the best of several ``candidates`` (name: its probabilities of the
    logged actions of ``steps``) against the logging policy, with one bound.

    The candidate is chosen together with the mix and the clip, by the same predicted bound
    on the same validation lifetimes (module docstring), and only the chosen triple is
    certified: a bound per candidate at confidence :math:`1 - \\delta` each would certify a
    worse-than-logging policy with probability up to :math:`K \\delta` among :math:`K`
    candidates; one chosen on other lifetimes keeps :math:`\\delta` (HCPI's candidate
    selection). Ties go to the earlier candidate, then to less of the logging policy.

    :param mix: the logging policy's share :math:`\\alpha`; None: chosen from :data:`MIXES`
        together with the clip from :data:`CLIPS` on validation lifetimes (module docstring).
    :param clip: :math:`c`; None: chosen as above (with a given ``mix`` too).
    :param validation: separate validation logs and each candidate's probabilities of their
        logged actions (the same names); None: a seeded random half of ``steps`` chooses.
    :raises ValueError: no candidate, or validation probabilities for other names.
    """
    if not candidates:
        raise ValueError("certify_best needs at least one candidate")
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence!r}")
    n_all = np.unique(steps.trajectory_id).size
    if n_all < 4:
        raise ValueError(f"a certificate needs at least 4 logged lifetimes, got {n_all}")
    names = list(candidates)
    mixes = MIXES if mix is None else (float(mix),)
    clips = CLIPS if clip is None else (float(clip),)
    grid = [(k, m, c) for k in range(len(names)) for m in mixes for c in clips]
    chosen: dict[str, float] = {}
    rows = np.arange(n_all)
    if len(grid) > 1:
        if validation is None:
            shuffled = np.random.default_rng(seed).permutation(n_all)
            valid, rows = shuffled[: n_all // 2], np.sort(shuffled[n_all // 2 :])
            weights = {
                (k, m): _StepWeights(steps, candidates[names[k]], metric, m) for k, _ in enumerate(names) for m in mixes
            }
            terms = {(k, m, c): tuple(x[valid] for x in weights[(k, m)].lifetimes(c)) for k, m, c in grid}
        else:
            v_steps, v_taken = validation
            if v_steps.n_actions != steps.n_actions:
                raise ValueError(
                    f"validation logs have {v_steps.n_actions} actions, the certification logs {steps.n_actions}"
                )
            if np.unique(v_steps.trajectory_id).size < 4:
                raise ValueError("validation logs need at least 4 lifetimes")
            if set(v_taken) != set(names):
                raise ValueError(f"validation probabilities are for {sorted(v_taken)}, the candidates are {names}")
            weights = {
                (k, m): _StepWeights(v_steps, v_taken[names[k]], metric, m) for k, _ in enumerate(names) for m in mixes
            }
            terms = {(k, m, c): weights[(k, m)].lifetimes(c) for k, m, c in grid}
        predicted = {
            key: predicted_bound(w, g, key[2], confidence, method, rows.size, seed) for key, (w, g) in terms.items()
        }
        best = max(predicted, key=lambda key: (predicted[key], -key[0], -key[1]))
        names, mixes, clips = [names[best[0]]], (best[1],), (best[2],)
        n_valid = next(iter(terms.values()))[0].size
        chosen = {
            "lifetimes": float(n_valid),
            "separate": float(validation is not None),
            "predicted_lower_bound": float(predicted[best]),
            "candidates": float(len(candidates)),
        }
    policy, target_taken = names[0], candidates[names[0]]
    m, c = mixes[0], clips[0]
    w, g = (x[rows] for x in lifetimes(steps, target_taken, metric, m, c))
    estimate, lower = improvement_bound(w, g, c, confidence, method, seed)
    ess = _lifetime_ess(steps, target_taken, m, rows)
    assumptions = [
        "lifetimes are independent",
        "the logged propensities are the probabilities actually used",
        "every visit's value is >= 0",
        "no lifetime value exceeds the largest one observed",
    ]
    if method == "bootstrap":
        assumptions = assumptions[:2] + [
            "the bootstrap distribution of the mean is accurate (approximate: no finite-sample guarantee)"
        ]
    negative = int(((steps.trajectory_reward if metric == "return_visits" else steps.bandit_reward) < 0).sum())
    needed: int | None = None
    if negative:
        verdict, reason = (
            "not certified",
            (f"{negative} logged visits have a negative {metric}: the bound assumes every visit's value is >= 0"),
        )
    elif lower > 0:
        verdict, reason = "improves", ""
    else:
        needed = lifetimes_needed(estimate, lower, w.size)
        verdict, reason = (
            "not certified",
            (
                f"the {confidence:.0%} lower bound {lower:+.3f} is not above 0 (effective "
                f"sample size {ess:.1f} of {w.size} lifetimes); "
                + (
                    f"at this estimate about {float(f'{needed:.2g}'):,.0f} lifetimes would certify "
                    f"{'this mixture' if m > 0 else 'it'}"
                    if needed is not None
                    else "the estimate itself is not above 0, so more lifetimes would not certify it"
                )
            ),
        )
    return Certificate(
        policy=policy,
        baseline="logging",
        metric=metric,
        method=method,
        confidence=confidence,
        mix=m,
        clip=c,
        n=int(w.size),
        ess=ess,
        estimate=estimate,
        lower_bound=lower,
        baseline_value=float(g.mean()),
        verdict=verdict,
        reason=reason,
        assumptions=assumptions,
        validation=chosen,
        lifetimes_needed=needed,
    )


def _log_ratios(steps: LoggedSteps, target_taken: np.ndarray, mix: float) -> tuple[np.ndarray, np.ndarray]:
    """Each step's lifetime index (0..N-1 by sorted id) and :math:`\\log \\rho_{it}` of the
    mixture :math:`\\pi_\\alpha` (``-inf`` where the ratio is 0), in the steps' order."""
    target_taken = np.asarray(target_taken, dtype=np.float64)
    if target_taken.shape != steps.propensity.shape:
        raise ValueError(f"target_taken must have shape {steps.propensity.shape}, got {target_taken.shape}")
    _, unit = np.unique(steps.trajectory_id, return_inverse=True)
    with np.errstate(divide="ignore"):
        return unit, np.log((1.0 - mix) * target_taken / steps.propensity + mix)


def _lifetime_ess(steps: LoggedSteps, target_taken: np.ndarray, mix: float, rows: np.ndarray) -> float:
    """Kish ESS of the full lifetime weights :math:`W_i = \\prod_t \\rho_{it}` of ``rows``."""
    unit, log_ratio = _log_ratios(steps, target_taken, mix)
    n = int(unit.max()) + 1
    total = np.bincount(unit, weights=np.where(np.isfinite(log_ratio), log_ratio, 0.0), minlength=n)
    dead = np.bincount(unit, weights=~np.isfinite(log_ratio), minlength=n) > 0
    w = np.where(dead, 0.0, np.exp(np.minimum(total - np.max(total[~dead], initial=0.0), 0.0)))
    return effective_sample_size(w[rows])
