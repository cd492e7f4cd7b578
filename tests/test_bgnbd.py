"""BG/NBD's expected future visits: the closed form where it is finite, a finite number where it is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter

from retentionrl.simulators.fidelity.bgnbd import (
    expected_future_visits,
    fit_bgnbd,
    sample_future_visits,
    series_expected_visits,
)
from tests.conftest import btyd_customers


def _shoppers(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return btyd_customers(n, seed, mean_repeats=1.5)


def test_it_is_lifetimes_closed_form_where_that_is_finite() -> None:
    x, recency, T = _shoppers(2000, seed=0)
    model = fit_bgnbd(x, recency, T)
    closed = model.conditional_expected_number_of_purchases_up_to_time(92, x, recency, T)
    assert np.isfinite(closed).all()
    np.testing.assert_allclose(expected_future_visits(model, x, recency, T, 92), closed, rtol=1e-10)
    np.testing.assert_allclose(series_expected_visits(model, x, recency, T, 92), closed, rtol=1e-10)


def test_it_is_finite_and_right_where_the_closed_form_is_nan() -> None:
    model = BetaGeoFitter()
    model.params_ = pd.Series({"r": 0.5, "alpha": 20.0, "a": 0.3, "b": 0.4})  # a + b < 1: lifetimes' form breaks
    x, recency, T = (
        np.array([0.0, 0.0, 1.0, 3.0, 10.0]),
        np.array([0.0, 0.0, 40, 100, 290]),
        np.array([50.0, 200, 100, 150, 300]),
    )
    with np.errstate(all="ignore"):
        closed = model.conditional_expected_number_of_purchases_up_to_time(92, x, recency, T)
    assert np.isnan(closed[0])  # a shopper with one calibration visit
    expected = expected_future_visits(model, x, recency, T, 92)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(expected[1:], closed[1:], rtol=1e-10)
    np.testing.assert_allclose(series_expected_visits(model, x, recency, T, 92)[1:], closed[1:], rtol=1e-10)
    draws = sample_future_visits(model, x, recency, T, 92, replicas=100_000, seed=1)
    standard_error = draws.std(axis=1) / np.sqrt(draws.shape[1])
    assert (np.abs(draws.mean(axis=1) - expected) < 4 * standard_error).all()  # the predictive law's own mean
