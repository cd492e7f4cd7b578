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

**The scale from the logs.** :func:`logged_revenue_scale` sets :math:`S` to the logs' profit
per visit over their share of visits followed by a return within :math:`H`,
:math:`S = \\bar p / \\bar r`: then :math:`E[(x - k - g) / S] = E[\\text{ret}]` per visit under the
policy that wrote the logs, so :math:`w` is the share of the reward that retention carries under
the shop's current policy, and :math:`w = 0.5` weighs a return and the profit of a visit as the
logs trade them. A fixed currency scale (the default 50, a typical basket) makes the weights
depend on the shop's prices: on the world's logs (a visit earns 1.8 on average, and 74% of
visits are followed by a return), :math:`S = 50` gives retention 87% of the reward at
:math:`w = 0.25` and 95% at :math:`w = 0.5`, where :math:`S = 2.4` from the logs gives 25% and 50%.

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


def logged_revenue_scale(profit: np.ndarray, returned: np.ndarray) -> float:
    """:math:`S = \\bar p / \\bar r` of the module docstring from logged visits' ``profit`` and
    0/1 ``returned`` (a return within the horizon; visits whose return is known), both ``(n,)``.

    :raises ValueError: no visits, a mean profit <= 0 (no scale makes profit a reward) or no
        return among them; the message says to set the scale by hand.
    """
    profit, returned = np.asarray(profit, dtype=np.float64), np.asarray(returned, dtype=np.float64)
    if profit.shape != returned.shape or profit.ndim != 1:
        raise ValueError(f"profit and returned must be 1-d of one length, got {profit.shape} and {returned.shape}")
    hint = "; set revenue_scale to a currency amount instead"
    if profit.size == 0:
        raise ValueError("no logged visits whose return within the horizon is known" + hint)
    mean_profit, share = float(profit.mean()), float(returned.mean())
    if not mean_profit > 0:
        raise ValueError(f"the logged visits' mean profit is {mean_profit:.4g}, not > 0" + hint)
    if not share > 0:
        raise ValueError(f"none of the {profit.size} logged visits is followed by a return within the horizon" + hint)
    return mean_profit / share


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
