"""Churn-or-return law: likelihood by hand, targets from a visit table, sampling by law."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from retentionrl.simulators.learned.hazard import (
    empirical_hazard,
    log_likelihood,
    sample_gap_days,
    survival,
    survival_targets,
)

HAZARD = torch.tensor([0.5, 0.25, 0.2], dtype=torch.float64)
NO_CHURN = -60.0  # churn logit of pi = 1e-26: the plain hazard
LOGITS = torch.cat([torch.tensor([NO_CHURN], dtype=torch.float64), torch.log(HAZARD / (1 - HAZARD))])
CHURN = 0.2
WITH_CHURN = torch.cat([torch.tensor([np.log(CHURN / (1 - CHURN))], dtype=torch.float64), LOGITS[1:]])


@pytest.mark.parametrize(
    ("index", "event", "expected"),
    [
        (1, True, 0.5 * 0.25),  # returned on day 2: S(1) h_2
        (0, True, 0.5),  # returned on day 1: h_1
        (3, False, 0.5 * 0.75 * 0.8),  # no return within H = 3 (churn): S(3)
        (1, False, 0.5),  # censored after 1.7 days observed: S(1)
        (0, False, 1.0),  # censored after 0.4 days: S(0) = 1
    ],
)
def test_log_likelihood_matches_hand_computed_values(index, event, expected):
    ll = log_likelihood(LOGITS[None], torch.tensor([index]), torch.tensor([event]))
    assert ll.item() == pytest.approx(np.log(expected), rel=1e-12)


@pytest.mark.parametrize(
    ("index", "event", "expected"),
    [
        (1, True, 0.8 * 0.5 * 0.25),  # stayed (1 - pi), returned on day 2
        (3, False, 0.2 + 0.8 * 0.5 * 0.75 * 0.8),  # churned after the visit, or no return within H
        (1, False, 0.2 + 0.8 * 0.5),  # censored after 1 day: churned, or not back yet
        (0, False, 1.0),
    ],
)
def test_log_likelihood_with_a_churn_probability(index, event, expected):
    ll = log_likelihood(WITH_CHURN[None], torch.tensor([index]), torch.tensor([event]))
    assert ll.item() == pytest.approx(np.log(expected), rel=1e-12)
    s = survival(WITH_CHURN).numpy()
    np.testing.assert_allclose(s, 0.2 + 0.8 * np.cumprod([0.5, 0.75, 0.8]), rtol=1e-12)


def test_survival_targets_of_returns_churn_and_censoring():
    # the last: two visits at one timestamp (two baskets paid one after the other), a return on day 1
    gap = np.array([1.5, 3.0, np.nan, np.nan, np.nan, 0.01, 0.0])
    churned = np.array([False, False, True, False, False, False, False])
    observed = np.array([50.0, 50.0, 50.0, 1.7, 0.4, 9.0, 9.0])
    index, event = survival_targets(gap, churned, observed, 3)
    np.testing.assert_array_equal(index, [1, 2, 3, 1, 0, 0, 0])
    np.testing.assert_array_equal(event, [True, True, False, False, False, True, True])


@pytest.mark.parametrize(
    ("gap", "horizon", "match"),
    [
        ([-0.5], 3, r"return gaps must lie in \[0, 3\]"),
        ([3.5], 3, "3.5"),
        ([1.0], 0, "horizon_days"),
        ([1.0], 2.5, "horizon_days"),
    ],
)
def test_survival_targets_reject_bad_input(gap, horizon, match):
    with pytest.raises(ValueError, match=match):
        survival_targets(np.array(gap), np.array([False]), np.array([1.0]), horizon)


def test_sampled_gaps_follow_the_law():
    gen = torch.Generator().manual_seed(1)
    logits = torch.cat(
        [
            torch.tensor([-2.0], dtype=torch.float64),  # churn 12%
            torch.randn(10, generator=gen, dtype=torch.float64) - 1.5,
        ]
    )
    n = 200_000
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    gaps = sample_gap_days(logits.expand(n, -1), u).numpy()
    s = survival(logits).numpy()
    probs = np.r_[1 - s[0], s[:-1] - s[1:], s[-1]]  # days 1..H, then churn
    observed = np.r_[np.bincount(gaps[np.isfinite(gaps)].astype(int), minlength=11)[1:], np.isinf(gaps).sum()]
    assert set(np.unique(gaps[np.isfinite(gaps)])) <= set(range(1, 11))
    assert chisquare(observed, probs * n).pvalue > 1e-3


def test_zero_and_certain_hazards_sample_churn_and_day_one():
    logits = torch.tensor([[-50.0, -50.0, -50.0], [-50.0, 50.0, -50.0], [-50.0, -50.0, 50.0], [50.0, 50.0, 50.0]])
    gaps = sample_gap_days(logits, torch.tensor([0.5, 0.5, 0.5, 0.5]))
    assert torch.isinf(gaps[0]) and gaps[1] == 1 and gaps[2] == 2 and torch.isinf(gaps[3])  # last: churned


def test_empirical_hazard_is_kaplan_meiers_by_hand():
    # returned on day 1, returned on day 2, censored after 2 days, no return within H = 3
    hazard = empirical_hazard(np.array([0, 1, 2, 3]), np.array([True, True, False, False]), 3)
    np.testing.assert_allclose(hazard, [1 / 4, 1 / 3, 1e-4])


def test_gaps_drawn_after_a_day_follow_the_conditional_law():
    gen = torch.Generator().manual_seed(2)
    logits = torch.cat(
        [torch.tensor([-1.0], dtype=torch.float64), torch.randn(10, generator=gen, dtype=torch.float64) - 1.0]
    )
    n, m = 200_000, 3
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    gaps = sample_gap_days(logits.expand(n, -1), u, torch.full((n,), m)).numpy()
    s = survival(logits).numpy()
    probs = np.r_[s[m - 1 : -1] - s[m:], s[-1]] / s[m - 1]  # days m+1..H, then churn, given no return by day m
    observed = np.r_[np.bincount(gaps[np.isfinite(gaps)].astype(int), minlength=11)[m + 1 :], np.isinf(gaps).sum()]
    assert gaps[np.isfinite(gaps)].min() > m
    assert chisquare(observed, probs * n).pvalue > 1e-3
