"""Retention curves: the share of shoppers still active t days after their first visit.

A trajectory's lifetime is :math:`L = t_K - t_1`, first to last visit, in days. A shopper
is *active at day t* when no visit before day *t* ended the lifetime in churn, i.e.
:math:`L \\ge t` -- the definition of "active at :math:`H`" every stage shares
(:mod:`retentionrl.interactions.horizon`): :func:`retentionrl.simulators.rollout.evaluate_policy`'s
``active_at_horizon`` is 1 exactly when the shopper's lifetime reaches a visit at day
:math:`\\ge H`.

Churn is only known :math:`H` days after the last visit, so a log that ends at :math:`T` has
*confirmed* the fate of a lifetime only up to :math:`c = (T - H) - t_1`: the lifetime is an
event (churn) when it ended with churn (then :math:`L \\le c`), and right-censored at
:math:`\\max(c, 0)` otherwise (:func:`lifetime_durations`). Censoring an open lifetime at its
last visit instead would count recent churners as survivors and bias the curve upward.
The Kaplan-Meier estimate of :math:`S(t) = P(L > t)`,

.. math:: \\hat S(t) = \\prod_{t_i \\le t} \\left(1 - \\frac{d_i}{n_i}\\right),

(:math:`d_i` churn events at :math:`t_i`, :math:`n_i` lifetimes at risk) estimates
:math:`P(L > t)`; the share still active at day *t*, :math:`P(L \\ge t)`, is its left limit
:math:`\\hat S(t^-)` (:meth:`RetentionCurve.at`): a lifetime that ends with a last visit on
day *t* was active at *t*. The 95% band is lifelines' exponential Greenwood interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retentionrl.core.report import pyplot, save_png


@dataclass(frozen=True)
class RetentionCurve:
    """A step function :math:`\\hat S(t)` with its 95% band, on the times where it jumps."""

    days: np.ndarray
    survival: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: int

    def at(self, day: float) -> tuple[float, float, float]:
        """(estimate, lower, upper) of the share still active at ``day``: :math:`P(L \\ge t)`,
        the left limit :math:`\\hat S(t^-)` (churn events on ``day`` itself not yet counted;
        :mod:`retentionrl.interactions.horizon`)."""
        i = int(np.searchsorted(self.days, day, side="left")) - 1
        if i < 0:
            return 1.0, 1.0, 1.0
        return float(self.survival[i]), float(self.lower[i]), float(self.upper[i])


def kaplan_meier(duration_days: np.ndarray, churned: np.ndarray) -> RetentionCurve:
    """Kaplan-Meier retention curve of lifetimes ``duration_days`` (events: ``churned``)."""
    from lifelines import KaplanMeierFitter  # heavy import, only where a curve is drawn

    duration_days = np.asarray(duration_days, dtype="float64")
    if duration_days.size == 0:
        raise ValueError("no trajectories to estimate a retention curve from")
    fitter = KaplanMeierFitter().fit(duration_days, event_observed=np.asarray(churned, dtype=bool))
    band = fitter.confidence_interval_survival_function_
    return RetentionCurve(
        days=fitter.survival_function_.index.to_numpy(dtype="float64"),
        survival=fitter.survival_function_.iloc[:, 0].to_numpy(),
        lower=band.iloc[:, 0].to_numpy(),
        upper=band.iloc[:, 1].to_numpy(),
        n=int(duration_days.size),
    )


def plot_retention(curves: dict[str, RetentionCurve], path: str | Path, *, horizon_days: float = 90.0) -> Path:
    """Draw one or more retention curves with their bands to a PNG (:func:`retentionrl.core.report.save_png`)."""
    fig, ax = pyplot().subplots(figsize=(7, 4.2))
    for label, curve in curves.items():
        ax.step(curve.days, curve.survival, where="post", label=f"{label} (n={curve.n:,})")
        ax.fill_between(curve.days, curve.lower, curve.upper, step="post", alpha=0.2)
    for day in (7, 30, horizon_days):
        ax.axvline(day, color="grey", lw=0.6, ls=":")
    ax.set_xlim(0, max(float(horizon_days) * 2, 1.0))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("days since first visit")
    ax.set_ylabel("share of shoppers still active")
    ax.set_title("Retention (Kaplan-Meier, 95% band)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return save_png(fig, path, dpi=110)


def lifetime_durations(
    trajectories: pd.DataFrame, log_end: pd.Timestamp, horizon_days: float
) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier durations and churn events of :func:`trajectory_table` rows.

    Administrative censoring at :math:`\\max((T - H) - t_1, 0)` for lifetimes still open at
    the log's end :math:`T` (see the module docstring).
    """
    observed = (pd.Timestamp(log_end) - trajectories["start"]).dt.total_seconds().to_numpy() / 86_400.0
    churned = trajectories["churned"].to_numpy(dtype=bool)
    duration = np.where(churned, trajectories["duration_days"].to_numpy(), np.maximum(observed - horizon_days, 0.0))
    return duration, churned


def first_lifetimes(trajectories: pd.DataFrame) -> pd.DataFrame:
    """Each shopper's first trajectory (the retention curve counts shoppers, not comebacks)."""
    return trajectories.drop_duplicates("user_id", keep="first")
