"""HistoryFeatures: hand-computed values, masks, and bad input."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from retentionrl.core.actions import ActionSpace
from retentionrl.interactions.history import SCALAR_FEATURES, HistoryFeatures, history_feature_names

SPACE = ActionSpace(3, (0.0, 0.1, 0.2))


def outcome(click, purchase, redeemed, spend):
    return SimpleNamespace(
        click=np.array(click, bool),
        purchase=np.array(purchase, bool),
        redeemed=np.array(redeemed, bool),
        spend=np.array(spend, float),
    )


def feature(h: HistoryFeatures, name: str) -> np.ndarray:
    return h.features()[:, h.names.index(name)]


def test_empty_history_is_all_zero_with_named_columns():
    h = HistoryFeatures(SPACE, horizon_days=90)
    h.reset(4)
    f = h.features()
    assert f.shape == (4, len(SCALAR_FEATURES) + 3) and f.dtype == np.float32
    assert h.names == history_feature_names(3) and h.names[-1] == "arm_share_2"
    assert not f.any()


def test_two_visits_match_hand_computed_features():
    h = HistoryFeatures(SPACE, horizon_days=90, spend_scale=50)
    h.reset(2)
    # shopper 0: arm 1 + 20% coupon, click and buy 30 (redeemed), back in 9 days
    # shopper 1: arm 2, no coupon, nothing, back in 3 days
    h.update([1, 2], [2, 0], outcome([1, 0], [1, 0], [1, 0], [30.0, 0.0]), [9.0, 3.0])
    # shopper 0: arm 0, no coupon, click only, back in 18 days; shopper 1: arm 2 + 10%, click, 6 days
    h.update([0, 2], [0, 1], outcome([1, 1], [0, 0], [0, 0], [0.0, 0.0]), [18.0, 6.0])
    f = dict(zip(h.names, h.features().T))
    np.testing.assert_allclose(f["log_visits"], np.log1p([2, 2]), rtol=1e-6)
    np.testing.assert_allclose(f["days_since_first"], [27 / 90, 9 / 90], rtol=1e-6)
    np.testing.assert_allclose(f["days_since_last"], [18 / 90, 6 / 90], rtol=1e-6)
    np.testing.assert_allclose(f["log_spend"], [np.log1p(30 / 50), 0.0], rtol=1e-6)
    np.testing.assert_allclose(f["purchase_rate"], [0.5, 0.0])
    np.testing.assert_allclose(f["click_rate"], [1.0, 0.5])
    np.testing.assert_allclose(f["coupon_share"], [0.5, 0.5])
    np.testing.assert_allclose(f["mean_coupon"], [0.5, 0.25], rtol=1e-6)  # mean fraction / 0.2
    np.testing.assert_allclose(f["last_purchase"], [0, 0])
    np.testing.assert_allclose(f["last_redeemed"], [0, 0])
    np.testing.assert_allclose(f["last_coupon"], [0.0, 0.5], rtol=1e-6)
    # engagement: shopper 0 has 2 on arm 1 (click+buy) and 1 on arm 0; shopper 1 has 1 on arm 2
    np.testing.assert_allclose(h.features()[:, len(SCALAR_FEATURES) :], [[1 / 3, 2 / 3, 0], [0, 0, 1]], rtol=1e-6)


def test_record_is_update_without_the_checks():
    checked, trusted = HistoryFeatures(SPACE, horizon_days=90), HistoryFeatures(SPACE, horizon_days=90)
    checked.reset(3)
    trusted.reset(3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        arm, coupon = rng.integers(0, 3, 3), rng.integers(0, 3, 3)
        visit = outcome(rng.random(3) < 0.5, rng.random(3) < 0.3, rng.random(3) < 0.2, rng.random(3) * 40)
        gap = np.where(rng.random(3) < 0.2, np.inf, rng.integers(1, 30, 3).astype(float))
        checked.update(arm, coupon, visit, gap)
        trusted.record(arm, coupon, visit, gap)
    assert checked.features().tobytes() == trusted.features().tobytes()


def test_a_ladder_without_coupons_scales_coupons_by_one():
    h = HistoryFeatures(ActionSpace(2, (0.0,)), horizon_days=30)
    h.reset(1)
    h.update([1], [0], outcome([1], [1], [0], [20.0]), [3.0])
    f = dict(zip(h.names, h.features()[0]))
    assert f["mean_coupon"] == f["last_coupon"] == f["coupon_share"] == 0.0
    assert f["purchase_rate"] == f["arm_share_1"] == 1.0 and f["days_since_last"] == np.float32(0.1)


def test_non_finite_gap_keeps_the_clock():
    h = HistoryFeatures(SPACE, horizon_days=10)
    h.reset(1)
    h.update([0], [0], outcome([0], [0], [0], [0.0]), [4.0])
    h.update([0], [0], outcome([0], [0], [0], [0.0]), [np.inf])
    assert feature(h, "days_since_first")[0] == pytest.approx(0.4)
    assert feature(h, "days_since_last")[0] == 0.0


def test_reset_rows_and_keep_rows():
    h = HistoryFeatures(SPACE, horizon_days=90)
    h.reset(3)
    h.update([0, 1, 2], [0, 0, 0], outcome([1, 1, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]), [1.0, 2.0, 3.0])
    before = h.features().copy()
    h.reset_rows(np.array([False, True, False]))
    after = h.features()
    assert not after[1].any()
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    h.keep_rows(np.array([False, True, True]))
    assert h.n == 2
    np.testing.assert_array_equal(h.features()[1], before[2])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda h: h.update([3, 0], [0, 0], outcome([0, 0], [0, 0], [0, 0], [0, 0]), [1, 1]), "arm 3"),
        (lambda h: h.update([0, 0], [0, 5], outcome([0, 0], [0, 0], [0, 0], [0, 0]), [1, 1]), "coupon index 5"),
        (lambda h: h.update([0], [0], outcome([0], [0], [0], [0]), [1]), r"shape \(2,\)"),
        (lambda h: h.reset_rows(np.array([1, 0])), "bool"),
        (lambda h: h.reset(-1), "-1"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    h = HistoryFeatures(SPACE, horizon_days=90)
    h.reset(2)
    with pytest.raises(ValueError, match=match):
        call(h)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"horizon_days": 0}, "horizon_days"), ({"horizon_days": 90, "spend_scale": 0}, "spend_scale")],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HistoryFeatures(SPACE, **kwargs)


@pytest.mark.parametrize("spend_dtype", [np.float64, np.float32])
def test_the_one_shopper_path_gives_the_batched_paths_bits(spend_dtype) -> None:
    """A batch of one takes a Python-float path (record and features); shopper 0 of a batch of
    two takes the numpy path: over random histories with churn gaps, both must agree bit for bit."""
    rng = np.random.default_rng(3)
    space = ActionSpace(5, (0.0, 0.05, 0.15))
    one, two = HistoryFeatures(space, 30, spend_scale=37.0), HistoryFeatures(space, 30, spend_scale=37.0)
    one.reset(1)
    two.reset(2)
    for _ in range(300):
        arm, coupon = rng.integers(0, 5, 2), rng.integers(0, 3, 2)
        purchase = rng.random(2) < 0.4
        outcome = SimpleNamespace(
            click=(rng.random(2) < 0.5).astype(float),
            purchase=purchase.astype(float),
            redeemed=(purchase & (coupon > 0) & (rng.random(2) < 0.7)).astype(float),
            spend=(purchase * rng.gamma(2.0, 20.0, 2)).astype(spend_dtype),
        )
        gap = np.where(rng.random(2) < 0.1, np.inf, rng.exponential(9.0, 2))
        first = SimpleNamespace(**{k: v[:1] for k, v in vars(outcome).items()})
        one.record(arm[:1], coupon[:1], first, gap[:1])
        two.record(arm, coupon, outcome, gap)
        np.testing.assert_array_equal(one.features()[0].view(np.uint32), two.features()[0].view(np.uint32))


def test_state_resumes_the_same_histories():
    h = HistoryFeatures(SPACE, horizon_days=90)
    h.reset(3)
    rng = np.random.default_rng(1)
    for _ in range(4):
        h.update(
            rng.integers(0, 3, 3),
            rng.integers(0, 3, 3),
            outcome([1, 0, 1], [1, 1, 0], [0, 1, 0], rng.random(3) * 50),
            rng.random(3) * 30,
        )
    resumed = HistoryFeatures(SPACE, horizon_days=90)
    resumed.set_state(h.state()[1:])  # a store keeps shoppers one by one
    assert resumed.features().tobytes() == h.features()[1:].tobytes()
    step = ([2, 0], [1, 2], outcome([0, 1], [1, 0], [1, 0], [12.0, 0.0]), [4.0, 7.0])
    h.keep_rows(np.array([False, True, True]))
    h.update(*step)
    resumed.update(*step)
    assert resumed.features().tobytes() == h.features().tobytes()
    with pytest.raises(ValueError, match="shape"):
        resumed.set_state(np.zeros((2, 5)))
