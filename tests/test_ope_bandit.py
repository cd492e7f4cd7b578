"""Per-decision estimators: hand-computed values, invalid inputs, properties, unbiasedness."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retentionrl.evaluation.bandit import (
    IPS,
    SNIPS,
    BanditInputs,
    DirectMethod,
    DoublyRobust,
    DRos,
    SelfNormalizedDR,
    SwitchDR,
    default_estimators,
    evaluate_bandit,
    tune_by_mse,
)
from retentionrl.evaluation.diagnostics import (
    WeightDiagnostics,
    effective_sample_size,
    not_estimable,
    unsupported_mass,
)
from retentionrl.evaluation.intervals import (
    empirical_bernstein_lower,
    hoeffding_lower,
    resampled_sums,
)

# two rounds, two actions: w = [2, 1], q_factual = [0.5, 0.1], q_policy = [0.5, 0.25]
TINY = {
    "reward": np.array([1.0, 0.0]),
    "action": np.array([0, 1]),
    "propensity": np.array([0.5, 0.5]),
    "action_dist": np.array([[1.0, 0.0], [0.5, 0.5]]),
    "estimated_rewards": np.array([[0.5, 0.2], [0.4, 0.1]]),
}


@pytest.mark.parametrize(
    ("estimator", "expected"),
    [
        (DirectMethod(), 0.375),
        (IPS(), 1.0),
        (SNIPS(), 2.0 / 3.0),
        (DoublyRobust(), (1.5 + 0.15) / 2),
        (SelfNormalizedDR(), 0.375 + 0.9 / 3),
        (SwitchDR(tau=1.5), (0.5 + 0.15) / 2),
        (SwitchDR(), (1.5 + 0.15) / 2),
        (DRos(lam=1.0), (0.7 + 0.2) / 2),
    ],
)
def test_hand_computed_values(estimator, expected):
    assert estimator.estimate(BanditInputs.prepare(**TINY)) == pytest.approx(expected)


def test_positions_pick_the_logged_slot():
    # slot 0 wants action 0, slot 1 wants action 1; round 0 is at slot 1 (w = 0), round 1 at slot 0
    dist = np.zeros((2, 2, 2))
    dist[:, 0, 0] = 1.0
    dist[:, 1, 1] = 1.0
    value = IPS().estimate(
        BanditInputs.prepare(np.array([1.0, 1.0]), np.array([0, 0]), np.array([0.5, 0.5]), dist, np.array([1, 0]))
    )
    assert value == pytest.approx((0.0 + 2.0) / 2)


BAD = [
    ({"propensity": [0.0, 0.5]}, r"propensity must lie in \(0, 1\]; row 0: 0.0"),
    ({"propensity": [0.5, 1.5]}, r"propensity must lie in \(0, 1\]; row 1: 1.5"),
    ({"reward": [np.nan, 0.0]}, r"reward must be finite .* row 0: nan"),
    ({"action": [0, 2]}, r"action must lie in \[0, 1\]; row 1: 2"),
    ({"action": [0.5, 1]}, r"action must hold integers; row 0: 0.5"),
    ({"action_dist": [[0.7, 0.0], [0.5, 0.5]]}, r"action_dist must sum to 1 over actions; row 0, slot 0 sums to 0.7"),
    ({"action_dist": [[1.2, -0.2], [0.5, 0.5]]}, r"action_dist must be >= 0; entry \[0, 1, 0\] = -0.2"),
    ({"action_dist": np.ones((3, 2)) / 2}, r"action_dist must have shape \(n=2, n_actions, len_list=1\)"),
    ({"propensity": [0.5]}, r"propensity must have length 2"),
    ({"estimated_rewards": np.ones((2, 3))}, r"estimated_rewards must have the shape of action_dist"),
    ({"reward": []}, r"reward is empty"),
]


@pytest.mark.parametrize(("change", "match"), BAD)
def test_invalid_inputs_raise_with_values(change, match):
    with pytest.raises(ValueError, match=match):
        BanditInputs.prepare(**{**TINY, **change})


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: SwitchDR(tau=0.0), r"tau must be > 0"),
        (lambda: DRos(lam=-1.0), r"lam must be > 0"),
        (lambda: DRos(lam=float("nan")), r"lam must be > 0"),
        (
            lambda: DoublyRobust().estimate(BanditInputs.prepare(**{**TINY, "estimated_rewards": None})),
            r"dr needs estimated_rewards",
        ),
        (
            lambda: BanditInputs.prepare(TINY["reward"], TINY["action"], TINY["propensity"], np.ones((2, 2, 2)) / 2),
            r"len_list=2 slots but position is None",
        ),
        (
            lambda: IPS().interval(BanditInputs.prepare(**TINY), alpha=1.5),
            r"alpha must lie in \(0, 1\)",
        ),
        (
            lambda: BanditInputs.prepare(**TINY, groups=[1]),
            r"groups must have shape \(2,\)",
        ),
        (lambda: resampled_sums(np.ones((5, 1)), 1, 0), r"n_bootstrap must be an integer >= 2"),
        (lambda: effective_sample_size([1.0, -1.0]), r"weights must be >= 0"),
        (lambda: unsupported_mass(np.ones((2, 2)) / 2), r"give behavior_dist or logged_actions"),
    ],
)
def test_invalid_settings_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=30).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(-5, 5), min_size=n, max_size=n),
            st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n),
            st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n),
        )
    )
)
def test_snips_stays_within_reward_range(data):
    reward, propensity, target = (np.array(x) for x in data)
    dist = np.stack([target, 1.0 - target], axis=1)
    value = SNIPS().estimate(BanditInputs.prepare(reward, np.zeros(reward.size, dtype=int), propensity, dist))
    assert reward.min() - 1e-9 <= value <= reward.max() + 1e-9


def _synthetic_bandit(rng, n, n_actions=5):
    x = rng.normal(size=n)
    logits = np.outer(x, np.linspace(-1, 1, n_actions))
    behavior = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    target = np.exp(-logits) / np.exp(-logits).sum(axis=1, keepdims=True)
    mean_reward = 1.0 / (1.0 + np.exp(-(x[:, None] * np.arange(n_actions) / 2)))
    action = (rng.random((n, 1)) > behavior.cumsum(axis=1)).sum(axis=1)
    reward = (rng.random(n) < mean_reward[np.arange(n), action]).astype(float)
    return reward, action, behavior[np.arange(n), action], target, mean_reward


def test_ips_is_unbiased_on_a_synthetic_bandit():
    rng = np.random.default_rng(7)
    truth = np.mean([(t * q).sum(axis=1).mean() for _, _, _, t, q in [_synthetic_bandit(rng, 100_000)]])
    estimates = [IPS().estimate(BanditInputs.prepare(*_synthetic_bandit(rng, 400)[:4])) for _ in range(300)]
    se = np.std(estimates, ddof=1) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates) - truth) < 3 * se + 0.002


def test_dr_interval_covers_and_all_estimators_share_resamples():
    rng = np.random.default_rng(3)
    reward, action, prop, target, q = _synthetic_bandit(rng, 3000)
    truth = (target * q).sum(axis=1).mean()
    inputs = BanditInputs.prepare(reward, action, prop, target, estimated_rewards=q + 0.05)
    out = evaluate_bandit(default_estimators(), inputs, n_bootstrap=300, seed=0)
    assert set(out) == {"dm", "ips", "snips", "dr", "sndr", "switch-dr", "dros"}
    assert out["dr"].low <= truth <= out["dr"].high
    assert out["dr"].lower_bound < out["dr"].estimate
    assert np.isnan(out["snips"].lower_bound)
    assert out["dm"].estimate == pytest.approx(truth + 0.05)


def test_bootstrap_over_groups_is_wider_for_dependent_rounds():
    rng = np.random.default_rng(0)
    shopper_effect = np.repeat(rng.normal(size=100), 20)
    reward = shopper_effect + 0.1 * rng.normal(size=2000)
    args = (reward, np.zeros(2000, dtype=int), np.ones(2000), np.ones((2000, 1)))
    by_round = IPS().interval(BanditInputs.prepare(*args), n_bootstrap=200)
    by_shopper = IPS().interval(BanditInputs.prepare(*args, groups=np.repeat(np.arange(100), 20)), n_bootstrap=200)
    assert (by_shopper.high - by_shopper.low) > 3 * (by_round.high - by_round.low)


def test_concentration_bounds_and_diagnostics():
    x = np.array([0.0, 1.0] * 50)
    assert empirical_bernstein_lower(x, 0.05, 1.0) < 0.5
    assert hoeffding_lower(x, 0.05, 1.0) == pytest.approx(0.5 - np.sqrt(np.log(20) / 200))
    assert effective_sample_size(np.ones(10)) == pytest.approx(10)
    assert effective_sample_size([10.0, 0.0, 0.0]) == pytest.approx(1)
    dist = np.array([[0.5, 0.5], [1.0, 0.0]])
    assert unsupported_mass(dist, logged_actions=[0]) == pytest.approx(0.25)
    assert unsupported_mass(dist, behavior_dist=np.array([[1.0, 0.0], [1.0, 0.0]])) == pytest.approx(0.25)
    diag = WeightDiagnostics.of(np.array([100.0] + [0.0] * 99), unsupported=0.3)
    assert diag.max_weight_share == 1.0 and len(diag.warnings) == 2


def test_tuning_picks_dr_over_a_biased_model_and_dm_over_an_exact_one():
    rng = np.random.default_rng(1)
    reward, action, prop, target, q = _synthetic_bandit(rng, 2000)
    candidates = [SwitchDR(t) for t in (0.01, 1e6)]
    biased = BanditInputs.prepare(reward, action, prop, target, estimated_rewards=q + 0.3)
    exact = BanditInputs.prepare(reward, action, prop, target, estimated_rewards=q)
    assert tune_by_mse(candidates, biased).tau == 1e6
    assert tune_by_mse(candidates, exact).tau == 0.01


def test_chunked_bootstrap_counts_are_multinomial_resamples():
    from retentionrl.evaluation.intervals import _count_rows, resampled_sums

    n_units = 4 * (1 << 16) + 1234  # the blocked path, with a partial last block
    counts = _count_rows(np.random.default_rng(0), n_units, 6)
    assert counts.shape == (6, n_units) and counts.dtype == np.float32
    assert (counts.sum(axis=1) == n_units).all()  # each resample draws exactly n_units units
    # each count is Binomial(n, 1/n): mean 1, variance ~1, P(0) ~ e^-1, in every block
    assert abs(counts.mean() - 1) < 1e-9 and abs(counts.var() - 1) < 0.01
    assert abs((counts[:, -1234:] == 0).mean() - np.exp(-1)) < 0.02
    assert abs((counts[:, : 1 << 16] == 0).mean() - np.exp(-1)) < 0.01
    # the chunked product equals the explicit counts @ stats (the same draws), to float32
    stats = np.random.default_rng(1).normal(5.0, 1.0, size=(300, 3))
    chunked = resampled_sums(stats, 50, 7, max_chunk=900)  # 3 rows per chunk
    rng = np.random.default_rng(7)
    explicit = np.vstack([_count_rows(rng, 300, 3).astype(np.float64) @ stats for _ in range(17)])[:50]
    np.testing.assert_allclose(chunked, explicit, rtol=1e-5)


@pytest.mark.parametrize(
    ("low", "high", "ess", "n", "reason"),
    [
        (1.0, 2.0, 50.0, 1000, None),  # ESS 50 >= max(10, 10)
        (1.0, 2.0, 9.9, 100, "effective sample size 9.9 < 10"),
        (1.0, 2.0, 40.0, 5000, "effective sample size 40.0 < 50"),  # 1% of 5,000 units
        (1.5, 1.5, 500.0, 1000, "zero-width interval"),
        (float("nan"), 2.0, 500.0, 1000, "no finite interval"),
        (1.0, 2.0, None, None, None),  # no weights known: only the interval is checked
    ],
)
def test_an_estimate_is_shown_only_with_enough_ess_and_a_real_interval(low, high, ess, n, reason):
    got = not_estimable(low, high, ess, n)
    if reason is None:
        assert got is None
    else:
        assert got.startswith("not estimable from these logs") and reason in got
