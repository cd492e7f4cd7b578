"""What the pipeline measures about policies: lifetimes in rollouts, behaviour by segment, OPE.

* :func:`rollout` runs :func:`retentionrl.simulators.rollout.evaluate_policy` (the values with 95%
  intervals) through :class:`LifetimeRecorder`, which also keeps each shopper's lifetime so
  that a Kaplan-Meier retention curve (:func:`retentionrl.interactions.retention.kaplan_meier`) can be
  drawn: a shopper who churns at the visit on day :math:`t` has lifetime :math:`t` (an
  event); one whose next visit falls at or past :math:`H` (outside the window
  :math:`[0, H)`, :mod:`retentionrl.interactions.horizon`) is censored there, so the curve read at
  :math:`H` is the rollout's ``active_at_horizon``.
* :func:`logged_retention` is the same curve for the first lifetimes of logged shoppers,
  with churn *confirmed* only :math:`H` days after a last visit: a lifetime is known to end
  at :math:`L \\le t` only when the log runs :math:`t + H` days past the first visit, so a
  trajectory still open at the log's end (observed for :math:`C` days) is censored at
  :math:`C - H`, not at its last visit (censoring there is informative and, on a 150-day
  log, puts the share active at 90 days near 0.85 where the world's truth is 0.5). Days
  past the longest :math:`C - H` are not estimable and are left out.
* :func:`behaviour` says what a policy does on logged shoppers' states, by segment (from
  the observation features; thresholds :data:`AT_RISK_DAYS`, :data:`LOYAL_VISITS`):

  ===========  ==============================================================
  new          first visit (no prior visit)
  at risk      :math:`\\ge` ``AT_RISK_DAYS`` days since the previous visit
  loyal        :math:`\\ge` ``LOYAL_VISITS`` prior visits (and not at risk)
  regular      everyone else
  ===========  ==============================================================

  per segment: the coupon rate :math:`\\frac1n \\sum_i \\sum_{a:\\,c(a)>0} \\pi(a|x_i)` with a
  95% normal interval over states, and the arms with the most probability.
* :func:`off_policy` runs :func:`retentionrl.evaluation.runner.evaluate_offline` as ``retentionrl ope``
  does (retentionrl/cli/ope.py), propensities from a clone of the logging policy where the
  logs hold none; with a :class:`SimulatorModel`, also the model-based trajectory estimates
  (:mod:`retentionrl.evaluation.model_based`) with the run's simulators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from retentionrl.core.interval import Interval
from retentionrl.core.policy import Policy
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.horizon import in_window
from retentionrl.interactions.io import EventLog
from retentionrl.interactions.retention import RetentionCurve, first_lifetimes, kaplan_meier, lifetime_durations
from retentionrl.interactions.trajectories import trajectory_table, visits_with_trajectories
from retentionrl.interactions.visits import VisitMode
from retentionrl.pipeline.results import ArmShare, Curve, OffPolicy, PlaceValue, SegmentBehaviour
from retentionrl.simulators.interface import ShopperSimulator, VisitOutcome
from retentionrl.simulators.observation import column, visit_count
from retentionrl.simulators.rollout import evaluate_policy

if TYPE_CHECKING:
    from retentionrl.simulators.learned.simulator import LearnedSimulator

AT_RISK_DAYS = 30.0
"""Days since the previous visit from which a shopper counts as at risk."""
LOYAL_VISITS = 5
"""Prior visits from which a shopper counts as loyal."""
SEGMENTS = ("new", "regular", "loyal", "at risk")
TOP_ARMS = 3


class LifetimeRecorder(ShopperSimulator):
    """Delegates to ``inner`` and records each shopper's lifetime during a rollout."""

    def __init__(self, inner: ShopperSimulator) -> None:
        self.inner = inner
        self.action_space = inner.action_space
        self.observation_names = inner.observation_names
        self.horizon_days = inner.horizon_days

    @property
    def days(self) -> np.ndarray:
        return self.inner.days

    def reset(self, n: int, *, seed: int | None = None) -> np.ndarray:
        obs = self.inner.reset(n, seed=seed)
        self.alive = np.ones(n, dtype=bool)
        self.duration = np.zeros(n)
        self.churned = np.zeros(n, dtype=bool)
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, VisitOutcome]:
        today = self.inner.days.copy()
        obs, out = self.inner.step(actions)
        alive = self.alive
        churn = alive & out.churned
        self.churned |= churn
        self.duration = np.where(churn, today, np.where(alive, self.inner.days, self.duration))
        self.alive = alive & ~out.churned & in_window(self.inner.days, self.horizon_days)
        return obs, out

    def replace(self, mask: np.ndarray) -> np.ndarray:
        return self.inner.replace(mask)


def curve_record(curve: RetentionCurve, horizon_days: float, limit: float = float("inf")) -> Curve:
    """The curve up to the horizon (or ``limit``) and its value at 7, 30 and H days (``None``
    past ``limit``, the longest duration the data can speak for)."""
    keep = curve.days <= min(horizon_days, limit)
    at = {str(d): Interval(*curve.at(d), n=curve.n) if d <= limit else None for d in (7, 30, int(horizon_days))}
    return Curve(
        days=curve.days[keep].tolist(),
        survival=curve.survival[keep].tolist(),
        lower=curve.lower[keep].tolist(),
        upper=curve.upper[keep].tolist(),
        n=curve.n,
        at=at,
    )


