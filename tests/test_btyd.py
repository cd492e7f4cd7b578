"""Pareto/NBD and Gamma-Gamma baselines, and the holdout scoring that never drops a customer."""

from __future__ import annotations

from pathlib import Path

import lifetimes
import numpy as np
import pandas as pd
import pytest
from lifetimes import ParetoNBDFitter

from retentionrl.simulators.fidelity.bgnbd import expected_future_visits, fit_bgnbd
from retentionrl.simulators.fidelity.btyd import (
    _log_integral_by_quadrature,
    calibration_holdout_spend_summary,
    expected_spend_per_visit,
    expected_weekly_visits,
    fit_gamma_gamma,
    fit_pareto_nbd,
    frequency_spend_correlation,
    holdout_weekly_visits,
    pareto_expected_future_visits,
    pareto_prob_alive,
    pareto_sample_future_visits,
    score_forecasts,
    weekly_curve_mae,
)
from tests.conftest import btyd_customers

TRUE = {"r": 0.6, "alpha": 80.0, "s": 0.5, "beta": 70.0}


def _pareto(**params: float) -> ParetoNBDFitter:
    model = ParetoNBDFitter()
    model.params_ = pd.Series(params)
    return model


def _simulate_pareto_nbd(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) from the Pareto/NBD process with :data:`TRUE`, ages uniform on 180-365 days."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], n)
    mu = rng.gamma(TRUE["s"], 1 / TRUE["beta"], n)
    T = rng.uniform(180, 365, n)
    active = np.minimum(rng.exponential(1 / mu), T)
    x = rng.poisson(lam * active).astype(float)
    t_x = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1), 0.0)  # the last of x uniform times
    return x, t_x, T


