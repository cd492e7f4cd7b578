"""Rewards of a visit, for the three modes an environment can be built with.

With the visit's outcome (spend :math:`x`, coupon cost :math:`k`, cost of goods :math:`g`,
so profit :math:`x - k - g`) and :math:`\\text{ret} = 1` when the shopper comes back within
the horizon (not churned, and the next visit in the window: before day :math:`H`, see
:mod:`interactions.horizon`), 0 otherwise:

=============  ===============================================================
mode           reward
=============  ===============================================================
``retention``  :math:`\\text{ret}` -- an episode's return counts the return
               visits within :math:`H`
``profit``     :math:`(x - k - g) / S` -- profit in units of ``revenue_scale``
               :math:`S` (a typical basket), so rewards are O(1)
``mixed``      :math:`w\\,\\text{ret} + (1 - w)(x - k - g) / S`, with
               :math:`w` = ``retention_weight``
=============  ===============================================================

The mode ``net_revenue`` (:math:`(x - k) / S`) of world v1 was renamed ``profit`` when the
world gained costs of goods (world v2); asking for it raises a ``ValueError`` saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retentionrl.simulators.interface import VisitOutcome

REWARD_MODES: tuple[str, ...] = ("retention", "profit", "mixed")


def check_reward_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`REWARD_MODES`, else a ``ValueError`` (which names the
    renaming for the world-v1 mode ``net_revenue``)."""
    if mode == "net_revenue":
        raise ValueError(
            "reward mode 'net_revenue' was renamed to 'profit' (world v2): profit = spend - coupon cost - cost of goods"
        )
    if mode not in REWARD_MODES:
        raise ValueError(f"reward mode {mode!r} is not one of {list(REWARD_MODES)}")
    return mode


@dataclass(frozen=True)
class RewardConfig:
    """How a visit's outcome becomes a reward (formulas in the module docstring).

    :param mode: ``retention``, ``profit`` or ``mixed``.
    :param revenue_scale: currency per reward unit, > 0 (default 50, a typical basket).
    :param retention_weight: :math:`w \\in [0, 1]`, used by ``mixed`` only.
    """

    mode: str = "retention"
    revenue_scale: float = 50.0
    retention_weight: float = 0.5

    def __post_init__(self) -> None:
        check_reward_mode(self.mode)
        if not self.revenue_scale > 0:
            raise ValueError(f"revenue_scale must be > 0, got {self.revenue_scale!r}")
        if not 0.0 <= self.retention_weight <= 1.0:
            raise ValueError(f"retention_weight must be in [0, 1], got {self.retention_weight!r}")

    @classmethod
    def weighted(cls, retention_weight: float, revenue_scale: float = 50.0) -> RewardConfig:
        r"""The reward :math:`w\,\text{ret} + (1 - w)\,\text{profit} / S`: mode ``profit`` at
        :math:`w = 0`, ``retention`` at :math:`w = 1`, ``mixed`` between."""
        w = float(retention_weight)
        mode = "profit" if w == 0.0 else "retention" if w == 1.0 else "mixed"
        return cls(mode=mode, revenue_scale=revenue_scale, retention_weight=w if mode == "mixed" else 0.5)

    @property
    def label(self) -> str:
        """Short name: ``retention``, ``profit`` or ``mixed w=0.25`` (the scale left out)."""
        return f"mixed w={self.retention_weight:g}" if self.mode == "mixed" else self.mode

    def __call__(self, outcome: VisitOutcome, returned: np.ndarray) -> np.ndarray:
        """Reward of each shopper's visit, float32 ``(n,)``."""
        retention = returned.astype(np.float32)
        if self.mode == "retention":
            return retention
        profit = (outcome.profit / self.revenue_scale).astype(np.float32)
        if self.mode == "profit":
            return profit
        return self.retention_weight * retention + (1.0 - self.retention_weight) * profit
