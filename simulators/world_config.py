"""Every parameter of the ground-truth shopper world, in one validated frozen dataclass.

The formulas these parameters enter are in :mod:`simulators.world` (dynamics),
:mod:`simulators.catalog` (items and groups) and :mod:`simulators.population` (shoppers).
Per-segment parameters are tuples with one entry per segment, in the order of
``segment_names``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from interactions.actions import DEFAULT_COUPON_LEVELS, ActionSpace


@dataclass(frozen=True)
class WorldConfig:
    """Parameters of the ground-truth world (defaults: a mid-size fashion/home shop).

    Catalog (:mod:`simulators.catalog`):

    :param n_items: items in the catalog, >= ``n_groups``.
    :param n_groups: item groups; the recommendation arms, >= 2.
    :param n_clickbait: groups with high click appeal and low quality, in [0, n_groups).
    :param coupon_levels: discount ladder, starting at 0 (see :class:`ActionSpace`).
    :param horizon_days: H, the horizon of retention metrics, >= 1.
    :param catalog_seed: seed of the catalog, fixed per world (shoppers use the run seed).
    :param price_median: median item list price, > 0.
    :param price_group_sigma: log-sd of group median prices around ``price_median``, >= 0.
    :param price_item_sigma: log-sd of item prices around their group median, >= 0.
    :param extra_unit_prob: chance a purchase has 2 units instead of 1, in [0, 1].
    :param appeal_sigma: sd of the click appeal of ordinary groups, >= 0.
    :param clickbait_appeal: click appeal (logit units) of clickbait groups.
    :param quality_sigma: sd of the quality of ordinary groups, >= 0.
    :param clickbait_quality: quality of clickbait groups (negative: disappointing).
    :param group_popularity_zipf: exponent s of the Zipf prior (weight 1/rank^s) from which
        shoppers' favourite groups are drawn, >= 0; clickbait groups get weight
        ``clickbait_favourite_weight`` of the smallest ordinary weight.
    :param clickbait_favourite_weight: relative prior weight of clickbait groups, >= 0.

    Population (:mod:`simulators.population`):

    :param segment_names: names of the shopper segments.
    :param segment_mix: population share of each segment, >= 0, summing to 1.
    :param segment_purchase_logit: base logit of buying after a click, per segment.
    :param segment_coupon_sensitivity: kappa, purchase-logit gain per unit of coupon
        fraction above expectation, >= 0, per segment.
    :param segment_habituation: eta_up, speed in [0, 1] at which the coupon expectation
        rises to a coupon received, per segment.
    :param segment_gap_days: mean days between visits at satisfaction 0, >= 1, per segment.
    :param segment_churn_logit: logit of churning after a visit at satisfaction 0.
    :param segment_satisfaction_drift: satisfaction added at every visit (fading < 0).
    :param shopper_logit_sigma: sd of each shopper's own offset on the purchase and churn
        logits, >= 0.
    :param shopper_gap_sigma: log-sd of each shopper's own mean gap, >= 0.
    :param n_favourites: favourite groups per shopper (relevance 1), in [1, n_groups].
    :param background_relevance: relevance of the other groups is uniform on
        [0, background_relevance], in [0, 1].

    Responses (:mod:`simulators.world`):

    :param click_logit: base click logit.
    :param click_appeal: weight of group appeal on the click logit, >= 0.
    :param click_relevance: weight of relevance on the click logit, >= 0.
    :param click_satisfaction: weight of satisfaction on the click logit, >= 0.
    :param purchase_relevance: weight of relevance on the purchase logit, >= 0.
    :param purchase_quality: weight of group quality on the purchase logit, >= 0.
    :param purchase_satisfaction: weight of satisfaction on the purchase logit, >= 0.
    :param loss_aversion: lambda >= 1: an offer below the expected coupon weighs lambda
        times as much as one above it.
    :param expectation_decay: eta_down in [0, 1], speed at which the coupon expectation
        falls back towards a smaller offer.

    Satisfaction, return gap and churn (:mod:`simulators.world`):

    :param satisfaction_persistence: rho in [0, 1), the share of satisfaction carried over.
    :param satisfaction_relevance: gain per unit of (relevance - relevance_reference).
    :param relevance_reference: relevance that leaves satisfaction unchanged, in [0, 1].
    :param satisfaction_quality: gain per unit of quality of a clicked group, >= 0.
    :param satisfaction_purchase: gain from a purchase, >= 0.
    :param satisfaction_disappointment: omega_d >= 0, satisfaction lost per unit of
        negative coupon utility (an offer below the expected coupon, x loss_aversion).
    :param gap_satisfaction: gamma_g >= 0, mean gap is scaled by exp(-gamma_g * s).
    :param churn_satisfaction: gamma_c >= 0, churn logit falls by gamma_c * s.
    :param satisfaction_clip: satisfaction is clipped to [-clip, clip], > 0.
    """

    n_items: int = 1000
    n_groups: int = 20
    n_clickbait: int = 4
    coupon_levels: tuple[float, ...] = DEFAULT_COUPON_LEVELS
    horizon_days: int = 90
    catalog_seed: int = 2024
    price_median: float = 30.0
    price_group_sigma: float = 0.5
    price_item_sigma: float = 0.3
    extra_unit_prob: float = 0.2
    appeal_sigma: float = 0.3
    clickbait_appeal: float = 1.8
    quality_sigma: float = 0.3
    clickbait_quality: float = -1.5
    group_popularity_zipf: float = 0.7
    clickbait_favourite_weight: float = 0.2

    segment_names: tuple[str, ...] = ("coupon_seeker", "loyal", "fading")
    segment_mix: tuple[float, ...] = (0.3, 0.4, 0.3)
    segment_purchase_logit: tuple[float, ...] = (-2.5, -0.2, -0.6)
    segment_coupon_sensitivity: tuple[float, ...] = (20.0, 2.0, 6.0)
    segment_habituation: tuple[float, ...] = (0.3, 0.15, 0.2)
    segment_gap_days: tuple[float, ...] = (14.0, 9.0, 18.0)
    segment_churn_logit: tuple[float, ...] = (-2.2, -3.2, -1.6)
    segment_satisfaction_drift: tuple[float, ...] = (0.0, 0.0, -0.1)
    shopper_logit_sigma: float = 0.4
    shopper_gap_sigma: float = 0.4
    n_favourites: int = 2
    background_relevance: float = 0.3

    click_logit: float = -1.0
    click_appeal: float = 1.0
    click_relevance: float = 1.5
    click_satisfaction: float = 0.3
    purchase_relevance: float = 1.2
    purchase_quality: float = 1.0
    purchase_satisfaction: float = 0.3
    loss_aversion: float = 1.2
    expectation_decay: float = 0.8

    satisfaction_persistence: float = 0.8
    satisfaction_relevance: float = 0.4
    relevance_reference: float = 0.3
    satisfaction_quality: float = 0.4
    satisfaction_purchase: float = 0.8
    satisfaction_disappointment: float = 2.0
    gap_satisfaction: float = 0.4
    churn_satisfaction: float = 0.8
    satisfaction_clip: float = 3.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "coupon_levels", ActionSpace(self.n_groups, self.coupon_levels).coupon_levels)
        for name in ("n_items", "n_groups", "n_clickbait", "horizon_days", "catalog_seed", "n_favourites"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value:
                raise ValueError(f"{name} must be an integer, got {value!r}")
        _require(self.n_groups >= 2, "n_groups", self.n_groups, ">= 2")
        _require(self.n_items >= self.n_groups, "n_items", self.n_items, f">= n_groups ({self.n_groups})")
        _require(0 <= self.n_clickbait < self.n_groups, "n_clickbait", self.n_clickbait, f"in [0, {self.n_groups})")
        _require(self.horizon_days >= 1, "horizon_days", self.horizon_days, ">= 1")
        _require(1 <= self.n_favourites <= self.n_groups, "n_favourites", self.n_favourites, f"in [1, {self.n_groups}]")
        _require(self.price_median > 0, "price_median", self.price_median, "> 0")
        for name in ("price_group_sigma", "price_item_sigma", "appeal_sigma", "quality_sigma",
                     "group_popularity_zipf", "clickbait_favourite_weight", "shopper_logit_sigma",
                     "shopper_gap_sigma", "click_appeal", "click_relevance", "click_satisfaction",
                     "purchase_relevance", "purchase_quality", "purchase_satisfaction",
                     "satisfaction_quality", "satisfaction_purchase", "satisfaction_disappointment",
                     "gap_satisfaction", "churn_satisfaction"):
            _require(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        for name in ("extra_unit_prob", "background_relevance", "relevance_reference", "expectation_decay"):
            _require(0 <= getattr(self, name) <= 1, name, getattr(self, name), "in [0, 1]")
        _require(0 <= self.satisfaction_persistence < 1, "satisfaction_persistence",
                 self.satisfaction_persistence, "in [0, 1)")
        _require(self.loss_aversion >= 1, "loss_aversion", self.loss_aversion, ">= 1")
        _require(self.satisfaction_clip > 0, "satisfaction_clip", self.satisfaction_clip, "> 0")
        self._check_segments()

    def _check_segments(self) -> None:
        k = len(self.segment_names)
        _require(k >= 1, "segment_names", self.segment_names, "non-empty")
        for f in fields(self):
            if f.name.startswith("segment_") and f.name != "segment_names":
                value = tuple(float(v) for v in getattr(self, f.name))
                _require(len(value) == k, f.name, value, f"of length {k} (one per segment)")
                object.__setattr__(self, f.name, value)
        _require(min(self.segment_mix) >= 0 and abs(sum(self.segment_mix) - 1) < 1e-9,
                 "segment_mix", self.segment_mix, "non-negative and summing to 1")
        _require(min(self.segment_coupon_sensitivity) >= 0, "segment_coupon_sensitivity",
                 self.segment_coupon_sensitivity, ">= 0")
        _require(all(0 <= v <= 1 for v in self.segment_habituation), "segment_habituation",
                 self.segment_habituation, "in [0, 1]")
        _require(min(self.segment_gap_days) >= 1, "segment_gap_days", self.segment_gap_days, ">= 1")

    @property
    def action_space(self) -> ActionSpace:
        """The flat (item group, coupon level) action space of this world."""
        return ActionSpace(self.n_groups, self.coupon_levels)

    def to_json(self) -> str:
        """The parameters as one JSON object (saved beside logs and runs)."""
        return json.dumps(asdict(self), sort_keys=True)


def _require(ok: bool, name: str, value: object, what: str) -> None:
    if not ok:
        raise ValueError(f"WorldConfig.{name} must be {what}, got {value!r}")
