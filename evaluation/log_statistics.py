"""Purchase-log statistics that calibrate the ground-truth world against real logs.

Every log is reduced to the same unit before anything is measured, so that a purchase-only
log (Online Retail, Complete Journey) and the world's impression/click/purchase log compare
like with like: keep the ``purchase`` events only (cancellations, impressions, clicks and
views are dropped), and count one **transaction** per (shopper, calendar day) with a
purchase -- a *purchase day*. Calendar days are UTC days of the event timestamps.

Notation: customer :math:`i` (a shopper with at least one purchase day) has purchase days
:math:`d_{i,1} < d_{i,2} < \\dots < d_{i,n_i}` (whole days); the log's first and last
events of any kind fall on days :math:`D_0` and :math:`D`; :math:`H` is ``horizon_days``.

=================================  =========================================================
field                              definition
=================================  =========================================================
``horizon_days``                   :math:`H`
``window_days``                    :math:`D - D_0`
``n_customers``                    :math:`N`, shoppers with at least one purchase day
``n_transactions``                 :math:`\\sum_i n_i`, purchase days
``transactions_per_customer_*``    mean and median of :math:`n_i`
``single_purchase_day_share``      :math:`\\frac1N \\sum_i 1[n_i = 1]`
``never_return_cohort``            :math:`|C|`, :math:`C = \\{i : D - d_{i,1} \\ge H\\}`: the
                                   customers whose first purchase day lies at least
                                   :math:`H` days before the log's end, so that their whole
                                   first :math:`H` days are observed
``never_return_share``             :math:`\\frac1{|C|} \\sum_{i \\in C} 1[n_i = 1 \\lor
                                   d_{i,2} - d_{i,1} > H]`: no other purchase day within
                                   :math:`H` days after the first (NaN when :math:`C` is
                                   empty)
``gap_days_p10`` ... ``p90``       quantiles (10, 25, 50, 75, 90%; ``numpy.quantile``,
                                   linear interpolation) of all consecutive gaps
                                   :math:`d_{i,k+1} - d_{i,k}` pooled over customers, in
                                   days (>= 1); NaN when no customer has two purchase days
``active_share_day30``, ``90``     :math:`\\hat S(30)`, :math:`\\hat S(90)` below
``bgnbd_r``, ``alpha``, ``a``,     maximum-likelihood BG/NBD parameters
``b``                              (:func:`retentionrl.simulators.fidelity.bgnbd.fit_bgnbd`): while alive a
                                   customer buys at rate :math:`\\lambda \\sim Gamma(r,
                                   \\alpha)` per day and drops out after a repeat purchase
                                   with probability :math:`p \\sim Beta(a, b)`
``bgnbd_penalizer``                the L2 penalty of that fit: the smallest of 0, 0.001,
                                   0.01, 0.1 at which it converges
``visit_rate_cv``                  :math:`1 / \\sqrt{r}`, the coefficient of variation of
                                   :math:`\\lambda` (:math:`E\\lambda = r / \\alpha`,
                                   :math:`Var\\,\\lambda = r / \\alpha^2`)
=================================  =========================================================

**Active share** is the project's retention definition (:mod:`retentionrl.interactions.retention` on
:mod:`retentionrl.interactions.trajectories`), applied to purchase days: a customer's first lifetime
runs from :math:`d_{i,1}` through each purchase day that follows the previous one by at
most :math:`H` days; it ends in churn at :math:`d_{i,K}` when the next gap exceeds
:math:`H` or when :math:`D - d_{i,K} \\ge H` with no later purchase day, and is
right-censored at :math:`\\max(D - H - d_{i,1}, 0)` otherwise. With lifetime
:math:`L_i = d_{i,K} - d_{i,1}`, the Kaplan-Meier estimate :math:`\\hat S(t)` of
:math:`P(L > t)` is the share of customers still active :math:`t` days after their first
purchase day: they buy again later than day :math:`t` without a gap longer than :math:`H`
before. It is NaN when no lifetime reaches :math:`t` (a window too short to tell).

**BG/NBD** is fit on the whole window's summary per customer: frequency
:math:`x_i = n_i - 1`, recency :math:`t_{x,i} = d_{i,n_i} - d_{i,1}` and age
:math:`T_i = D - d_{i,1}` (lifetimes' daily convention), by
:func:`retentionrl.simulators.fidelity.bgnbd.whole_log_summary`. The fit's console output and numerical warnings
are silenced; a fit that converges at none of these penalties raises ``ValueError``.

Every statistic depends on the window's length (gaps longer than the window cannot occur;
young customers have short recencies), so compare logs of similar ``window_days``.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from retentionrl.interactions.io import EventLog
from retentionrl.interactions.retention import first_lifetimes, kaplan_meier, lifetime_durations
from retentionrl.interactions.trajectories import add_trajectories, trajectory_table
from retentionrl.simulators.fidelity.bgnbd import fit_bgnbd, whole_log_summary

GAP_QUANTILES: tuple[float, ...] = (0.10, 0.25, 0.50, 0.75, 0.90)
"""Levels of the inter-purchase gap quantiles (``gap_days_p10`` ... ``gap_days_p90``)."""

ACTIVE_DAYS: tuple[int, ...] = (30, 90)
"""Days after the first purchase day of the active shares (``active_share_day30``, ``90``)."""


def _stat(label: str, fmt: str) -> Any:
    """A dataclass field with its table row label and number format."""
    return field(metadata={"label": label, "format": fmt})


@dataclass(frozen=True)
class LogStatistics:
    """Purchase-day statistics of one event log (definitions: the module docstring)."""

    horizon_days: float = _stat("horizon H (days)", "{:g}")
    window_days: int = _stat("window, first to last day (days)", "{:,}")
    n_customers: int = _stat("customers (>= 1 purchase day)", "{:,}")
    n_transactions: int = _stat("purchase days", "{:,}")
    transactions_per_customer_mean: float = _stat("purchase days / customer, mean", "{:.2f}")
    transactions_per_customer_median: float = _stat("purchase days / customer, median", "{:g}")
    single_purchase_day_share: float = _stat("share with a single purchase day", "{:.3f}")
    never_return_cohort: int = _stat("cohort: first purchase >= H before end", "{:,}")
    never_return_share: float = _stat("never return within H (cohort)", "{:.3f}")
    gap_days_p10: float = _stat("gap p10 (days)", "{:.1f}")
    gap_days_p25: float = _stat("gap p25 (days)", "{:.1f}")
    gap_days_p50: float = _stat("gap p50 (days)", "{:.1f}")
    gap_days_p75: float = _stat("gap p75 (days)", "{:.1f}")
    gap_days_p90: float = _stat("gap p90 (days)", "{:.1f}")
    active_share_day30: float = _stat("active at day 30 (Kaplan-Meier)", "{:.3f}")
    active_share_day90: float = _stat("active at day 90 (Kaplan-Meier)", "{:.3f}")
    bgnbd_r: float = _stat("BG/NBD r (visit-rate shape)", "{:.4g}")
    bgnbd_alpha: float = _stat("BG/NBD alpha (days)", "{:.4g}")
    bgnbd_a: float = _stat("BG/NBD a", "{:.4g}")
    bgnbd_b: float = _stat("BG/NBD b", "{:.4g}")
    bgnbd_penalizer: float = _stat("BG/NBD penalizer used", "{:g}")
    visit_rate_cv: float = _stat("visit-rate CV 1/sqrt(r)", "{:.3f}")

    def to_dict(self) -> dict[str, int | float | None]:
        """The fields as a JSON-ready dict; an undefined (NaN) statistic becomes ``None``."""
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, int | float | None]) -> LogStatistics:
        """Inverse of :meth:`to_dict` (``None`` reads back as NaN)."""
        names = [f.name for f in fields(cls)]
        missing, unknown = sorted(set(names) - set(data)), sorted(set(data) - set(names))
        if missing or unknown:
            raise ValueError(f"LogStatistics.from_dict: missing keys {missing}, unknown keys {unknown}")
        # one value per field, ints and floats mixed: checked by name above, not by type
        values: dict[str, Any] = {k: math.nan if data[k] is None else data[k] for k in names}
        return cls(**values)


def statistics_table(columns: Mapping[str, LogStatistics]) -> str:
    """A text table: one column per log (named by the mapping's keys), one row per field."""
    if not columns:
        raise ValueError("statistics_table needs at least one log")
    rows = [["statistic", *columns]]
    for f in fields(LogStatistics):
        values = (getattr(stats, f.name) for stats in columns.values())
        cells = ["n/a" if isinstance(v, float) and math.isnan(v) else f.metadata["format"].format(v) for v in values]
        rows.append([f.metadata["label"], *cells])
    widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) if j == 0 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths)))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _calendar_day(times: np.ndarray | pd.Timestamp) -> np.ndarray:
    """Whole days since 1970-01-01 of datetime64 values (any resolution)."""
    return np.asarray(times, dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)


