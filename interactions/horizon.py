"""Retention at the horizon: the one definition every stage counts with.

Days are counted from the first visit of a shopper's lifetime (day 0); :math:`H` is the
horizon in days (``horizon_days``, default 90). Retention is observed through the
**window** :math:`[0, H)`:

==================  ==========================================================================
in the window       a visit at day :math:`t` counts iff :math:`t < H` (:func:`in_window`); a
                    visit at day :math:`H` or later does not, however close
return visits       the visits in the window after the first: :math:`0 < t < H`
returned            a visit's retention flag (reward): the shopper did not churn at it and the
                    next visit lies in the window (:func:`returned_in_window`). Summed over a
                    lifetime's visits in the window it is the return visits, so an env
                    episode's retention return, a rollout's ``return_visits`` and an OPE
                    trajectory's return are one number
end of an episode   churn at a visit in the window ends it (terminated); a next visit at day
                    :math:`\\ge H` ends it too (truncated: the shopper is still active)
active at H         no visit in the window ended in churn; equivalently the lifetime reaches
                    a visit at day :math:`\\ge H`. With :math:`L` the day of a lifetime's last
                    visit: :math:`L \\ge H` (or the lifetime is still open). A retention curve
                    :math:`S(t) = P(L > t)` is therefore read at its left limit,
                    :math:`S(H^-) = P(L \\ge H)` (:meth:`retentionrl.interactions.retention.RetentionCurve.at`)
==================  ==========================================================================

**Churn** is the other rule with :math:`H` in it, about *gaps*, not the window: a shopper
churns at a visit when they never come back or come back more than :math:`H` days later,
:math:`g > H` (:func:`churned_after_gap`: whole-day gaps :math:`1..H` are returns, as in the
world's law, the learned simulator's hazard over days :math:`1..H` and the logs'
trajectories). The two rules meet at one case: a shopper whose first return comes exactly
:math:`H` days after the first visit did *not* churn (active at :math:`H`), but that return
is outside the window (0 return visits). A window of :math:`D \\ne H` days (e.g.
``evaluate_policy(..., days=365)``) uses the same rules with :math:`D` in the window.
"""

from __future__ import annotations

import numpy as np


def in_window(day: np.ndarray | float, horizon_days: float) -> np.ndarray:
    """A visit at ``day`` (days since the lifetime's first visit) is in the window
    :math:`[0, H)`: ``day < horizon_days``. NaN (no visit) is not in it."""
    return np.asarray(day) < horizon_days


def returned_in_window(next_day: np.ndarray, churned: np.ndarray, horizon_days: float) -> np.ndarray:
    """The retention flag of a visit: the shopper did not churn at it and the next visit, on
    ``next_day`` (days since the lifetime's first visit; anything where ``churned``), lies in
    the window :math:`[0, H)`."""
    return ~np.asarray(churned, dtype=bool) & in_window(next_day, horizon_days)


def churned_after_gap(gap_days: np.ndarray, horizon_days: float) -> np.ndarray:
    """A gap of ``gap_days`` to the next visit (``inf`` or NaN: none) is churn: ``gap > H``
    or no next visit."""
    gap = np.asarray(gap_days, dtype=np.float64)
    return ~(gap <= horizon_days)


def horizon_from_gaps(gap_days: np.ndarray, span_days: float, *, quantile: float = 0.9, least: int = 7) -> int:
    """:math:`H` chosen from a log alone, by a stated rule: the ``quantile`` (default 0.9) of
    the gaps between consecutive visits of the same shopper, rounded up to whole days, so
    that 9 in 10 of the returns the log shows come within :math:`H`; at least ``least`` days
    and at most half the log's span ``span_days``, so that what happens after :math:`H`
    (the returns of dormant shoppers) stays observable for as long again.

    :param gap_days: the gaps, in days (any order; NaN and non-positive values ignored).
    :raises ValueError: when no gap is left (no shopper came back), naming the fix.
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    gaps = np.asarray(gap_days, dtype=np.float64)
    gaps = gaps[np.isfinite(gaps) & (gaps > 0)]
    if gaps.size == 0:
        raise ValueError("no shopper visits twice in this log, so no gap to choose H from: set the horizon")
    chosen = int(np.ceil(np.quantile(gaps, quantile) - 1e-9))
    return int(min(max(chosen, least), max(least, np.floor(span_days / 2))))
