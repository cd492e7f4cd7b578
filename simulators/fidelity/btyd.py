r"""Pareto/NBD and Gamma-Gamma baselines, and holdout scoring that scores every customer.

BG/NBD lives in :mod:`retentionrl.simulators.fidelity.bgnbd`; this module adds the other two
"buy 'til you die" models of ``lifetimes`` and the comparison of their forecasts.

**Pareto/NBD** (Schmittlein, Morrison and Colombo 1987; derivations in Fader, Hardie and
Lee 2005, "A Note on Deriving the Pareto/NBD Model and Related Expressions"). While alive a
customer buys as a Poisson process of rate :math:`\lambda \sim Gamma(r, \alpha)`; the
lifetime :math:`\omega \sim Exp(\mu)`, :math:`\mu \sim Gamma(s, \beta)`. From ``frequency``
:math:`x` (repeat purchases), ``recency`` :math:`t_x` and age ``T`` (days since the first
purchase, to the last one and to the end of calibration):

.. math::
    P(\text{alive} \mid x, t_x, T) = \Bigl[1 + s\,(\alpha + T)^{r + x} (\beta + T)^{s}\,
        D\Bigr]^{-1}, \qquad
    D = \int_{t_x}^{T} (\alpha + \tau)^{-(r + x)} (\beta + \tau)^{-(s + 1)}\, d\tau,

    E[N(T, T + t] \mid x, t_x, T] = P(\text{alive})\, \frac{r + x}{\alpha + T}\,
        \frac{\beta + T}{s - 1} \Bigl[1 - \Bigl(\frac{\beta + T}{\beta + T + t}\Bigr)^{s - 1}\Bigr].

:math:`D` is lifetimes' :math:`A_0 / (r + s + x)`; lifetimes evaluates it as a difference of
two :math:`{}_2F_1(r + s + x, \cdot\,; r + s + x + 1; z)` that overflow for large :math:`x`
(NaN forecasts). Here, with :math:`M = \max(\alpha, \beta)`, :math:`m = \min(\alpha, \beta)`,
:math:`e` the exponent of :math:`m + \tau` above, :math:`e_M` that of :math:`M + \tau` and
:math:`c = r + s + x = e + e_M - 1`, Euler's transformation gives

.. math::
    I(y) = \int_y^\infty (M + \tau)^{-e_M} (m + \tau)^{-e} d\tau
         = \frac{(M + y)^{-c}}{c} \Bigl(\frac{m + y}{M + y}\Bigr)^{1 - e}
           {}_2F_1\Bigl(1, e_M; c + 1; \frac{M - m}{M + y}\Bigr),

whose :math:`{}_2F_1` lies in :math:`[1, (M + y)/(m + y)]` (a series of positive terms, each
at most :math:`z^n`), so :math:`\log I` is finite, and
:math:`\log D = \log I(t_x) + \log(1 - e^{\log I(T) - \log I(t_x)})`. Where this still
fails (scipy's :math:`{}_2F_1` non-finite or outside those bounds, as for large parameters
with :math:`z \to 1`; or the difference lost to rounding) the stated fallback is adaptive
quadrature of :math:`D` itself, scaled by its integrand at :math:`t_x`;
:func:`pareto_prob_alive` returns which customers took it, and how many. The last
factor is :math:`(\beta + T) L \operatorname{exprel}(-(s - 1) L)`, :math:`L = \log\frac{\beta +
T + t}{\beta + T}`, which tends to :math:`(\beta + T) L` as :math:`s \to 1`.

Predictive draws (:func:`pareto_sample_future_visits`): alive at :math:`T` with probability
:math:`P(\text{alive})`; given alive, the likelihood :math:`\lambda^x e^{-(\lambda + \mu) T}`
makes :math:`\lambda \sim Gamma(r + x, \alpha + T)` and :math:`\mu \sim Gamma(s, \beta + T)`
independent (rates); the remaining lifetime is :math:`Exp(\mu)` (memoryless) and
:math:`N \sim Poisson(\lambda \min(\omega, t))`; :math:`N = 0` when not alive.

**Gamma-Gamma** (Fader, Hardie and Lee 2005, "RFM and CLV"; Hardie's note 025): a customer's
transactions are :math:`Gamma(p, \nu)`, :math:`\nu \sim Gamma(q, v)`, so the mean spend is
:math:`\zeta = p / \nu`, with population mean :math:`p v / (q - 1)` and, given :math:`x`
repeat transactions of mean :math:`\bar m`,

.. math:: E[\zeta \mid x, \bar m] = \frac{q - 1}{p x + q - 1} \frac{p v}{q - 1}
          + \frac{p x}{p x + q - 1} \bar m.

It assumes spend independent of purchase frequency (check with
:func:`frequency_spend_correlation`).

**Scoring** (:func:`score_forecasts`) refuses a forecast that is missing or non-finite for
any customer, naming the model and the count, instead of averaging over the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from lifetimes import GammaGammaFitter, ParetoNBDFitter
from lifetimes.utils import ConvergenceError
from scipy.integrate import quad
from scipy.optimize import minimize
from scipy.special import exprel, hyp2f1

from retentionrl.simulators.fidelity.bgnbd import DAY_NS, calibration_holdout_summary, fit_with_penalizer_ladder

ExpectFn = Callable[[Any, np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]
"""``(model, x, t_x, T, days) -> E[visits in (T, T + days]]`` per customer, as
:func:`pareto_expected_future_visits` and :func:`~retentionrl.simulators.fidelity.bgnbd.expected_future_visits`."""


class CustomerValues(NamedTuple):
    """One value per customer, and which customers got the stated fallback instead of the model's formula."""

    value: np.ndarray
    fallback: np.ndarray

    @property
    def n_fallback(self) -> int:
        """How many customers got the fallback."""
        return int(self.fallback.sum())


