"""The BG/NBD repeat-visit baseline (``lifetimes.BetaGeoFitter``) and its summary tables.

BG/NBD (Fader, Hardie and Lee 2005) treats every visit after a shopper's first as a
"repeat transaction": while alive a shopper returns as a Poisson process of rate
:math:`\\lambda \\sim Gamma(r, \\alpha)`, and after each return drops out for good with
probability :math:`p \\sim Beta(a, b)`. It reads, per shopper, ``frequency`` :math:`x`
(repeat visits), ``recency`` :math:`t_x` (first to last visit) and ``T`` (first visit to
the end of the calibration period), all in days.

``lifetimes.utils.calibration_and_holdout_data`` fails on pandas 3, so
:func:`calibration_holdout_summary` builds the table here, from a visit table.

Per-visit return probability (:func:`prob_return_within`): dropout happens only right after
a return, so a shopper alive at :math:`T` with posterior :math:`\\lambda \\mid x, T \\sim
Gamma(r + x, \\alpha + T)` returns within :math:`t` with probability

.. math:: P(\\text{alive} \\mid x, t_x, T)\\,
          \\Bigl[1 - \\Bigl(\\frac{\\alpha + T}{\\alpha + T + t}\\Bigr)^{r + x}\\Bigr].

Predictive draws of the visits in :math:`(T, T + t]` (:func:`sample_future_visits`): given
alive, the likelihood :math:`\\lambda^x e^{-\\lambda T} (1 - p)^x` makes the posterior
:math:`\\lambda \\sim Gamma(r + x, \\alpha + T)` and :math:`p \\sim Beta(a, b + x)`, independent;
then :math:`N = \\min(K, G)` with :math:`K \\sim Poisson(\\lambda t)` arrivals and
:math:`G \\sim Geometric(p)` the visit after which the shopper drops out (0 when not alive).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

DAY_NS = 86_400 * 10**9


def calibration_holdout_summary(
    visits: pd.DataFrame, cutoff: pd.Timestamp | str, holdout_end: pd.Timestamp | str
) -> pd.DataFrame:
    """One row per shopper with a visit before ``cutoff``, indexed by ``user_id``.

    :param visits: a visit table (``user_id``, ``start``), any order.
    :param cutoff: end of the calibration period (visits at or after it are holdout).
    :param holdout_end: end of the holdout period (visits at or after it are ignored).
    :returns: columns ``frequency_cal`` (visits before ``cutoff`` minus 1), ``recency_cal``
        and ``T_cal`` (days from the first visit to the last calibration visit, and to
        ``cutoff``), ``frequency_holdout`` (visits in ``[cutoff, holdout_end)``) and
        ``duration_holdout`` (days of the holdout period).
    """
    cutoff, holdout_end = pd.Timestamp(cutoff), pd.Timestamp(holdout_end)
    if holdout_end <= cutoff:
        raise ValueError(f"holdout_end {holdout_end} must come after cutoff {cutoff}")
    start = visits["start"].to_numpy().astype("datetime64[ns]").view("int64")
    users = visits["user_id"].to_numpy()
    cal = start < cutoff.value
    hold = ~cal & (start < holdout_end.value)
    frame = pd.DataFrame({"user_id": users[cal], "start": start[cal]})
    grouped = frame.groupby("user_id", sort=True)["start"]
    first, last, count = grouped.min(), grouped.max(), grouped.size()
    summary = pd.DataFrame(
        {
            "frequency_cal": (count - 1).astype(np.float64),
            "recency_cal": (last - first) / DAY_NS,
            "T_cal": (cutoff.value - first) / DAY_NS,
        }
    )
    holdout = pd.Series(users[hold]).value_counts()
    summary["frequency_holdout"] = holdout.reindex(summary.index, fill_value=0).astype(np.float64).to_numpy()
    summary["duration_holdout"] = (holdout_end.value - cutoff.value) / DAY_NS
    summary.index.name = "user_id"
    return summary


def whole_log_summary(visits: pd.DataFrame, log_end: pd.Timestamp) -> pd.DataFrame:
    """``frequency``, ``recency``, ``T`` of every shopper over the whole log (to fit BG/NBD)."""
    table = calibration_holdout_summary(
        visits, pd.Timestamp(log_end) + pd.Timedelta("1ns"), pd.Timestamp(log_end) + pd.Timedelta("2ns")
    )
    return table.rename(columns={"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T"})[
        ["frequency", "recency", "T"]
    ]


PENALIZER_LADDER = (0.001, 0.01, 0.1, 1.0)
"""L2 penalties tried in turn after a fit fails to converge, as lifetimes' own error message advises."""


def fit_with_penalizer_ladder(fitter_class: Any, data: tuple[np.ndarray, ...], penalizer: float, name: str) -> Any:
    """``fitter_class(penalizer_coef=c).fit(*data)`` at the first ``c`` that converges.

    ``c`` runs over ``penalizer`` and then every larger value of :data:`PENALIZER_LADDER`; a
    fit that raises ``lifetimes.utils.ConvergenceError`` moves on to the next. The one used is
    the model's ``penalizer_coef``.

    :raises ValueError: no penalty converges.
    """
    from lifetimes.utils import ConvergenceError

    for coef in (penalizer, *(c for c in PENALIZER_LADDER if c > penalizer)):
        try:
            return fitter_class(penalizer_coef=coef).fit(*data)
        except ConvergenceError:
            continue
    raise ValueError(
        f"{name} did not converge on {data[0].size} shoppers, even with penalizer {max(penalizer, PENALIZER_LADDER[-1])}"
    )


