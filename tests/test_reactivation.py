"""The dormancy law: spells read from a log, maximum likelihood, conditional sampling, and its
place in a fitted simulator's card."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retentionrl.interactions.trajectories import add_trajectories
from retentionrl.simulators.learned.reactivation import (
    NEVER_REACTIVATE,
    ReactivationLaw,
    dormancy_spells,
    fit_reactivation,
)


def _lomax_spells(law: ReactivationLaw, n: int, window: float, seed: int) -> pd.DataFrame:
    """Spells drawn from ``law``, each observed for a uniform share of ``window`` days."""
    rng = np.random.default_rng(seed)
    visits = rng.integers(1, 20, n)
    days = law.sample(visits, rng)
    observed = rng.uniform(0.0, window, n)
    return pd.DataFrame({"visits": visits, "days": np.minimum(days, observed), "event": days <= observed})


def test_spells_start_h_days_after_the_last_visit_and_end_at_the_next_lifetime_or_the_log_end():
    day = pd.Timedelta("1D")
    t0 = pd.Timestamp("2024-01-01")
    visits = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 3],
            # user 1: two visits, quiet 50 days (> H = 10), back; user 2: one visit, dormant
            # until the log ends; user 3: too recent to have churned (censored, no spell)
            "start": pd.to_datetime([t0, t0 + 3 * day, t0 + 53 * day, t0, t0 + 95 * day]).as_unit("ns"),
        }
    )  # add_trajectories reads nanoseconds, as build_visits writes them
    log_end = t0 + 100 * day
    spells = dormancy_spells(add_trajectories(visits, log_end, horizon_days=10), log_end, 10)
    # user 1: dormant from day 13, back on day 53; after it, dormant from 63 to the end (100);
    # user 2: dormant from day 10 to the end
    assert spells["visits"].tolist() == [2, 1, 1]
    np.testing.assert_allclose(spells["days"], [40.0, 37.0, 90.0])
    assert spells["event"].tolist() == [True, False, False]


def test_maximum_likelihood_recovers_the_law_it_was_drawn_from():
    truth = ReactivationLaw(shape=0.6, scale=40.0, coef=0.5)
    fitted = fit_reactivation(_lomax_spells(truth, 40_000, window=400.0, seed=0))
    # 40,000 spells censored at up to 400 days: standard errors of a few percent; the
    # tolerances are about three of them
    assert fitted.shape == pytest.approx(truth.shape, rel=0.15)
    assert fitted.scale == pytest.approx(truth.scale, rel=0.2)
    assert fitted.coef == pytest.approx(truth.coef, abs=0.08)
    assert fitted.spells == 40_000 and 0 < fitted.reactivations < 40_000
    days = np.array([10.0, 90.0, 300.0])
    np.testing.assert_allclose(fitted.survival(days, 5), truth.survival(days, 5), atol=0.02)


def test_a_log_without_reactivation_gives_a_law_under_which_nobody_returns():
    spells = pd.DataFrame({"visits": [1, 3], "days": [50.0, 20.0], "event": [False, False]})
    law = fit_reactivation(spells)
    assert law.shape == 0.0 and law.spells == 2 and law.reactivations == 0 and law.exposure_days == 70.0
    assert np.all(np.isinf(law.sample(np.array([1, 5]), np.random.default_rng(0))))
    assert np.all(np.isinf(NEVER_REACTIVATE.sample(np.ones(3), np.random.default_rng(0))))


def test_sampling_given_a_dormancy_so_far_follows_the_conditional_survival():
    law = ReactivationLaw(shape=0.8, scale=30.0, coef=0.3)
    rng = np.random.default_rng(1)
    visits, already = np.full(200_000, 4.0), 60.0
    days = law.sample(visits, rng, already)
    assert days.min() >= already
    for d in (70.0, 120.0, 400.0):
        expected = law.survival(d, 4.0) / law.survival(already, 4.0)
        assert np.mean(days > d) == pytest.approx(expected, abs=0.005)  # 3 standard errors at n = 200,000


def test_gradient_of_the_likelihood_matches_finite_differences():
    spells = _lomax_spells(ReactivationLaw(shape=0.5, scale=20.0, coef=0.2), 500, window=200.0, seed=2)
    fitted = fit_reactivation(spells)
    # at the optimum every partial derivative of the log-likelihood is 0: perturbing any
    # parameter lowers it (a sign error in the gradient moves L-BFGS-B away from here)
    d, e, z = spells["days"].to_numpy(), spells["event"].to_numpy(), np.log1p(spells["visits"].to_numpy())

    def loglik(shape: float, scale: float, coef: float) -> float:
        k = shape * np.exp(coef * z)
        return float(np.sum(np.log(k[e]) - np.log(scale + d[e])) - np.sum(k * np.log1p(d / scale)))

    best = loglik(fitted.shape, fitted.scale, fitted.coef)
    for delta in ((1.02, 1, 0), (0.98, 1, 0), (1, 1.02, 0), (1, 0.98, 0), (1, 1, 0.02), (1, 1, -0.02)):
        assert loglik(fitted.shape * delta[0], fitted.scale * delta[1], fitted.coef + delta[2]) < best