def _customers(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return btyd_customers(n, seed, mean_repeats=2.0)


def test_pareto_nbd_fit_recovers_the_simulated_population() -> None:
    # Tolerances are about 4 standard deviations of each quantity over 12 simulated data sets
    # of 4,000 customers (sd: r and alpha 7%, r / alpha 3.5%, survival 0.025). s and beta alone
    # are not checked: over a one-year window they lie on a likelihood ridge (fits ranged
    # s 0.34-0.92, beta 32-198) while the survival (beta / (beta + t))^s they imply is pinned.
    model = fit_pareto_nbd(*_simulate_pareto_nbd(4000, seed=0))
    r, alpha, s, beta = (model.params_[k] for k in ("r", "alpha", "s", "beta"))
    assert model.penalizer_coef == 0.0
    assert r == pytest.approx(TRUE["r"], rel=0.3) and alpha == pytest.approx(TRUE["alpha"], rel=0.3)
    assert r / alpha == pytest.approx(TRUE["r"] / TRUE["alpha"], rel=0.12)
    for t in (90.0, 180.0, 365.0):
        truth = (TRUE["beta"] / (TRUE["beta"] + t)) ** TRUE["s"]
        assert (beta / (beta + t)) ** s == pytest.approx(truth, abs=0.08)


@pytest.mark.parametrize(
    "params",
    [TRUE, {"r": 0.6, "alpha": 5.0, "s": 0.5, "beta": 500.0}, {"r": 2.0, "alpha": 300.0, "s": 1.5, "beta": 10.0}],
    ids=["alpha>beta", "alpha<<beta", "s>1"],
)
def test_pareto_expectation_is_lifetimes_where_that_is_finite(params: dict[str, float]) -> None:
    model = _pareto(**params)
    x, t_x, T = _customers(3000, seed=1)
    closed = model.conditional_expected_number_of_purchases_up_to_time(90, x, t_x, T)
    assert np.isfinite(closed).all()
    alive = pareto_prob_alive(model, x, t_x, T)
    assert alive.n_fallback == 0
    np.testing.assert_allclose(alive.value, model.conditional_probability_alive(x, t_x, T), rtol=1e-10)
    np.testing.assert_allclose(pareto_expected_future_visits(model, x, t_x, T, 90), closed, rtol=1e-10)


def test_pareto_expectation_is_finite_where_lifetimes_is_not() -> None:
    x, t_x, T = (np.array([1000.0, 200, 5]), np.array([50.0, 299.9, 1]), np.array([300.0, 300, 300]))
    # alpha << beta: lifetimes' 2F1(r + s + x, r + x; ...) overflows for x = 1000
    model = _pareto(r=0.6, alpha=5.0, s=0.5, beta=500.0)
    with np.errstate(all="ignore"):
        closed = model.conditional_expected_number_of_purchases_up_to_time(90, x, t_x, T)
    assert np.isnan(closed[0]) and np.isfinite(closed[1:]).all()
    expected = pareto_expected_future_visits(model, x, t_x, T, 90)
    assert np.isfinite(expected).all() and expected[0] == 0.0  # bought 1000 times, silent for 250 days: gone
    np.testing.assert_allclose(expected[1:], closed[1:], rtol=1e-10)
    assert pareto_prob_alive(model, x, t_x, T).n_fallback == 0  # the Euler-transformed 2F1 is bounded

    # s = 1: lifetimes divides 0 by 0 for every customer; the limit (beta + T) log(1 + t / (beta + T))
    near, at = _pareto(r=0.5, alpha=40.0, s=1.0 + 1e-9, beta=50.0), _pareto(r=0.5, alpha=40.0, s=1.0, beta=50.0)
    with np.errstate(all="ignore"):
        assert np.isnan(at.conditional_expected_number_of_purchases_up_to_time(90, x, t_x, T)).all()
    # rtol 1e-6: lifetimes' 1 - ratio^(s - 1) cancels to about 1e-7 at s - 1 = 1e-9
    np.testing.assert_allclose(
        pareto_expected_future_visits(at, x[1:], t_x[1:], T[1:], 90),
        near.conditional_expected_number_of_purchases_up_to_time(90, x[1:], t_x[1:], T[1:]),
        rtol=1e-6,
    )


def test_the_quadrature_fallback_is_counted_and_right() -> None:
    # alpha >> beta and x = 1000: scipy's 2F1(1, r + x; ...; z -> 1) is NaN for the first customer
    model = _pareto(r=0.6, alpha=2000.0, s=1.5, beta=1.0)
    x, t_x, T = np.array([1000.0, 1000, 10]), np.array([0.5, 250, 1]), np.array([300.0, 300, 300])
    with np.errstate(all="ignore"):
        closed = model.conditional_expected_number_of_purchases_up_to_time(90, x, t_x, T)
    assert np.isnan(closed[0])
    alive = pareto_prob_alive(model, x, t_x, T)
    assert alive.fallback.tolist() == [True, False, False] and alive.n_fallback == 1
    expected = pareto_expected_future_visits(model, x, t_x, T, 90)
    assert np.isfinite(expected).all() and 0 < expected[0] < 1e-50
    np.testing.assert_allclose(expected[1:], closed[1:], rtol=1e-10)
    # the quadrature agrees with the closed form where both exist (log of the integral D)
    r, alpha, s, beta = TRUE.values()
    xs, t_xs, Ts = _customers(5, seed=2)
    log_d = [_log_integral_by_quadrature(r + xi, alpha, s + 1, beta, ti, Ti) for xi, ti, Ti in zip(xs, t_xs, Ts)]
    odds = s * (alpha + Ts) ** (r + xs) * (beta + Ts) ** s * np.exp(log_d)
    np.testing.assert_allclose(1 / (1 + odds), pareto_prob_alive(_pareto(**TRUE), xs, t_xs, Ts).value, rtol=1e-9)


def test_pareto_predictive_draws_have_the_expectation_as_mean() -> None:
    model = _pareto(r=0.6, alpha=20.0, s=0.8, beta=30.0)
    x, t_x, T = np.array([0.0, 1, 4, 12, 12]), np.array([0.0, 20, 100, 290, 40]), np.array([60.0, 200, 150, 300, 300])
    draws = pareto_sample_future_visits(model, x, t_x, T, 90, replicas=200_000, seed=3)
    expected = pareto_expected_future_visits(model, x, t_x, T, 90)
    standard_error = draws.std(axis=1) / np.sqrt(draws.shape[1])
    # + 1e-6: the last customer (12 purchases, silent for 260 days) expects 1e-8 and draws only zeros
    assert (np.abs(draws.mean(axis=1) - expected) < 4 * standard_error + 1e-6).all()


def test_weekly_expectations_sum_to_the_window() -> None:
    x, t_x, T = _customers(200, seed=4)
    pareto = _pareto(**TRUE)
    bgnbd = fit_bgnbd(*_customers(2000, seed=5))
    for expect_fn, model in ((pareto_expected_future_visits, pareto), (expected_future_visits, bgnbd)):
        weekly = expected_weekly_visits(expect_fn, model, x, t_x, T, 30)  # weeks of 7, 7, 7, 7 and 2 days
        assert weekly.shape == (200, 5) and (weekly >= 0).all()
        np.testing.assert_allclose(weekly.sum(axis=1), expect_fn(model, x, t_x, T, 30), rtol=1e-9)
        np.testing.assert_allclose(weekly[:, 0], expect_fn(model, x, t_x, T, 7), rtol=1e-12)


def _simulate_spend(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x ~ Poisson(2) repeat purchases of Gamma(p=6, nu) spend, nu ~ Gamma(q=4, v=15): mean spend 30."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(2.0, n).astype(float)
    nu = rng.gamma(4.0, 1 / 15.0, n)
    mean_spend = np.where(x > 0, rng.gamma(6.0 * np.maximum(x, 1), 1 / (np.maximum(x, 1) * nu)), 0.0)
    return x, mean_spend, 6.0 / nu


def test_gamma_gamma_recovers_the_mean_spend_and_counts_the_fallback() -> None:
    x, m, zeta = _simulate_spend(5000, seed=6)
    model = fit_gamma_gamma(x, m)
    p, q, v = (model.params_[k] for k in ("p", "q", "v"))
    # the population mean p v / (q - 1) = 30; its sampling sd here is about 0.5
    assert p * v / (q - 1) == pytest.approx(30.0, rel=0.06)
    spend = expected_spend_per_visit(model, x, m)
    assert spend.n_fallback == int((x == 0).sum()) > 0
    np.testing.assert_allclose(spend.value[x == 0], p * v / (q - 1))
    repeat = x > 0
    np.testing.assert_allclose(spend.value[repeat], model.conditional_expected_average_profit(x[repeat], m[repeat]))
    # shrinkage toward the mean beats the raw average spend at predicting a customer's true mean
    assert np.mean((spend.value[repeat] - zeta[repeat]) ** 2) < np.mean((m[repeat] - zeta[repeat]) ** 2)
    assert abs(frequency_spend_correlation(x, m)) < 0.05  # simulated independent


def test_spend_summary_excludes_the_first_purchase() -> None:
    day = pd.Timestamp("2024-01-01")
    visits = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "a", "b", "c"],
            "start": [day + pd.Timedelta(days=d) for d in (5, 0, 2, 12)] + [day + pd.Timedelta(days=1)] * 2,
            "spend": [30.0, 100.0, 10.0, 7.0, 50.0, 0.0],
        }
    )
    visits.loc[5, "start"] = day + pd.Timedelta(days=11)  # c only comes in the holdout: not a calibration customer
    summary = calibration_holdout_spend_summary(visits, day + pd.Timedelta(days=10), day + pd.Timedelta(days=20))
    assert summary.index.tolist() == ["a", "b"]
    assert summary["frequency_cal"].tolist() == [2.0, 0.0]
    assert summary["monetary_value_cal"].tolist() == [20.0, 0.0]  # (10 + 30) / 2; the first 100 left out
    assert summary["spend_holdout"].tolist() == [7.0, 0.0]
    assert summary["frequency_holdout"].tolist() == [1.0, 0.0]
    weekly = holdout_weekly_visits(visits, day + pd.Timedelta(days=10), day + pd.Timedelta(days=20))
    assert weekly.tolist() == [1.0, 0.0]  # a's visit on day 12; c has no calibration visit


