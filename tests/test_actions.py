"""The flat (arm, coupon) action space: round trips and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retentionrl.core.actions import ActionSpace
from retentionrl.interactions.action_map import OTHER_ARM, ActionMap


def test_encode_decode_round_trip() -> None:
    space = ActionSpace(n_arms=3)
    arms, coupons = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    flat = space.encode(arms.ravel(), coupons.ravel())
    assert flat.tolist() == list(range(12)) and space.n_actions == 12
    back_arm, back_coupon = space.decode(flat)
    assert np.array_equal(back_arm, arms.ravel()) and np.array_equal(back_coupon, coupons.ravel())
    np.testing.assert_allclose(space.coupon_fraction([0, 3]), [0.0, 0.2])
    assert space.coupon_index([0.0, 0.1, 0.2, np.nan]).tolist() == [0, 2, 3, 0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.decode(12), r"action 12 is outside \[0, 11\]"),
        (lambda s: s.decode(-1), r"action -1 is outside"),
        (lambda s: s.encode(3, 0), r"arm 3 is outside \[0, 2\]"),
        (lambda s: s.encode(0, 4), r"coupon index 4 is outside \[0, 3\]"),
        (lambda s: s.coupon_index([0.15]), r"coupon values \[0.15\] are not on the coupon ladder"),
    ],
)
def test_out_of_range_raises(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(ActionSpace(n_arms=3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_arms": 0}, "n_arms must be a positive integer"),
        ({"n_arms": 2, "coupon_levels": (0.05, 0.1)}, "must start with 0.0"),
        ({"n_arms": 2, "coupon_levels": (0.0, 0.2, 0.1)}, "must increase strictly"),
        ({"n_arms": 2, "coupon_levels": (0.0, 1.0)}, "within \\[0, 1\\)"),
    ],
)
def test_invalid_spaces_are_rejected(kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ActionSpace(**kwargs)


def _visits(groups, items, coupons) -> pd.DataFrame:
    frame = pd.DataFrame({"rec_item": items, "rec_coupon": coupons})
    if groups is not None:
        frame["rec_group"] = groups
    return frame


def test_action_map_uses_groups_when_logged() -> None:
    v = _visits(["g2", "g1", None, "g2"], ["a", "b", None, "c"], [0.0, 0.1, 0.0, 0.2])
    amap = ActionMap.fit(v)
    assert amap.arm_column == "rec_group" and amap.arms == ("g1", "g2")
    action, logged = amap.encode(v)
    assert logged.tolist() == [True, True, False, True]
    assert action.tolist() == [4, 2, 0, 7]  # arm * 4 + coupon index
    assert amap.identifies_recommendation and amap.identifies_coupon
    assert amap.coverage["coupon_offer_rate"] == pytest.approx(2 / 3)


def test_action_map_cuts_large_catalogs_to_top_items_plus_other() -> None:
    items = ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"]
    v = _visits(None, items, [0.0] * len(items))
    amap = ActionMap.fit(v, max_item_arms=3)
    assert amap.arms == ("a", "b", OTHER_ARM)
    action, _ = amap.encode(v)
    assert set(action[-4:].tolist()) == {8}  # c and d -> "other", no coupon
    assert not amap.identifies_coupon


def test_action_map_of_purchase_only_logs_identifies_nothing() -> None:
    amap = ActionMap.fit(pd.DataFrame({"spend": [1.0, 2.0]}))
    assert amap.arm_column is None and amap.space.n_arms == 1
    assert not amap.identifies_recommendation and not amap.identifies_coupon
    action, logged = amap.encode(pd.DataFrame({"spend": [1.0]}))
    assert action.tolist() == [0] and not logged.any()
