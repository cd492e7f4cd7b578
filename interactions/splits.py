"""Leak-free splits of a log: by shopper, and by time.

* :func:`split_users` puts every shopper in exactly one of train / valid / test, by a
  seeded permutation of the distinct ids, so no shopper's history leaks across parts.
* :func:`split_time` cuts at a time: the *calibration* period holds what happened before
  the cut, the *holdout* period what happened at or after it, for the same shoppers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class UserSplit:
    """Row masks of a user split; each row is in exactly one part."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def split_users(
    user_ids: pd.Series | np.ndarray, fractions: Sequence[float] = (0.8, 0.1, 0.1), *, seed: int = 0
) -> UserSplit:
    """Assign each distinct shopper to train / valid / test with the given fractions.

    :param user_ids: the ``user_id`` of every row (events, visits or trajectories).
    :param fractions: three non-negative shares summing to 1; part sizes are the rounded
        shares of the number of shoppers (the test part takes the remainder).
    :param seed: seed of the permutation; the same seed and ids give the same split.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative shares summing to 1, got {fractions}")
    codes, uniques = pd.factorize(pd.Series(user_ids), sort=True)
    n = len(uniques)
    part = np.empty(n, dtype=np.int8)
    perm = np.random.default_rng(seed).permutation(n)
    n_train, n_valid = round(fractions[0] * n), round(fractions[1] * n)
    part[perm[:n_train]] = 0
    part[perm[n_train : n_train + n_valid]] = 1
    part[perm[n_train + n_valid :]] = 2
    row_part = part[codes]
    return UserSplit(train=row_part == 0, valid=row_part == 1, test=row_part == 2)


def split_time(timestamps: pd.Series, cutoff: pd.Timestamp | str) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the calibration (``< cutoff``) and holdout (``>= cutoff``) rows."""
    cutoff = pd.Timestamp(cutoff)
    times = pd.Series(timestamps)
    if not (times.min() < cutoff <= times.max()):
        raise ValueError(f"cutoff {cutoff} must fall inside the log's time range [{times.min()}, {times.max()}]")
    calibration = (times < cutoff).to_numpy()
    return calibration, ~calibration