def fit_bgnbd(frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, penalizer: float = 0.0):
    """A fitted ``lifetimes.BetaGeoFitter`` (imported here: lifetimes is heavy).

    When the fit does not converge at ``penalizer``, larger L2 penalties are tried in turn
    (:func:`fit_with_penalizer_ladder`). Small logs whose shoppers show no dropout yet
    (BG/NBD's a, b tending to 0) may need the largest.
    """
    from lifetimes import BetaGeoFitter

    data = tuple(np.asarray(v, dtype=float) for v in (frequency, recency, T))
    return fit_with_penalizer_ladder(BetaGeoFitter, data, penalizer, "BG/NBD")


def prob_return_within(model, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, days: float) -> np.ndarray:
    """P(at least one return within ``days`` after ``T``) under a fitted BG/NBD (module docstring)."""
    r, alpha = model.params_["r"], model.params_["alpha"]
    x, T = np.asarray(frequency, float), np.asarray(T, float)
    alive = model.conditional_probability_alive(x, np.asarray(recency, float), T)
    return alive * (1.0 - ((alpha + T) / (alpha + T + days)) ** (r + x))


def expected_future_visits(model, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, days: float) -> np.ndarray:
    """E[visits within ``days`` after ``T``] under a fitted BG/NBD, finite for every shopper.

    lifetimes' closed form (``conditional_expected_number_of_purchases_up_to_time``) divides
    by :math:`a - 1` and evaluates :math:`{}_2F_1(r + x, b + x; a + b + x - 1; \\cdot)`, which is
    NaN where :math:`a + b + x \\le 1`: every shopper with one calibration visit once a fit
    has :math:`a + b < 1`. It is used where it is finite (fast); the other shoppers get
    :func:`series_expected_visits`, the same expectation summed term by term, which agrees
    with it wherever both exist (tested).
    """
    x, t_x, t_cal = (np.asarray(v, float) for v in (frequency, recency, T))
    with np.errstate(all="ignore"):
        closed = np.asarray(model.conditional_expected_number_of_purchases_up_to_time(days, x, t_x, t_cal), float)
    broken = ~np.isfinite(closed) | (closed < 0)
    if broken.any():
        closed[broken] = series_expected_visits(model, x[broken], t_x[broken], t_cal[broken], days)
    return closed


def series_expected_visits(
    model, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, days: float, *, tol: float = 1e-13
) -> np.ndarray:
    """E[visits within ``days`` after ``T``] under a fitted BG/NBD, summed from the predictive
    law of the module docstring: given alive, the arrivals
    :math:`K \\sim NB(r + x, \\frac{\\alpha + T}{\\alpha + T + t})` (:math:`\\lambda` integrated out)
    and the visits :math:`\\min(K, G)` with :math:`P(G \\ge k \\mid p) = (1 - p)^{k - 1}`, so

    .. math:: E[N \\mid x, t_x, T] = P(\\text{alive}) \\sum_{k \\ge 1} P(K \\ge k)\\,
              \\frac{B(a, b + x + k - 1)}{B(a, b + x)},

    every term positive and finite for :math:`a, b > 0`; the sum stops where the tail
    :math:`P(K \\ge k)` of every shopper is below ``tol``.
    """
    from scipy.special import betaln
    from scipy.stats import nbinom

    params = model.params_
    r, alpha, a, b = (float(params[k]) for k in ("r", "alpha", "a", "b"))
    x, t_cal = np.asarray(frequency, float), np.asarray(T, float)
    alive = model.conditional_probability_alive(x, np.asarray(recency, float), t_cal)
    n, q = r + x, (alpha + t_cal) / (alpha + t_cal + float(days))
    total = np.zeros_like(x)
    block = 64
    for first in range(1, 1_000_000, block):
        k = np.arange(first, first + block, dtype=float)[None, :]
        tail = nbinom.sf(k - 1, n[:, None], q[:, None])  # P(K >= k)
        total += (tail * np.exp(betaln(a, b + x[:, None] + k - 1) - betaln(a, b + x[:, None]))).sum(axis=1)
        if tail[:, -1].max(initial=0.0) < tol:
            break
    return alive * total


def sample_future_visits(
    model, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, days: float, replicas: int, seed: int = 0
) -> np.ndarray:
    """Draws ``(n, replicas)`` of each shopper's visits within ``days`` after ``T`` from a
    fitted BG/NBD's predictive distribution (module docstring); their mean tends to
    ``conditional_expected_number_of_purchases_up_to_time``."""
    params = model.params_
    x, T = np.asarray(frequency, float), np.asarray(T, float)
    alive_p = model.conditional_probability_alive(x, np.asarray(recency, float), T)
    rng = np.random.default_rng(seed)
    shape = (x.size, int(replicas))
    alive = rng.random(shape) < alive_p[:, None]
    lam = rng.gamma(params["r"] + x[:, None], 1.0 / (params["alpha"] + T[:, None]), size=shape)
    p = rng.beta(params["a"], params["b"] + x[:, None], size=shape)
    arrivals = rng.poisson(lam * days)
    dropout_at = rng.geometric(np.clip(p, 1e-12, 1.0))
    return np.where(alive, np.minimum(arrivals, dropout_at), 0).astype(np.float64)


def per_visit_features(visits: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, t_x, T)`` at every visit (just after it): earlier visits of the trajectory,
    and days since its first visit (``t_x = T``: the visit itself is the last one)."""
    x = visits["visit_index"].to_numpy(dtype=np.float64)
    day = visits["day"].to_numpy(dtype=np.float64)
    return x, day, day
