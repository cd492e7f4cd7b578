"""Hillstrom biased sub-sample: the kept rows are a log of pi_b with the exact propensities
(the derivation in experiments/ope_hillstrom.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.ope_hillstrom import PI_MAX, biased_subsample, logging_policy

HILLSTROM = Path(__file__).resolve().parents[2] / "shared" / "data" / "hillstrom" / "hillstrom.csv"
needs_data = pytest.mark.skipif(
    not HILLSTROM.is_file(), reason=f"Hillstrom data not found at {HILLSTROM} (see shared/data/README.md)"
)


@pytest.fixture(scope="module")
def hillstrom():
    from retentionrl.interactions.adapters import read_hillstrom

    return read_hillstrom(HILLSTROM)


@needs_data
def test_logging_policy_is_a_distribution_bounded_by_pi_max(hillstrom):
    pi_b = logging_policy(hillstrom)
    np.testing.assert_allclose(pi_b.sum(axis=1), 1.0)
    assert pi_b.min() >= 0.05 and pi_b.max() <= PI_MAX
    # the keep probabilities kappa(x, .) sum to the same 1 / PI_MAX for every customer,
    # which is what leaves the customer distribution of the sub-sample unchanged
    np.testing.assert_allclose((pi_b / PI_MAX).sum(axis=1), 1.0 / PI_MAX)


@needs_data
def test_subsample_arms_follow_pi_b_and_customers_keep_their_distribution(hillstrom):
    fb = hillstrom
    pi_b = logging_policy(fb)
    # pi_b depends on the features only through a few binary cells; test each cell
    cell_key = np.unique(np.round(pi_b, 9), axis=0, return_inverse=True)[1].ravel()
    kept_all = np.zeros(fb.n_rounds)
    for seed in range(5):  # pool several independent draws of the sub-sample
        kept, prop = biased_subsample(fb, seed)
        np.testing.assert_allclose(prop, pi_b[kept, fb.action[kept]])  # the reported propensity is pi_b
        kept_all[kept] += 1
        for c in np.unique(cell_key):
            in_cell = kept[cell_key[kept] == c]
            if in_cell.size < 500:
                continue
            freq = np.bincount(fb.action[in_cell], minlength=3) / in_cell.size
            p = pi_b[in_cell[0]]
            # the full data is fixed, so the arm frequency also carries the randomization's
            # noise within the cell: allow 5 binomial standard errors of each
            assert np.all(
                np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / in_cell.size) + 5 * np.sqrt(2 / 9 / (cell_key == c).sum())
            ), (c, freq, p)
    # P(x | kept) = p(x): every cell's share of the kept rows matches its share of all rows
    share_full = np.bincount(cell_key) / fb.n_rounds
    share_kept = np.bincount(cell_key, weights=kept_all) / kept_all.sum()
    np.testing.assert_allclose(share_kept, share_full, atol=0.01)
    assert 0.3 < kept_all.sum() / (5 * fb.n_rounds) < 0.45  # about 1 / (3 PI_MAX) = 0.37 kept
