"""Splits by shopper and by time never leak a shopper or a moment across parts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retentionrl.interactions.splits import split_time, split_users


def test_user_split_is_disjoint_complete_and_seeded() -> None:
    users = np.repeat(np.arange(1_000), 3)
    s = split_users(users, (0.7, 0.2, 0.1), seed=5)
    assert np.all(s.train.astype(int) + s.valid + s.test == 1)
    parts = [set(users[m]) for m in (s.train, s.valid, s.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert [len(p) for p in parts] == [700, 200, 100]
    again = split_users(users, (0.7, 0.2, 0.1), seed=5)
    assert np.array_equal(s.train, again.train)
    assert not np.array_equal(s.train, split_users(users, (0.7, 0.2, 0.1), seed=6).train)


def test_user_split_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError, match="three non-negative shares summing to 1"):
        split_users(np.arange(5), (0.5, 0.6, -0.1))


def test_time_split() -> None:
    times = pd.Series(pd.date_range("2024-01-01", periods=10, freq="D"))
    cal, hold = split_time(times, "2024-01-08")
    assert cal.sum() == 7 and hold.sum() == 3 and not np.any(cal & hold)
    with pytest.raises(ValueError, match="must fall inside the log's time range"):
        split_time(times, "2025-01-01")
