"""Ignored showings: counted per arm and per trajectory from logged visits, and kept the same
way visit by visit for simulated shoppers."""

from __future__ import annotations

import numpy as np
import pytest

from retentionrl.simulators.learned.exposure import IgnoredShowings, ignored_showings_from_visits


def test_logged_visits_count_each_arms_earlier_ignored_showings_in_their_own_trajectory():
    # trajectory A: arm 0 ignored, arm 0 clicked, arm 1 ignored, arm 0 ignored, arm 0 (any)
    # trajectory B: arm 1 ignored, no logged action ignored (counts for no arm), arm 1
    arm = np.array([0, 0, 1, 0, 0, 1, 2, 1])
    ignored = np.array([True, False, True, True, False, True, True, False])
    start = np.array([True, False, False, False, False, True, False, False])
    got = ignored_showings_from_visits(arm, ignored, start, n_arms=2)
    counts = np.array([[0, 0], [1, 0], [1, 0], [1, 1], [2, 1], [0, 0], [0, 1], [0, 1]])
    np.testing.assert_array_equal(got, np.log1p(counts).astype(np.float32))


def test_the_batched_tracker_gives_the_logged_values_of_the_same_visits():
    rng = np.random.default_rng(0)
    n, k, n_arms = 5, 6, 3
    arms, clicks, buys = rng.integers(0, n_arms, (k, n)), rng.random((k, n)) < 0.3, rng.random((k, n)) < 0.2
    tracker = IgnoredShowings(n_arms)
    tracker.reset(n)
    online = []
    for j in range(k):
        online.append(tracker.features())
        tracker.record(arms[j], clicks[j], buys[j])
    by_shopper = lambda a: np.swapaxes(a, 0, 1).reshape(n * k, *a.shape[2:])  # noqa: E731
    logged = ignored_showings_from_visits(
        by_shopper(arms), by_shopper(~clicks & ~buys), np.arange(n * k) % k == 0, n_arms
    )
    np.testing.assert_array_equal(by_shopper(np.stack(online)), logged)
    assert logged.any()


def test_replaced_and_dropped_shoppers():
    tracker = IgnoredShowings(2)
    tracker.reset(3)
    tracker.record(np.array([0, 1, 1]), np.zeros(3), np.zeros(3))
    tracker.reset_rows(np.array([False, True, False]))
    np.testing.assert_array_equal(tracker.features(), np.log1p([[1, 0], [0, 0], [0, 1]]).astype(np.float32))
    tracker.keep_rows(np.array([True, False, True]))
    np.testing.assert_array_equal(tracker.features(), np.log1p([[1, 0], [0, 1]]).astype(np.float32))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="shape"):
        ignored_showings_from_visits(np.array([0, 1]), np.array([True]), np.array([True, False]), 2)
    with pytest.raises(ValueError, match="open a trajectory"):
        ignored_showings_from_visits(np.array([0]), np.array([True]), np.array([False]), 2)
    with pytest.raises(ValueError, match="n_arms"):
        IgnoredShowings(0)


def test_a_model_spec_with_the_exposure_input_counts_its_columns():
    from retentionrl.simulators.learned.sequence_model import ModelSpec

    assert ModelSpec(n_features=11 + 6, n_arms=3, horizon_days=9, exposure_input=True).n_action_features == 9
    with pytest.raises(ValueError, match=r"11 \+ 2 x n_arms = 17"):
        ModelSpec(n_features=11 + 3, n_arms=3, horizon_days=9, exposure_input=True)
