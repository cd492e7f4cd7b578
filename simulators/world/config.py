"""Every parameter of the ground-truth world (v2), in one validated frozen dataclass.

The formulas these parameters enter are in :mod:`retentionrl.simulators.world.simulator` (dynamics),
:mod:`retentionrl.simulators.world.catalog` (items and groups) and :mod:`retentionrl.simulators.world.population` (shoppers).
Per-segment parameters are tuples with one entry per segment, in the order of
``segment_names``. Each default names its source: a published figure, or a calibration
against the real purchase logs in ``../shared/data`` (``experiments/world_calibration.py``),
or, where neither pins it, a design choice stated as such.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from retentionrl.core.actions import DEFAULT_COUPON_LEVELS, ActionSpace
from retentionrl.core.checks import require_int

WORLD_VERSION = 2
"""Version of the world's laws. Logs, simulator checkpoints and caches record it; those of
another version are refused by name (:meth:`WorldConfig.from_json`)."""


class WorldVersionError(ValueError):
    """Something made by another version of the world's laws."""


@dataclass(frozen=True)
class WorldConfig:
    """Parameters of the ground-truth world v2 (defaults: a mid-size fashion/home shop).

    Catalog (:mod:`retentionrl.simulators.world.catalog`):

    :param n_items: items in the catalog, >= ``n_groups``.
    :param n_groups: item groups; the recommendation arms, >= 2.
    :param n_clickbait: groups with high click appeal and low quality, in [0, n_groups).
    :param coupon_levels: discount ladder, starting at 0 (see :class:`ActionSpace`).
    :param horizon_days: H, the horizon of retention metrics, >= 1.
    :param catalog_seed: seed of the catalog, fixed per world (shoppers use the run seed).
    :param price_median: median item list price, > 0.
    :param price_group_sigma: log-sd of group median prices around ``price_median``, >= 0.
    :param price_item_sigma: log-sd of item prices around their group median, >= 0.
    :param item_popularity_zipf: exponent of the Zipf law (weight 1/rank^s) by which the
        item shown is drawn inside its group, >= 0 (0: uniform). Default 1.0: sales by
        rank follow a power law of slope near 1 (Brynjolfsson, Hu & Smith 2003, Amazon;
        Chevalier & Goolsbee 2003).
    :param margin_mean: mean gross margin of a group (share of list price), in (0, 1).
        Default 0.45: gross margins of apparel and home retail run 35-55% (Damodaran,
        margins by sector, US, Jan 2024: apparel 52%, retail special lines 35%).
    :param margin_sigma: sd of group margins around the mean (clipped to [0.15, 0.75]), >= 0.
    :param appeal_sigma: sd of the click appeal of ordinary groups, >= 0.
    :param clickbait_appeal: click appeal (logit units) of clickbait groups.
    :param quality_sigma: sd of the quality of ordinary groups, >= 0.
    :param clickbait_quality: quality of clickbait groups (negative: disappointing).
    :param group_popularity_zipf: exponent s of the Zipf prior (weight 1/rank^s) from which
        shoppers' favourite groups are drawn, >= 0; clickbait groups get weight
        ``clickbait_favourite_weight`` of the smallest ordinary weight.
    :param clickbait_favourite_weight: relative prior weight of clickbait groups, >= 0.

    Population (:mod:`retentionrl.simulators.world.population`), BTYD-style heterogeneity. The visit-rate,
    dropout and purchase defaults were calibrated so that the purchase days of the world's
    logs (softmax logging policy, 365 days) match UCI Online Retail's (gap quantiles, BG/NBD
    r, never-return and active shares; ``experiments/world_calibration.py``, table in the
    README); the price and deal sensitivities so that the coupon arc elasticity of units
    (-2.1 to -2.4) lies in the -1.5 to -3.5 range around the meta-analytic mean of -2.62
    (Bijmolt, van Heerde & Pieters 2005; ``experiments/world_laws.py``). The four segments: coupon seekers (deal prone), loyal
    (frequent, price tolerant), fading (satisfaction drifts down) and not in market
    (browsers who rarely buy and soon leave; Radcliffe & Surry 2011's "lost causes").

    :param segment_names: names of the shopper segments.
    :param segment_mix: population share of each segment, >= 0, summing to 1.
    :param segment_purchase_logit: base logit of buying after a click, per segment.
    :param segment_price_sensitivity: mean :math:`\\beta` of the absolute price term,
        per segment, > 0 (lognormal inside a segment, log-sd ``price_sensitivity_sigma``).
    :param segment_deal_sensitivity: mean :math:`\\kappa` of the reference-price (gain /
        loss) term, per segment, >= 0 (lognormal inside a segment, log-sd
        ``deal_sensitivity_sigma``): coupon responsiveness varies inside every segment.
    :param segment_smoothing: mean rate :math:`\\alpha` in (0, 1] at which a shopper's
        expected discount moves towards each offer, per segment (Beta inside a segment).
    :param segment_initial_expectation: mean expected discount at the first visit (a
        burn-in: shoppers arrive having seen the market's promotions), per segment.
    :param segment_gap_days: mean days between visits at satisfaction 0 (the mean of the
        gamma-distributed visit rate is its inverse), >= 1, per segment.
    :param segment_dropout: mean probability of dropping out after a visit at
        satisfaction 0, in (0, 1), per segment (Beta across shoppers, as BG/NBD's p).
    :param segment_satisfaction_drift: satisfaction added at every visit (fading < 0).
    :param visit_rate_shape: gamma shape r of the visit rate inside a segment, > 0 (CV of
        the rate :math:`1/\\sqrt{r}`); BG/NBD fits of real logs find r of 0.2-1.
    :param dropout_concentration: a + b of the Beta distribution of dropout, > 0.
    :param shopper_logit_sigma: sd of each shopper's own offset on the purchase logit, >= 0.
    :param price_sensitivity_sigma: log-sd of :math:`\\beta` inside a segment, >= 0.
    :param deal_sensitivity_sigma: log-sd of :math:`\\kappa` inside a segment, >= 0.
    :param smoothing_concentration: concentration of the Beta of :math:`\\alpha`, > 0.
    :param n_favourites: favourite groups per shopper (relevance 1), in [1, n_groups].
    :param background_relevance: relevance of the other groups is uniform on
        [0, background_relevance], in [0, 1].

    Responses (:mod:`retentionrl.simulators.world.simulator`):

    :param click_logit: base click logit.
    :param click_appeal: weight of group appeal on the click logit, >= 0.
    :param click_relevance: weight of relevance on the click logit, >= 0.
    :param click_satisfaction: weight of satisfaction on the click logit, >= 0.
    :param purchase_relevance: weight of relevance on the purchase logit, >= 0.
    :param purchase_quality: weight of group quality on the purchase logit, >= 0.
    :param purchase_satisfaction: weight of satisfaction on the purchase logit, >= 0.
    :param price_reference: :math:`P_0`, the group price level at which the cross-group
        price term is 0, > 0.
    :param cross_group_price_weight: :math:`\\nu \\in [0, 1]`, weight of a group's price level
        (against :math:`P_0`) relative to an item's price within its group. Default 0.6, a
        design choice inside what the evidence allows: shoppers respond less to price across
        categories than within one (in scanner-data decompositions choice within a category
        carries about three quarters of the price elasticity, category incidence and
        quantity the rest: Bell, Chiang & Padmanabhan 1999), yet enough that a dearer group
        earns less per impression (the cross-group unit elasticity exceeds 1), so showing
        the dearest groups does not pay.
    :param loss_aversion: :math:`\\lambda \\ge 1`: a price above the reference weighs
        lambda times a gain of the same size.
    :param price_threshold: :math:`\\theta \\ge 0`, log-price differences from the
        reference smaller than this go unnoticed (latitude of price acceptance).
    :param gain_saturation: :math:`g_{max} > 0`: the perceived gain :math:`z / (1 + z / g_{max})`
        of an offer :math:`z = (x - \\theta)^+` below the reference rises with slope 1 and
        saturates at :math:`g_{max}` (deal-effect curves saturate; with the threshold they are
        S-shaped: Gupta & Cooper 1992). Default 0.5: gains of the ladder's offers (up to 20%)
        are perceived at 75-90% of their size, so loss / gain stays near 2-3.
    :param extra_unit_base: :math:`\\pi_0`, chance of each of ``max_extra_units`` extra units
        at full price, in [0, 1].
    :param extra_unit_discount: :math:`\\phi \\ge 0`, the chance rises by phi x coupon fraction
        (shoppers stock up on a deal).
    :param max_extra_units: extra units a purchase can hold beyond the first, >= 0.
    :param satiation: :math:`\\zeta \\ge 0`, purchase logit lost per unit recently bought of
        the shown group.
    :param satiation_days: :math:`\\tau > 0`, days over which the satiety of a bought group
        decays by a factor e.

    Satisfaction, return gap and churn (:mod:`retentionrl.simulators.world.simulator`):

    :param satisfaction_persistence: rho in [0, 1), the share of satisfaction carried over.
    :param satisfaction_relevance: gain per unit of (relevance - relevance_reference).
    :param relevance_reference: relevance that leaves satisfaction unchanged, in [0, 1].
    :param satisfaction_quality: gain per unit of quality of a clicked group, >= 0.
    :param satisfaction_purchase: :math:`\\omega_p \\ge 0`, gain from a purchase of a group
        of quality 0 (x (1 + quality)).
    :param deal_purchase_discount: :math:`\\delta \\in [0, 1]`, share of that gain lost when
        the purchase was made with a coupon.
    :param satisfaction_disappointment: omega_d >= 0, satisfaction lost per unit of the
        loss of an offer below the expected discount.
    :param gap_satisfaction: gamma_g >= 0, mean gap is scaled by exp(-gamma_g * s).
    :param gap_per_unit: :math:`\\psi \\ge 0`, the next mean gap grows by this share per
        extra unit bought (the shopper has stock: purchase acceleration).
    :param churn_satisfaction: gamma_c >= 0, dropout logit falls by gamma_c * s.
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
    item_popularity_zipf: float = 1.0
    margin_mean: float = 0.45
    margin_sigma: float = 0.1
    appeal_sigma: float = 0.3
    clickbait_appeal: float = 1.8
    quality_sigma: float = 0.3
    clickbait_quality: float = -1.5
    group_popularity_zipf: float = 0.7
    clickbait_favourite_weight: float = 0.2

    segment_names: tuple[str, ...] = ("coupon_seeker", "loyal", "fading", "not_in_market")
    segment_mix: tuple[float, ...] = (0.25, 0.3, 0.25, 0.2)
    segment_purchase_logit: tuple[float, ...] = (-1.8, -0.8, -1.2, -3.0)
    segment_price_sensitivity: tuple[float, ...] = (7.0, 4.5, 6.0, 6.0)
    segment_deal_sensitivity: tuple[float, ...] = (4.0, 1.0, 2.0, 1.5)
    segment_smoothing: tuple[float, ...] = (0.15, 0.08, 0.12, 0.1)
    segment_initial_expectation: tuple[float, ...] = (0.08, 0.02, 0.04, 0.03)
    segment_gap_days: tuple[float, ...] = (25.0, 17.0, 32.0, 52.0)
    segment_dropout: tuple[float, ...] = (0.04, 0.02, 0.08, 0.15)
    segment_satisfaction_drift: tuple[float, ...] = (0.0, 0.0, -0.1, 0.0)
    visit_rate_shape: float = 2.5
    dropout_concentration: float = 4.0
    shopper_logit_sigma: float = 0.4
    price_sensitivity_sigma: float = 0.4
    deal_sensitivity_sigma: float = 0.6
    smoothing_concentration: float = 10.0
    n_favourites: int = 2
    background_relevance: float = 0.3

    click_logit: float = -1.0
    click_appeal: float = 1.0
    click_relevance: float = 1.5
    click_satisfaction: float = 0.3
    purchase_relevance: float = 1.2
    purchase_quality: float = 1.0
    purchase_satisfaction: float = 0.3
    price_reference: float = 30.0
    cross_group_price_weight: float = 0.6
    loss_aversion: float = 2.0
    price_threshold: float = 0.03
    gain_saturation: float = 0.5
    extra_unit_base: float = 0.07
    extra_unit_discount: float = 0.25
    max_extra_units: int = 3
    satiation: float = 0.4
    satiation_days: float = 30.0

    satisfaction_persistence: float = 0.8
    satisfaction_relevance: float = 0.4
    relevance_reference: float = 0.3
    satisfaction_quality: float = 0.4
    satisfaction_purchase: float = 0.5
    deal_purchase_discount: float = 0.5
    satisfaction_disappointment: float = 0.5
    gap_satisfaction: float = 0.2
    gap_per_unit: float = 0.5
    churn_satisfaction: float = 0.6
    satisfaction_clip: float = 3.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "coupon_levels", ActionSpace(self.n_groups, self.coupon_levels).coupon_levels)
        for name in (
            "n_items",
            "n_groups",
            "n_clickbait",
            "horizon_days",
            "catalog_seed",
            "n_favourites",
            "max_extra_units",
        ):
            require_int(name, getattr(self, name))
        _require(self.n_groups >= 2, "n_groups", self.n_groups, ">= 2")
        _require(self.n_items >= self.n_groups, "n_items", self.n_items, f">= n_groups ({self.n_groups})")
        _require(0 <= self.n_clickbait < self.n_groups, "n_clickbait", self.n_clickbait, f"in [0, {self.n_groups})")
        _require(self.horizon_days >= 1, "horizon_days", self.horizon_days, ">= 1")
        _require(1 <= self.n_favourites <= self.n_groups, "n_favourites", self.n_favourites, f"in [1, {self.n_groups}]")
        _require(self.max_extra_units >= 0, "max_extra_units", self.max_extra_units, ">= 0")
        for name in (
            "price_median",
            "price_reference",
            "gain_saturation",
            "satiation_days",
            "visit_rate_shape",
            "dropout_concentration",
            "smoothing_concentration",
            "satisfaction_clip",
        ):
            _require(getattr(self, name) > 0, name, getattr(self, name), "> 0")
        for name in (
            "price_group_sigma",
            "price_item_sigma",
            "item_popularity_zipf",
            "margin_sigma",
            "appeal_sigma",
            "quality_sigma",
            "group_popularity_zipf",
            "clickbait_favourite_weight",
            "shopper_logit_sigma",
            "price_sensitivity_sigma",
            "deal_sensitivity_sigma",
            "click_appeal",
            "click_relevance",
            "click_satisfaction",
            "purchase_relevance",
            "purchase_quality",
            "purchase_satisfaction",
            "price_threshold",
            "extra_unit_discount",
            "satiation",
            "satisfaction_quality",
            "satisfaction_purchase",
            "satisfaction_disappointment",
            "gap_satisfaction",
            "gap_per_unit",
            "churn_satisfaction",
        ):
            _require(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        for name in (
            "background_relevance",
            "relevance_reference",
            "extra_unit_base",
            "deal_purchase_discount",
            "cross_group_price_weight",
        ):
            _require(0 <= getattr(self, name) <= 1, name, getattr(self, name), "in [0, 1]")
        _require(0 < self.margin_mean < 1, "margin_mean", self.margin_mean, "in (0, 1)")
        _require(
            0 <= self.satisfaction_persistence < 1,
            "satisfaction_persistence",
            self.satisfaction_persistence,
            "in [0, 1)",
        )
        _require(self.loss_aversion >= 1, "loss_aversion", self.loss_aversion, ">= 1")
        self._check_segments()

    def _check_segments(self) -> None:
        k = len(self.segment_names)
        _require(k >= 1, "segment_names", self.segment_names, "non-empty")
        for f in fields(self):
            if f.name.startswith("segment_") and f.name != "segment_names":
                value = tuple(float(v) for v in getattr(self, f.name))
                _require(len(value) == k, f.name, value, f"of length {k} (one per segment)")
                object.__setattr__(self, f.name, value)
        _require(
            min(self.segment_mix) >= 0 and abs(sum(self.segment_mix) - 1) < 1e-9,
            "segment_mix",
            self.segment_mix,
            "non-negative and summing to 1",
        )
        _require(
            min(self.segment_price_sensitivity) > 0, "segment_price_sensitivity", self.segment_price_sensitivity, "> 0"
        )
        _require(
            min(self.segment_deal_sensitivity) >= 0, "segment_deal_sensitivity", self.segment_deal_sensitivity, ">= 0"
        )
        _require(
            all(0 < v <= 1 for v in self.segment_smoothing), "segment_smoothing", self.segment_smoothing, "in (0, 1]"
        )
        _require(
            all(0 <= v < 1 for v in self.segment_initial_expectation),
            "segment_initial_expectation",
            self.segment_initial_expectation,
            "in [0, 1)",
        )
        _require(min(self.segment_gap_days) >= 1, "segment_gap_days", self.segment_gap_days, ">= 1")
        _require(all(0 < v < 1 for v in self.segment_dropout), "segment_dropout", self.segment_dropout, "in (0, 1)")

    @property
    def action_space(self) -> ActionSpace:
        """The flat (item group, coupon level) action space of this world."""
        return ActionSpace(self.n_groups, self.coupon_levels)

    def to_json(self) -> str:
        """The parameters and :data:`WORLD_VERSION` as one JSON object (saved beside logs and runs)."""
        return json.dumps({"world_version": WORLD_VERSION, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, source: str = "world config") -> WorldConfig:
        """The config of :meth:`to_json`; one of another world version is refused by name.

        :raises WorldVersionError: ``text`` was written by world v1 (no version) or another
            version; the message names ``source`` and says to regenerate it.
        """
        data = json.loads(text)
        version = data.pop("world_version", 1)
        if version != WORLD_VERSION:
            raise WorldVersionError(
                f"{source} was made by world v{version}; this code is world v{WORLD_VERSION}: "
                "regenerate it (retentionrl world logs ...)"
            )
        tuples = {f.name for f in fields(cls) if str(f.type).startswith("tuple")}
        # JSON values, checked by __post_init__; JSON arrays become the tuples the fields hold
        kwargs: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
        return cls(**kwargs)


def _require(ok: bool, name: str, value: object, what: str) -> None:
    if not ok:
        raise ValueError(f"WorldConfig.{name} must be {what}, got {value!r}")