def rollout(simulator: ShopperSimulator, policy: Policy, name: str, n_users: int, seed: int) -> PlaceValue:
    """Values of ``policy`` over the horizon in ``simulator`` and its retention curve."""
    recorder = LifetimeRecorder(simulator)
    policy.name = name
    value = evaluate_policy(recorder, policy, n_users, seed)
    curve = kaplan_meier(recorder.duration, recorder.churned)
    return PlaceValue(values=value.metrics(), curve=curve_record(curve, simulator.horizon_days))


def logged_retention(log: EventLog, horizon_days: int, visit_mode: VisitMode = "auto") -> tuple[Curve, Interval | None]:
    """Kaplan-Meier curve of the logged shoppers' first lifetimes, and their return visits
    within :math:`H` (shoppers whose first visit lies at least :math:`H` before the log's end)."""
    visits = visits_with_trajectories(log, horizon_days=horizon_days, mode=visit_mode)
    first = first_lifetimes(trajectory_table(visits))
    duration, churned = lifetime_durations(first, log.end, horizon_days)
    curve = curve_record(kaplan_meier(duration, churned), horizon_days, limit=float(duration.max()))
    full = first.loc[(log.end - first["start"]).dt.total_seconds().to_numpy() >= horizon_days * 86_400.0]
    rows = visits.loc[visits["trajectory_id"].isin(full["trajectory_id"]) & in_window(visits["day"], horizon_days)]
    counts = rows.groupby("trajectory_id").size().to_numpy() - 1
    return curve, Interval.of(counts) if len(counts) > 1 else None


def segments(obs: np.ndarray, horizon_days: float) -> np.ndarray:
    """The segment name (:data:`SEGMENTS`) of each observation row."""
    prior = visit_count(obs)
    since_last = obs[:, column("days_since_last")] * horizon_days
    return np.select(
        [prior == 0, since_last >= AT_RISK_DAYS, prior >= LOYAL_VISITS], ["new", "at risk", "loyal"], "regular"
    )


def behaviour(
    policy: Policy, obs: np.ndarray, horizon_days: float, arm_names: list[str]
) -> dict[str, SegmentBehaviour]:
    """Coupon rate and most likely arms of ``policy`` per segment of the states ``obs``."""
    probs = policy.action_probs(obs)
    arm, coupon = policy.action_space.decode(np.arange(policy.action_space.n_actions))
    coupon_mass = probs[:, coupon > 0].sum(axis=1)
    arm_mass = np.zeros((len(obs), policy.action_space.n_arms))
    np.add.at(arm_mass.T, arm, probs.T)
    seg = segments(obs, horizon_days)
    out = {}
    for name in SEGMENTS:
        rows = seg == name
        n = int(rows.sum())
        if n < 2:
            out[name] = SegmentBehaviour(n)
            continue
        share = arm_mass[rows].mean(axis=0)
        top = np.argsort(-share, kind="stable")[:TOP_ARMS]
        out[name] = SegmentBehaviour(
            n, Interval.of(coupon_mass[rows]), [ArmShare(str(arm_names[i]), float(share[i])) for i in top]
        )
    return out


def off_policy(
    decisions: LoggedDecisions,
    propensity: np.ndarray | None,
    policies: dict[str, Policy],
    n_bootstrap: int,
    seed: int,
    sequential: bool,
    model: SimulatorModel | None = None,
) -> dict[str, OffPolicy]:
    """DR-family estimates with intervals and diagnostics of each policy on logged steps, and
    with ``model`` the model-based trajectory estimates of the policies it names."""
    from retentionrl.evaluation.runner import evaluate_policies
    from retentionrl.evaluation.world_steps import steps_from_decisions

    steps = steps_from_decisions(decisions, propensity)
    out = {}
    results = evaluate_policies(steps, policies, n_bootstrap=n_bootstrap, seed=seed, sequential=sequential)
    model_based: dict[str, dict[str, Interval]] = {}
    if model is not None and sequential and model.policies:
        from retentionrl.evaluation.model_based import estimate_on_decisions

        try:
            estimates = estimate_on_decisions(
                model.members,
                {name: policies[name] for name in model.policies},
                decisions,
                model.horizon_days,
                propensity=propensity,
                rollouts=model.rollouts,
                n_bootstrap=n_bootstrap,
                seed=seed,
                progress=True,
            )
            model_based = {name: res.intervals for name, res in estimates.items()}
        except ValueError:  # visits without a logged action: no lifetime can be followed through
            pass
    for name, res in results.items():
        diag = res.trajectory_diagnostics if sequential else res.bandit_diagnostics
        n_visits, n_trajectories = int(steps.action.shape[0]), int(np.unique(steps.trajectory_id).size)
        out[name] = OffPolicy(
            bandit={k: Interval(v.estimate, v.low, v.high, n_visits) for k, v in res.bandit.items()},
            trajectory={k: Interval(v.estimate, v.low, v.high, n_trajectories) for k, v in res.trajectory.items()},
            n_visits=n_visits,
            n_trajectories=n_trajectories,
            ess=float(diag.ess),
            bandit_ess=float(res.bandit_diagnostics.ess),
            unsupported_mass=float(diag.unsupported_mass),
            warnings=list(
                dict.fromkeys(
                    res.bandit_diagnostics.warnings + res.trajectory_diagnostics.warnings
                    if sequential
                    else res.bandit_diagnostics.warnings
                )
            ),
            model={
                k: Interval(v.estimate, v.low, v.high, n_trajectories) for k, v in model_based.get(name, {}).items()
            },
        )
    return out


@dataclass(frozen=True)
class SimulatorModel:
    """What the model-based estimates use: the simulators (an ensemble's members), the
    policies to estimate, the horizon and the continuations per visit."""

    members: list[LearnedSimulator]
    policies: list[str]
    horizon_days: float
    rollouts: int