def purchase_log_statistics(log: EventLog, *, horizon_days: float = 90.0, bgnbd: bool = True) -> LogStatistics:
    """Measure the purchase-day statistics of ``log`` (definitions: the module docstring).

    :param log: any event log the project reads (:func:`retentionrl.interactions.io.read_events`).
    :param horizon_days: :math:`H` in days, > 0: the never-return window and the retention
        churn horizon.
    :param bgnbd: fit BG/NBD (about 0.5 s on twenty thousand customers, once lifetimes is
        imported); when False its fields and ``visit_rate_cv`` are NaN.
    :raises ValueError: a log without purchase events, ``horizon_days <= 0``, or a BG/NBD
        fit that converges at none of the penalties tried.
    """
    if not horizon_days > 0:
        raise ValueError(f"horizon_days must be > 0, got {horizon_days}")
    events = log.events
    is_purchase = (events["event"] == "purchase").to_numpy()
    if not is_purchase.any():
        kinds = events["event"].value_counts()
        raise ValueError(
            f"{log.source}: no purchase events (event counts: {kinds[kinds > 0].to_dict()}); "
            "purchase-day statistics need at least one purchase"
        )
    codes, user_ids = pd.factorize(events["user_id"].to_numpy()[is_purchase])
    day = _calendar_day(events["timestamp"].to_numpy()[is_purchase])
    first_day, end_day = int(_calendar_day(log.start)), int(_calendar_day(log.end))
    span = end_day - first_day + 1
    # one row per purchase day, sorted by (customer, day)
    key = np.unique(codes.astype(np.int64) * span + (day - first_day))
    customer, pday = key // span, key % span + first_day

    n_days = np.bincount(customer)
    opens = np.flatnonzero(np.r_[True, customer[1:] != customer[:-1]])
    same_next = np.r_[customer[1:] == customer[:-1], False]
    gaps = np.diff(pday)[same_next[:-1]].astype(np.float64)
    first_gap = np.where(same_next[opens], pday[np.minimum(opens + 1, pday.size - 1)] - pday[opens], np.inf)
    cohort = end_day - pday[opens] >= horizon_days
    gap_quantiles = np.quantile(gaps, GAP_QUANTILES) if gaps.size else np.full(len(GAP_QUANTILES), np.nan)

    start = pday.astype("datetime64[D]").astype("datetime64[ns]")
    visits = pd.DataFrame({"user_id": user_ids[customer], "start": start})
    log_end = pd.Timestamp(np.datetime64(end_day, "D"))
    active = _active_shares(visits, log_end, horizon_days)
    fit = _fit_bgnbd(visits, log_end) if bgnbd else dict.fromkeys(("r", "alpha", "a", "b", "penalizer"), math.nan)
    return LogStatistics(
        horizon_days=float(horizon_days),
        window_days=int(end_day - first_day),
        n_customers=int(n_days.size),
        n_transactions=int(pday.size),
        transactions_per_customer_mean=float(n_days.mean()),
        transactions_per_customer_median=float(np.median(n_days)),
        single_purchase_day_share=float((n_days == 1).mean()),
        never_return_cohort=int(cohort.sum()),
        never_return_share=float((first_gap[cohort] > horizon_days).mean()) if cohort.any() else math.nan,
        **{f"gap_days_p{round(q * 100)}": float(v) for q, v in zip(GAP_QUANTILES, gap_quantiles)},
        **{f"active_share_day{t}": share for t, share in zip(ACTIVE_DAYS, active)},
        **{f"bgnbd_{k}": v for k, v in fit.items()},
        visit_rate_cv=1.0 / math.sqrt(fit["r"]),
    )


def _active_shares(visits: pd.DataFrame, log_end: pd.Timestamp, horizon_days: float) -> list[float]:
    """Kaplan-Meier share of customers active at each of :data:`ACTIVE_DAYS` (NaN beyond the data)."""
    first = first_lifetimes(trajectory_table(add_trajectories(visits, log_end, horizon_days=horizon_days)))
    duration, churned = lifetime_durations(first, log_end, horizon_days)
    curve = kaplan_meier(duration, churned)
    return [curve.at(t)[0] if duration.max() >= t else math.nan for t in ACTIVE_DAYS]


def _fit_bgnbd(visits: pd.DataFrame, log_end: pd.Timestamp) -> dict[str, float]:
    """BG/NBD parameters and the penalizer of the fit on the whole window (quietly)."""
    summary = whole_log_summary(visits, log_end)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", RuntimeWarning)
        model = fit_bgnbd(summary["frequency"], summary["recency"], summary["T"], penalizer=0.0)
    return {**{k: float(v) for k, v in model.params_.items()}, "penalizer": float(model.penalizer_coef)}