def test_score_forecasts_by_hand() -> None:
    actual = np.array([0.0, 2.0, 4.0])
    table = score_forecasts(actual, {"flat": np.array([2.0, 2.0, 2.0]), "exact": actual})
    assert table.loc["flat"].to_dict() == pytest.approx(
        {"mae": 4 / 3, "rmse": np.sqrt(8 / 3), "total_predicted": 6.0, "total_actual": 6.0, "relative_error_total": 0.0}
    )
    assert table.loc["exact", "mae"] == 0.0
    assert weekly_curve_mae(np.array([10.0, 8.0]), np.array([9.0, 11.0])) == 2.0


@pytest.mark.parametrize(
    ("forecast", "message"),
    [
        (np.array([1.0, np.nan, 2.0, np.inf]), "model 'pareto' has no finite forecast for 2 of 4 customers"),
        (np.array([1.0, 2.0, 3.0]), "model 'pareto' forecasts 3 customers, actual has 4"),
    ],
    ids=["nan", "length"],
)
def test_score_forecasts_refuses_to_drop_customers(forecast: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score_forecasts(np.ones(4), {"bgnbd": np.ones(4), "pareto": forecast})


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        ([1.0], [5.0], [4.0], "recency > T for 1 customers, first at row 0"),
        ([-1.0], [0.0], [4.0], "frequency < 0"),
        ([1.0], [np.nan], [4.0], "not finite"),
        ([1.0, 2.0], [1.0], [4.0], "have 2, 1 and 1 customers"),
    ],
)
def test_invalid_rfm_is_refused(x: list[float], t_x: list[float], T: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pareto_prob_alive(_pareto(**TRUE), np.array(x), np.array(t_x), np.array(T))


def test_cdnow_holdout_every_customer_forecast() -> None:
    # CDNOW (ships with lifetimes): 23,570 customers' purchases, first ones in 1997 Q1. Visits are
    # purchase days; calibration 1997-01-01..1997-09-30 (39 weeks), holdout the next 39 weeks.
    raw = pd.read_csv(
        Path(lifetimes.__file__).parent / "datasets" / "CDNOW_master.txt",
        sep=r"\s+",
        dtype={"customer_id": str, "date": str},
    )
    raw["start"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    visits = raw.groupby(["customer_id", "start"], as_index=False)["dollar_value"].sum()
    visits.columns = ["user_id", "start", "spend"]
    cutoff, end = "1997-10-01", "1998-07-01"
    summary = calibration_holdout_spend_summary(visits, cutoff, end)
    assert len(summary) == 23_570
    x, t_x, T = (summary[c].to_numpy() for c in ("frequency_cal", "recency_cal", "T_cal"))
    pareto, bgnbd = fit_pareto_nbd(x, t_x, T), fit_bgnbd(x, t_x, T)
    forecasts = {
        "pareto_nbd": pareto_expected_future_visits(pareto, x, t_x, T, 273),
        "bgnbd": expected_future_visits(bgnbd, x, t_x, T, 273),
    }
    table = score_forecasts(summary["frequency_holdout"].to_numpy(), forecasts)  # raises if any is missing
    assert table.loc[:, "total_actual"].tolist() == [19_684.0, 19_684.0]
    assert (table["relative_error_total"].abs() < 0.25).all()  # both under-forecast by about 15%
    assert pareto_prob_alive(pareto, x, t_x, T).n_fallback == 0
    weekly = expected_weekly_visits(pareto_expected_future_visits, pareto, x, t_x, T, 273).sum(axis=0)
    actual_weekly = holdout_weekly_visits(visits, cutoff, end)
    assert actual_weekly.sum() == 19_684.0 and weekly.sum() == pytest.approx(forecasts["pareto_nbd"].sum())
    assert weekly_curve_mae(actual_weekly, weekly) < 0.25 * actual_weekly.mean()
    spend_model = fit_gamma_gamma(x, summary["monetary_value_cal"])
    spend = expected_spend_per_visit(spend_model, x, summary["monetary_value_cal"])
    monetary = summary["monetary_value_cal"].to_numpy()
    # no repeat purchase, or (one customer) repeat purchases of $0
    assert spend.fallback.tolist() == ((x == 0) | (monetary <= 0)).tolist() and spend.n_fallback == 14_120
    assert np.isfinite(spend.value).all()