def _rfm(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, t_x, T)`` as float arrays, checked: same length, finite, ``x >= 0``, ``0 <= t_x <= T``, ``T > 0``."""
    x, t_x, T = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (x, t_x, T))
    if not x.size == t_x.size == T.size:
        raise ValueError(f"frequency, recency and T have {x.size}, {t_x.size} and {T.size} customers")
    for name, bad in (
        ("frequency, recency or T is not finite", ~(np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T))),
        ("frequency < 0", x < 0),
        ("recency < 0", t_x < 0),
        ("recency > T", t_x > T),
        ("T <= 0", T <= 0),
    ):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name} for {int(bad.sum())} customers, first at row {i}: x={x[i]}, t_x={t_x[i]}, T={T[i]}"
            )
    return x, t_x, T


# --- Pareto/NBD -------------------------------------------------------------------------------------------------


class _CheckedParetoNBDFitter(ParetoNBDFitter):
    """``lifetimes.ParetoNBDFitter`` that starts at a fixed point and reports non-convergence.

    lifetimes' own ``_fit`` starts Nelder-Mead from a draw of NumPy's global generator and keeps
    whatever it stops at; this one starts at 1 (time scaled so the oldest customer's age is 1)
    and raises ``ConvergenceError`` when the optimizer reports failure or a non-finite
    likelihood, so that :func:`fit_pareto_nbd` can move up the penalizer ladder.
    ``iterative_fitting`` (restarts from random points) is ignored.
    """

    def _fit(
        self,
        minimizing_function_args: tuple,
        iterative_fitting: int,
        initial_params: np.ndarray | None,
        params_size: int,
        disp: bool,
        tol: float = 1e-6,
        fit_method: str = "Nelder-Mead",
        maxiter: int = 2000,
        **kwargs: Any,
    ) -> tuple[np.ndarray, float]:
        output = minimize(
            self._negative_log_likelihood,
            x0=np.ones(params_size) if initial_params is None else initial_params,
            args=minimizing_function_args,
            method=fit_method,
            tol=tol,
            options={"disp": disp, "maxiter": maxiter, **kwargs},
        )
        if not (output.success and np.isfinite(output.fun)):
            raise ConvergenceError(f"Pareto/NBD: {output.message} (negative log-likelihood {output.fun})")
        return output.x, output.fun


def fit_pareto_nbd(
    frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, penalizer: float = 0.0
) -> ParetoNBDFitter:
    """A fitted ``lifetimes.ParetoNBDFitter`` (parameters ``r, alpha, s, beta`` in ``params_``).

    Deterministic (a fixed start); when Nelder-Mead does not converge at ``penalizer``, larger
    L2 penalties are tried in turn
    (:func:`~retentionrl.simulators.fidelity.bgnbd.fit_with_penalizer_ladder`).
    """
    return fit_with_penalizer_ladder(_CheckedParetoNBDFitter, _rfm(frequency, recency, T), penalizer, "Pareto/NBD")


def _pareto_params(model: ParetoNBDFitter) -> tuple[float, float, float, float]:
    r, alpha, s, beta = (float(model.params_[k]) for k in ("r", "alpha", "s", "beta"))
    return r, alpha, s, beta


def _log_tail_integral(
    y: np.ndarray, big: float, small: float, e_big: float | np.ndarray, e_small: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:math:`\\log I(y)` by the Euler-transformed closed form (module docstring), and where it
    is valid (scipy's :math:`{}_2F_1` finite and inside its bounds)."""
    c = e_big + e_small - 1.0
    z = (big - small) / (big + y)
    h = hyp2f1(1.0, e_big, c + 1.0, z)
    valid = np.isfinite(h) & (h >= 1.0 - 1e-12) & (h <= (big + y) / (small + y) * (1.0 + 1e-12))
    with np.errstate(invalid="ignore", divide="ignore"):
        log_i = -np.log(c) - c * np.log(big + y) + (1.0 - e_small) * np.log((small + y) / (big + y)) + np.log(h)
    return log_i, valid


def _log_integral_by_quadrature(a: float, alpha: float, b: float, beta: float, t_x: float, T: float) -> float:
    """:math:`\\log \\int_{t_x}^T (\\alpha + \\tau)^{-a} (\\beta + \\tau)^{-b} d\\tau` by adaptive
    quadrature of the integrand divided by its value at :math:`t_x` (its maximum), with break
    points at multiples of its initial decay length."""

    def log_f(tau: float) -> float:
        return -a * np.log(alpha + tau) - b * np.log(beta + tau)

    top = log_f(t_x)
    width = 1.0 / (a / (alpha + t_x) + b / (beta + t_x))
    points = [t_x + k * width for k in (1.0, 10.0, 100.0, 1000.0) if t_x + k * width < T]
    value, _ = quad(
        lambda tau: np.exp(log_f(tau) - top), t_x, T, points=points or None, epsabs=0.0, epsrel=1e-10, limit=500
    )
    return top + float(np.log(value))


def pareto_prob_alive(model: ParetoNBDFitter, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> CustomerValues:
    """:math:`P(\\text{alive at } T \\mid x, t_x, T)` under a fitted Pareto/NBD, finite for every customer.

    Evaluated in log space (module docstring); ``fallback`` marks the customers whose
    :math:`D` came from quadrature because the closed form failed (scipy's :math:`{}_2F_1`
    non-finite or out of its bounds, or :math:`I(t_x) - I(T)` lost to rounding).
    """
    x, t_x, T = _rfm(x, t_x, T)
    r, alpha, s, beta = _pareto_params(model)
    a = r + x  # exponent of alpha + tau
    # (M, m, e_M, e): the larger of alpha and beta, the smaller, and their exponents
    args: tuple[float, float, np.ndarray | float, np.ndarray | float] = (
        (alpha, beta, a, s + 1.0) if alpha >= beta else (beta, alpha, s + 1.0, a)
    )
    log_i_tx, ok_tx = _log_tail_integral(t_x, *args)
    log_i_T, ok_T = _log_tail_integral(T, *args)
    recent = t_x == T  # D = 0: alive for sure
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = log_i_T - log_i_tx  # <= 0
        log_d = log_i_tx + np.where(gap > -np.log(2.0), np.log(-np.expm1(gap)), np.log1p(-np.exp(gap)))
    fallback = ~recent & ~(ok_tx & ok_T & np.isfinite(log_d))
    for i in np.flatnonzero(fallback):
        log_d[i] = _log_integral_by_quadrature(a[i], alpha, s + 1.0, beta, t_x[i], T[i])
    log_d[recent] = -np.inf
    log_odds_dead = np.log(s) + a * np.log(alpha + T) + s * np.log(beta + T) + log_d
    return CustomerValues(np.exp(-np.logaddexp(0.0, log_odds_dead)), fallback)


def _pareto_lifetime_in_window(s: float, beta_T: np.ndarray, days: float) -> np.ndarray:
    """:math:`E[\\min(\\omega, t)]` for :math:`\\omega \\sim Exp(\\mu)`, :math:`\\mu \\sim Gamma(s, \\beta + T)`:
    :math:`(\\beta + T) L\\, \\operatorname{exprel}(-(s - 1) L)`, :math:`L = \\log(1 + t / (\\beta + T))`."""
    log_ratio = np.log1p(float(days) / beta_T)
    return beta_T * log_ratio * exprel(-(s - 1.0) * log_ratio)


def pareto_expected_future_visits(
    model: ParetoNBDFitter, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, days: float
) -> np.ndarray:
    """E[visits within ``days`` after ``T``] under a fitted Pareto/NBD, finite for every customer.

    :math:`P(\\text{alive})\\,\\frac{r + x}{\\alpha + T}\\, E[\\min(\\omega, t) \\mid \\text{alive}]`
    (module docstring). Where lifetimes' ``conditional_expected_number_of_purchases_up_to_time``
    is finite the two agree (tested); the customers whose :math:`P(\\text{alive})` took the
    quadrature fallback are ``pareto_prob_alive(model, x, t_x, T).fallback``.
    """
    alive = pareto_prob_alive(model, x, t_x, T).value
    x, _, T = _rfm(x, t_x, T)
    r, alpha, s, beta = _pareto_params(model)
    return alive * (r + x) / (alpha + T) * _pareto_lifetime_in_window(s, beta + T, days)


def pareto_sample_future_visits(
    model: ParetoNBDFitter,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    days: float,
    replicas: int,
    seed: int = 0,
) -> np.ndarray:
    """Draws ``(n, replicas)`` of each customer's visits within ``days`` after ``T`` from a fitted
    Pareto/NBD's predictive law (module docstring): alive with :math:`P(\\text{alive})`, then
    :math:`\\lambda \\sim Gamma(r + x, \\alpha + T)`, :math:`\\mu \\sim Gamma(s, \\beta + T)`,
    :math:`\\omega \\sim Exp(\\mu)`, :math:`N \\sim Poisson(\\lambda \\min(\\omega, t))`. Their mean
    tends to :func:`pareto_expected_future_visits`."""
    alive_p = pareto_prob_alive(model, x, t_x, T).value
    x, _, T = _rfm(x, t_x, T)
    r, alpha, s, beta = _pareto_params(model)
    rng = np.random.default_rng(seed)
    shape = (x.size, int(replicas))
    alive = rng.random(shape) < alive_p[:, None]
    lam = rng.gamma(r + x[:, None], 1.0 / (alpha + T[:, None]), size=shape)
    mu = rng.gamma(s, 1.0 / (beta + T[:, None]), size=shape)
    with np.errstate(divide="ignore"):  # mu drawn as 0 (underflow): a lifetime without end
        lifetime = rng.exponential(1.0 / mu)
    visits = rng.poisson(lam * np.minimum(lifetime, float(days)))
    return np.where(alive, visits, 0).astype(np.float64)


# --- Gamma-Gamma ------------------------------------------------------------------------------------------------


def _repeat_buyers(frequency: np.ndarray, monetary_value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, m, mask)``: float arrays, and the customers Gamma-Gamma applies to (``x >= 1`` and ``m > 0``)."""
    x, m = np.asarray(frequency, dtype=np.float64), np.asarray(monetary_value, dtype=np.float64)
    if x.shape != m.shape:
        raise ValueError(f"frequency and monetary_value have shapes {x.shape} and {m.shape}")
    if not (np.isfinite(x).all() and np.isfinite(m).all()):
        raise ValueError("frequency or monetary_value is not finite")
    return x, m, (x >= 1) & (m > 0)


def fit_gamma_gamma(frequency: np.ndarray, monetary_value: np.ndarray, penalizer: float = 0.0) -> GammaGammaFitter:
    """A fitted ``lifetimes.GammaGammaFitter`` (parameters ``p, q, v``), on the customers with at
    least one repeat purchase and a positive mean spend over them (the model's support; the
    others are left out of the fit).

    ``monetary_value`` is the mean spend per repeat purchase (lifetimes' definition: the first
    purchase excluded). The model assumes it independent of ``frequency``
    (:func:`frequency_spend_correlation`). Penalizer ladder as
    :func:`~retentionrl.simulators.fidelity.bgnbd.fit_with_penalizer_ladder`.
    """
    x, m, repeat = _repeat_buyers(frequency, monetary_value)
    if repeat.sum() < 2:
        raise ValueError(
            f"Gamma-Gamma needs 2 customers with repeat purchases and spend, got {int(repeat.sum())} of {x.size}"
        )
    return fit_with_penalizer_ladder(GammaGammaFitter, (x[repeat], m[repeat]), penalizer, "Gamma-Gamma")


def expected_spend_per_visit(
    model: GammaGammaFitter, frequency: np.ndarray, monetary_value: np.ndarray
) -> CustomerValues:
    """Expected mean spend per future purchase of every customer under a fitted Gamma-Gamma.

    Customers with a repeat purchase and positive mean spend get the conditional expectation
    :math:`E[\\zeta \\mid x, \\bar m]` (module docstring); the others (no repeat purchase, or
    repeats without spend, outside the model's support) get the stated fallback, the
    population mean :math:`p v / (q - 1)`, and are marked in ``fallback``.

    :raises ValueError: ``q <= 1`` (the population mean is infinite; refit with a penalizer).
    """
    x, m, repeat = _repeat_buyers(frequency, monetary_value)
    p, q, v = (float(model.params_[k]) for k in ("p", "q", "v"))
    if q <= 1.0:
        raise ValueError(f"Gamma-Gamma q = {q} <= 1: the mean spend p v / (q - 1) is not finite")
    conditional = model.conditional_expected_average_profit(np.where(repeat, x, 1.0), np.where(repeat, m, 1.0))
    value = np.where(repeat, np.asarray(conditional, dtype=np.float64), p * v / (q - 1.0))
    return CustomerValues(value, ~repeat)


def frequency_spend_correlation(frequency: np.ndarray, monetary_value: np.ndarray) -> float:
    """Pearson correlation of ``frequency`` and ``monetary_value`` over the customers Gamma-Gamma
    is fitted on; near 0 supports its assumption that spend is independent of frequency."""
    x, m, repeat = _repeat_buyers(frequency, monetary_value)
    if repeat.sum() < 3:
        raise ValueError(f"a correlation needs at least 3 repeat customers with spend, got {int(repeat.sum())}")
    return float(np.corrcoef(x[repeat], m[repeat])[0, 1])


def calibration_holdout_spend_summary(
    visits: pd.DataFrame, cutoff: pd.Timestamp | str, holdout_end: pd.Timestamp | str
) -> pd.DataFrame:
    """:func:`~retentionrl.simulators.fidelity.bgnbd.calibration_holdout_summary` with spend.

    :param visits: a visit table (``user_id``, ``start``, ``spend``), any order, as
        :func:`retentionrl.interactions.visits.build_visits` makes.
    :returns: its columns, plus ``monetary_value_cal`` (mean spend of the repeat calibration
        visits, the first visit excluded; 0 without repeats, as in lifetimes) and
        ``spend_holdout`` (total spend in ``[cutoff, holdout_end)``).
    """
    if "spend" not in visits.columns:
        raise ValueError(f"the visit table has no 'spend' column (columns: {list(visits.columns)})")
    summary = calibration_holdout_summary(visits, cutoff, holdout_end)
    cutoff, holdout_end = pd.Timestamp(cutoff), pd.Timestamp(holdout_end)
    start = visits["start"].to_numpy().astype("datetime64[ns]").view("int64")
    table = pd.DataFrame(
        {"user_id": visits["user_id"].to_numpy(), "start": start, "spend": visits["spend"].to_numpy(np.float64)}
    ).sort_values(["user_id", "start"], kind="stable")
    cal = table[table["start"] < cutoff.value]
    repeat = cal[cal.groupby("user_id", sort=False).cumcount().to_numpy() > 0]
    repeat_spend = repeat.groupby("user_id")["spend"].sum().reindex(summary.index, fill_value=0.0).to_numpy()
    frequency = summary["frequency_cal"].to_numpy()
    summary["monetary_value_cal"] = np.divide(
        repeat_spend, frequency, out=np.zeros_like(repeat_spend), where=frequency > 0
    )
    hold = table[(table["start"] >= cutoff.value) & (table["start"] < holdout_end.value)]
    summary["spend_holdout"] = hold.groupby("user_id")["spend"].sum().reindex(summary.index, fill_value=0.0).to_numpy()
    return summary


# --- Holdout comparison -----------------------------------------------------------------------------------------


def score_forecasts(actual: np.ndarray, forecasts: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Score every model on every customer.

    :param actual: each customer's holdout count (or spend), finite.
    :param forecasts: model name -> each customer's forecast, in the order of ``actual``.
    :returns: one row per model: ``mae`` and ``rmse`` per customer, ``total_predicted``,
        ``total_actual`` and ``relative_error_total`` (predicted / actual - 1).
    :raises ValueError: a forecast of another length than ``actual``, or non-finite for any
        customer, naming the model, the count and the number of customers (no model is ever
        scored on a subset).
    """
    actual = np.asarray(actual, dtype=np.float64)
    n = actual.size
    if not np.isfinite(actual).all():
        raise ValueError(f"actual is not finite for {int((~np.isfinite(actual)).sum())} of {n} customers")
    rows = {}
    for name, forecast in forecasts.items():
        predicted = np.asarray(forecast, dtype=np.float64)
        if predicted.shape != actual.shape:
            raise ValueError(f"model {name!r} forecasts {predicted.size} customers, actual has {n}")
        missing = int((~np.isfinite(predicted)).sum())
        if missing:
            raise ValueError(f"model {name!r} has no finite forecast for {missing} of {n} customers")
        error = predicted - actual
        total_predicted, total_actual = float(predicted.sum()), float(actual.sum())
        rows[name] = {
            "mae": float(np.abs(error).mean()),
            "rmse": float(np.sqrt(np.mean(error**2))),
            "total_predicted": total_predicted,
            "total_actual": total_actual,
            "relative_error_total": total_predicted / total_actual - 1.0 if total_actual else np.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def expected_weekly_visits(
    expect_fn: ExpectFn, model: Any, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, holdout_days: float
) -> np.ndarray:
    """``(n, weeks)`` expected visits of each customer in each week of the holdout window.

    Week :math:`k` is :math:`(T + 7(k - 1), T + \\min(7k, \\text{holdout\\_days})]`, the last one
    partial; its expectation is the difference of ``expect_fn``'s cumulative expectations at
    its ends, so the weeks sum to the whole window's expectation.
    """
    if holdout_days <= 0:
        raise ValueError(f"holdout_days must be positive, got {holdout_days}")
    ends = np.minimum(7.0 * np.arange(1, int(np.ceil(holdout_days / 7.0)) + 1), float(holdout_days))
    cumulative = np.stack([np.asarray(expect_fn(model, x, t_x, T, float(end)), dtype=np.float64) for end in ends], 1)
    return np.diff(cumulative, axis=1, prepend=0.0)


def holdout_weekly_visits(
    visits: pd.DataFrame, cutoff: pd.Timestamp | str, holdout_end: pd.Timestamp | str
) -> np.ndarray:
    """Visits in each week of ``[cutoff, holdout_end)`` (the last week partial) by the customers
    with a visit before ``cutoff`` (those the calibration summary forecasts)."""
    cutoff, holdout_end = pd.Timestamp(cutoff), pd.Timestamp(holdout_end)
    start = visits["start"].to_numpy().astype("datetime64[ns]").view("int64")
    users = visits["user_id"].to_numpy()
    known = pd.Series(users).isin(pd.unique(users[start < cutoff.value])).to_numpy()
    hold = known & (start >= cutoff.value) & (start < holdout_end.value)
    n_weeks = int(np.ceil((holdout_end.value - cutoff.value) / (7 * DAY_NS)))
    week = (start[hold] - cutoff.value) // (7 * DAY_NS)
    return np.bincount(week, minlength=n_weeks).astype(np.float64)


def weekly_curve_mae(actual_weekly: np.ndarray, predicted_weekly: np.ndarray) -> float:
    """Mean over weeks of :math:`|\\text{actual} - \\text{predicted}|` of two weekly curves (totals over customers).

    :raises ValueError: the curves differ in length or are not finite.
    """
    actual, predicted = np.asarray(actual_weekly, np.float64), np.asarray(predicted_weekly, np.float64)
    if actual.shape != predicted.shape or actual.ndim != 1:
        raise ValueError(f"weekly curves of shapes {actual.shape} and {predicted.shape}; need two of one length")
    if not (np.isfinite(actual).all() and np.isfinite(predicted).all()):
        raise ValueError("a weekly curve is not finite")
    return float(np.abs(actual - predicted).mean())
