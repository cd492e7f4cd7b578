"""The action space shared by logs, environments, policies and off-policy evaluation.

An action at a visit is a pair (arm, coupon level): an *arm* is what the shop recommends
(an item for a small catalog, an item group for a large one) and the coupon level is a
discount fraction from a fixed ladder such as none / 5% / 10% / 20%. Pairs are flattened
to one integer so that a ``Discrete`` action, a logged action and a column of
``action_probs`` all mean the same thing::

    action = arm * n_coupons + coupon_index,   0 <= action < n_arms * n_coupons
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_COUPON_LEVELS: tuple[float, ...] = (0.0, 0.05, 0.10, 0.20)


@dataclass(frozen=True)
class ActionSpace:
    """A flat ``Discrete(n_arms * n_coupons)`` action space over (arm, coupon) pairs.

    :param n_arms: number of recommendation arms, >= 1.
    :param coupon_levels: increasing discount fractions in [0, 1); the first must be 0
        (no coupon), so that "no coupon" is always an action.
    """

    n_arms: int
    coupon_levels: tuple[float, ...] = DEFAULT_COUPON_LEVELS

    def __post_init__(self) -> None:
        if int(self.n_arms) != self.n_arms or self.n_arms < 1:
            raise ValueError(f"n_arms must be a positive integer, got {self.n_arms!r}")
        levels = tuple(float(c) for c in self.coupon_levels)
        if not levels or levels[0] != 0.0:
            raise ValueError(f"coupon_levels must start with 0.0 (no coupon), got {levels!r}")
        if any(b <= a for a, b in zip(levels, levels[1:])) or levels[-1] >= 1.0:
            raise ValueError(f"coupon_levels must increase strictly within [0, 1), got {levels!r}")
        object.__setattr__(self, "coupon_levels", levels)

    @property
    def n_coupons(self) -> int:
        """Number of coupon levels, "none" included."""
        return len(self.coupon_levels)

    @property
    def n_actions(self) -> int:
        """Size of the flat action space."""
        return self.n_arms * self.n_coupons

    def check(self, actions: np.ndarray, n: int) -> np.ndarray:
        """A batch of ``n`` flat ``actions`` as int64, checked: the one check of the actions
        entering a simulator (code behind it decodes them with ``check=False``).

        :raises ValueError: naming the shape if it is not ``(n,)``, a non-integer dtype, or
            the first action outside ``Discrete(n_actions)``.
        """
        actions = np.asarray(actions)
        if actions.shape != (n,):
            raise ValueError(f"actions must have shape ({n},), got {actions.shape}")
        if actions.dtype.kind not in "iu":
            raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
        flat = actions.astype(np.int64, copy=False)
        if _any_outside(flat, self.n_actions):
            first = actions[(flat < 0) | (flat >= self.n_actions)][0]
            raise ValueError(f"action {first} is not in Discrete({self.n_actions})")
        return flat

    def encode(self, arm: np.ndarray | int, coupon_index: np.ndarray | int, *, check: bool = True) -> np.ndarray:
        """Flat action indices of (arm, coupon index) pairs; raises on out-of-range input
        unless ``check`` is false (pairs already checked)."""
        arm = np.asarray(arm, dtype=np.int64)
        coupon_index = np.asarray(coupon_index, dtype=np.int64)
        if check:
            self._check_range("arm", arm, self.n_arms)
            self._check_range("coupon index", coupon_index, self.n_coupons)
        return arm * self.n_coupons + coupon_index

    def decode(self, action: np.ndarray | int, *, check: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(arm, coupon index) of flat actions; raises on out-of-range input unless ``check``
        is false (actions already checked, e.g. by :meth:`check`)."""
        action = np.asarray(action, dtype=np.int64)
        if check:
            self._check_range("action", action, self.n_actions)
        return np.divmod(action, self.n_coupons)

    def coupon_fraction(self, coupon_index: np.ndarray | int) -> np.ndarray:
        """Discount fraction of each coupon index."""
        coupon_index = np.asarray(coupon_index, dtype=np.int64)
        self._check_range("coupon index", coupon_index, self.n_coupons)
        return np.asarray(self.coupon_levels)[coupon_index]

    def coupon_index(self, fraction: np.ndarray | float, *, tol: float = 1e-6) -> np.ndarray:
        """Index of each discount fraction on the ladder; a value off the ladder raises."""
        fraction = np.nan_to_num(np.asarray(fraction, dtype=np.float64), nan=0.0)
        levels = np.asarray(self.coupon_levels)
        idx = np.abs(fraction[..., None] - levels).argmin(axis=-1)
        off = np.abs(levels[idx] - fraction) > tol
        if np.any(off):
            bad = np.unique(fraction[off])[:5]
            raise ValueError(f"coupon values {bad.tolist()} are not on the coupon ladder {list(self.coupon_levels)}")
        return idx

    @staticmethod
    def _check_range(name: str, values: np.ndarray, upper: int) -> None:
        if _any_outside(values, upper):
            first = values[(values < 0) | (values >= upper)].ravel()[0]
            raise ValueError(f"{name} {int(first)} is outside [0, {upper - 1}]")


def _any_outside(values: np.ndarray, upper: int) -> bool:
    """Whether any of the int64 ``values`` lies outside ``[0, upper)``.

    Viewed as unsigned, a negative value wraps to a huge one: one comparison and a count,
    the cheapest check there is on the tiny arrays of a single environment's step.
    """
    return bool(np.count_nonzero(values.view(np.uint64) >= upper))
