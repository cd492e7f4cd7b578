"""Rewards of a visit, for the three modes an environment can be built with.

With the visit's outcome (spend :math:`x`, coupon cost :math:`k`) and
:math:`\\text{ret} = 1` when the shopper comes back within the horizon (not churned, and
the next visit on or before day :math:`H`), 0 otherwise:

===============  ===========================================================
mode             reward
===============  ===========================================================
``retention``    :math:`\\text{ret}` -- an episode's return counts the return
                 visits within :math:`H`
``net_revenue``  :math:`(x - k) / S` -- net revenue in units of ``revenue_scale``
                 :math:`S` (a typical basket), so rewards are O(1)
``mixed``        :math:`w\\,\\text{ret} + (1 - w)(x - k) / S`, with
                 :math:`w` = ``retention_weight``
===============  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.interface import VisitOutcome

REWARD_MODES: tuple[str, ...] = ("retention", "net_revenue", "mixed")


@dataclass(frozen=True)
class RewardConfig:
    """How a visit's outcome becomes a reward (formulas in the module docstring).

    :param mode: ``retention``, ``net_revenue`` or ``mixed``.
    :param revenue_scale: currency per reward unit, > 0 (default 50, a typical basket).
    :param retention_weight: :math:`w \\in [0, 1]`, used by ``mixed`` only.
    """

    mode: str = "retention"
    revenue_scale: float = 50.0
    retention_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in REWARD_MODES:
            raise ValueError(f"reward mode {self.mode!r} is not one of {list(REWARD_MODES)}")
        if not self.revenue_scale > 0:
            raise ValueError(f"revenue_scale must be > 0, got {self.revenue_scale!r}")
        if not 0.0 <= self.retention_weight <= 1.0:
            raise ValueError(f"retention_weight must be in [0, 1], got {self.retention_weight!r}")

    def __call__(self, outcome: VisitOutcome, returned: np.ndarray) -> np.ndarray:
        """Reward of each shopper's visit, float32 ``(n,)``."""
        retention = returned.astype(np.float32)
        if self.mode == "retention":
            return retention
        revenue = ((outcome.spend - outcome.coupon_cost) / self.revenue_scale).astype(np.float32)
        if self.mode == "net_revenue":
            return revenue
        return self.retention_weight * retention + (1.0 - self.retention_weight) * revenue
