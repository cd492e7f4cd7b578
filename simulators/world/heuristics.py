"""Deterministic heuristics over observable history: the baselines of the trade-off table.

Each picks an arm :math:`g^* = \\arg\\max_g (score_g + w \\cdot share_g)` (group scores from
aggregate rates a shop measures, :mod:`retentionrl.simulators.group_rates`, plus the shopper's own arm
shares) and a coupon by a rule on the shopper's history; :math:`\\pi(a \\mid x)` is 1 on that
action. None reads latent state (``is_oracle`` is False).

=====================  ============================================  ======================
heuristic              arm score                                     coupon
=====================  ============================================  ======================
``always-coupon``      purchase rate (popularity)                    the largest level
``never-coupon``       purchase rate                                 none
``targeted-coupon``    purchase rate                                 :class:`TargetedCoupon`
``myopic``             click rate; maximises the immediate click     the largest level
                       (and, with the coupon, the immediate purchase)
``satisfaction-aware`` conversion (purchases per click, a quality    :class:`TargetedCoupon`
                       proxy) ; groups converting under
                       ``min_conversion`` x the median are never shown
``premium``            the group's list price: the dearest group       none
                       (what a revenue rule with no price response
                       would pick)
=====================  ============================================  ======================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from retentionrl.core.actions import ActionSpace
from retentionrl.core.checks import require_int
from retentionrl.core.policy import Policy
from retentionrl.simulators.group_rates import GroupRates
from retentionrl.simulators.observation import check_observation, column, greedy_arm

CouponRule = Callable[[np.ndarray], np.ndarray]
"""Maps observations ``(n, d)`` to a coupon index per row."""


@dataclass(frozen=True)
class FixedCoupon:
    """The same coupon index for everyone."""

    index: int

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.full(obs.shape[0], self.index, dtype=np.int64)


@dataclass(frozen=True)
class TargetedCoupon:
    """Coupon ``index`` where it buys a visit back, otherwise none.

    Offered when the shopper is new (first visit: win the first purchase) or lapsing (the
    last gap was at least ``lapse_days``), and only while the share of their past visits
    that got a coupon is at most ``max_share`` (so they do not learn to wait for one).

    :param index: coupon index offered, >= 1.
    :param horizon_days: H of the history features (to read the gap in days), >= 1.
    :param lapse_days: a gap this long (days) counts as lapsing, > 0.
    :param max_share: the most a shopper's coupon share may be before another, in [0, 1].
    """

    index: int
    horizon_days: float
    lapse_days: float = 21.0
    max_share: float = 0.2

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        first = obs[:, column("log_visits")] == 0
        lapsing = obs[:, column("days_since_last")] * self.horizon_days >= self.lapse_days
        rare = obs[:, column("coupon_share")] <= self.max_share
        return np.where(first | (lapsing & rare), self.index, 0).astype(np.int64)


class GreedyHeuristic(Policy):
    """Deterministic: arm :math:`\\arg\\max_g (score_g + w \\cdot share_g)`, coupon from a rule.

    :param action_space: the action space.
    :param name: label in tables.
    :param arm_scores: score of each arm, shape ``(n_arms,)``; ``-inf`` never shows it.
    :param affinity_weight: :math:`w \\ge 0`, weight of the shopper's arm shares.
    :param coupon_rule: coupon index per observation row.
    :param explore_top: K >= 1: a shopper with no engagement yet is shown the best K arms
        in turn (see :func:`retentionrl.simulators.observation.greedy_arm`).
    """

    def __init__(
        self,
        action_space: ActionSpace,
        name: str,
        arm_scores: np.ndarray,
        affinity_weight: float,
        coupon_rule: CouponRule,
        explore_top: int = 1,
    ) -> None:
        super().__init__(action_space)
        self.arm_scores = np.asarray(arm_scores, dtype=np.float64)
        if self.arm_scores.shape != (action_space.n_arms,) or not np.isfinite(self.arm_scores).any():
            raise ValueError(
                f"arm_scores must have shape ({action_space.n_arms},) with a finite value, "
                f"got {self.arm_scores.tolist()}"
            )
        if not affinity_weight >= 0:
            raise ValueError(f"affinity_weight must be >= 0, got {affinity_weight!r}")
        require_int("explore_top", explore_top, 1)
        self.name, self.affinity_weight, self.coupon_rule = name, float(affinity_weight), coupon_rule
        self.explore_top = int(explore_top)

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        obs = check_observation(obs, self.action_space)
        action = self.action_space.encode(
            greedy_arm(obs, self.arm_scores, self.affinity_weight, self.explore_top), self.coupon_rule(obs)
        )
        probs = np.zeros((obs.shape[0], self.action_space.n_actions))
        probs[np.arange(obs.shape[0]), action] = 1.0
        return probs


HEURISTICS: tuple[str, ...] = (
    "always-coupon",
    "never-coupon",
    "targeted-coupon",
    "myopic",
    "satisfaction-aware",
    "premium",
)


def make_heuristic(
    name: str,
    action_space: ActionSpace,
    rates: GroupRates,
    horizon_days: float,
    *,
    group_price: np.ndarray | None = None,
    affinity_weight: float = 1.0,
    targeted_index: int = 2,
    min_conversion: float = 0.6,
    explore_top: int = 4,
) -> GreedyHeuristic:
    """The heuristic called ``name`` (one of :data:`HEURISTICS`; table in the module docstring).

    :param rates: aggregate group rates (e.g. :func:`retentionrl.simulators.group_rates.pilot_group_rates`).
    :param horizon_days: H of the observations' history features.
    :param group_price: list price of each group (the shop's catalog); needed by ``premium``.
    :param affinity_weight: weight of the shopper's arm shares, >= 0.
    :param targeted_index: coupon index of the targeted rule, in [1, n_coupons).
    :param min_conversion: satisfaction-aware never shows groups converting below this
        fraction of the median group conversion, in [0, 1].
    :param explore_top: satisfaction-aware tries its best ``explore_top`` groups in turn
        until the shopper engages, >= 1.
    """
    if not 1 <= targeted_index < action_space.n_coupons:
        raise ValueError(f"targeted_index must be in [1, {action_space.n_coupons - 1}], got {targeted_index!r}")
    if not 0 <= min_conversion <= 1:
        raise ValueError(f"min_conversion must be in [0, 1], got {min_conversion!r}")
    top = action_space.n_coupons - 1
    targeted = TargetedCoupon(targeted_index, horizon_days)
    popularity = np.log(np.maximum(rates.purchase, 1e-6))
    conversion = rates.conversion
    quality = np.where(
        conversion >= min_conversion * np.median(conversion), np.log(np.maximum(conversion, 1e-6)), -np.inf
    )
    clicks = np.log(np.maximum(rates.click, 1e-6))
    table: dict[str, tuple[np.ndarray, CouponRule, int]] = {
        "always-coupon": (popularity, FixedCoupon(top), 1),
        "never-coupon": (popularity, FixedCoupon(0), 1),
        "targeted-coupon": (popularity, targeted, 1),
        "myopic": (clicks, FixedCoupon(top), 1),
        "satisfaction-aware": (quality, targeted, explore_top),
    }
    if name == "premium":
        if group_price is None or np.shape(group_price) != (action_space.n_arms,):
            raise ValueError(f"the premium heuristic needs group_price of shape ({action_space.n_arms},)")
        return GreedyHeuristic(
            action_space, name, np.log(np.asarray(group_price, dtype=np.float64)), 0.0, FixedCoupon(0)
        )
    if name not in table:
        raise ValueError(f"unknown heuristic {name!r}; expected one of {HEURISTICS}")
    scores, rule, explore = table[name]
    return GreedyHeuristic(action_space, name, scores, affinity_weight, rule, explore)
