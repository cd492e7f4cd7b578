"""The world's shoppers: a seeded population of segments with individual traits (v2).

A shopper of segment :math:`k` (drawn with probability ``segment_mix[k]``, by inverse CDF:
the first :math:`k` whose cumulative mix exceeds a uniform draw) gets, BTYD-style
(Fader, Hardie & Lee 2005: gamma-distributed purchase rates, beta-distributed dropout):

* visit rate :math:`\\lambda \\sim \\mathrm{Gamma}(r, r \\mu_k)` (shape :math:`r`, mean
  :math:`1/\\mu_k`), so mean gap :math:`\\mu = 1/\\lambda` days;
* dropout probability after a visit :math:`p \\sim \\mathrm{Beta}(\\bar p_k n, (1 - \\bar p_k) n)`
  (mean :math:`\\bar p_k`, concentration :math:`n`), kept as its logit :math:`c`;
* purchase logit :math:`b = b_k + \\sigma_\\ell z_1`;
* price sensitivity :math:`\\beta = \\bar\\beta_k e^{\\sigma_\\beta z_2 - \\sigma_\\beta^2/2}` and deal
  (reference-price) sensitivity :math:`\\kappa = \\bar\\kappa_k e^{\\sigma_\\kappa z_3 - \\sigma_\\kappa^2/2}`
  (lognormal with mean :math:`\\bar\\beta_k`, :math:`\\bar\\kappa_k`: responsiveness varies inside
  every segment);
* smoothing rate of the expected discount :math:`\\alpha \\sim \\mathrm{Beta}(\\bar\\alpha_k m,
  (1 - \\bar\\alpha_k) m)`;
* satisfaction drift :math:`d_k`;
* relevance :math:`r_g` of each group: 1 for ``n_favourites`` favourite groups drawn
  without replacement from the catalog's favourite prior (Gumbel top-k), uniform on
  ``[0, background_relevance]`` for the others;
* at the first visit: satisfaction :math:`s = 0`; expected discount
  :math:`e = 2 \\bar e_k B`, :math:`B \\sim \\mathrm{Beta}(2, 2)` (mean :math:`\\bar e_k`: a burn-in,
  shoppers arrive having seen the market's promotions); no satiety.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from retentionrl.simulators.world.catalog import Catalog
from retentionrl.simulators.world.config import WorldConfig


@dataclass
class ShopperState:
    """Latent state of a batch of ``n`` shoppers; every field has ``n`` rows.

    :param segment: segment index.
    :param relevance: relevance of each group to the shopper, in [0, 1], ``(n, n_groups)``.
    :param purchase_logit: the shopper's base purchase logit :math:`b`.
    :param price_sensitivity: :math:`\\beta`, purchase logit lost per unit of log price.
    :param deal_sensitivity: :math:`\\kappa`, weight of the gain / loss against the reference price.
    :param smoothing: :math:`\\alpha`, rate at which the expected discount follows offers.
    :param mean_gap: :math:`\\mu`, mean days between visits at satisfaction 0.
    :param churn_logit: :math:`c`, dropout logit at satisfaction 0.
    :param drift: :math:`d`, satisfaction added at every visit.
    :param satisfaction: :math:`s`, latent satisfaction.
    :param expectation: :math:`e`, the discount fraction the shopper has come to expect.
    :param satiety: :math:`z`, units recently bought of group ``satiety_group`` (decayed).
    :param satiety_group: the group last bought, -1 before any purchase.
    """

    segment: np.ndarray
    relevance: np.ndarray
    purchase_logit: np.ndarray
    price_sensitivity: np.ndarray
    deal_sensitivity: np.ndarray
    smoothing: np.ndarray
    mean_gap: np.ndarray
    churn_logit: np.ndarray
    drift: np.ndarray
    satisfaction: np.ndarray
    expectation: np.ndarray
    satiety: np.ndarray
    satiety_group: np.ndarray

    @classmethod
    def draw(cls, config: WorldConfig, catalog: Catalog, n: int, rng: np.random.Generator) -> ShopperState:
        """``n`` fresh shoppers from the population of ``config``."""
        # inverse CDF, the draw numpy's rng.choice(p=...) makes, without its checks of p
        # (validated once by WorldConfig), which cost more than the draw for one shopper
        cdf = np.cumsum(config.segment_mix)
        segment = np.searchsorted(cdf / cdf[-1], rng.random(n), side="right")
        z = rng.standard_normal((3, n))
        keys = np.log(catalog.favourite_prior) + rng.gumbel(size=(n, config.n_groups))
        favourites = np.argpartition(-keys, config.n_favourites - 1, axis=1)[:, : config.n_favourites]
        relevance = config.background_relevance * rng.random((n, config.n_groups))
        relevance[np.arange(n)[:, None], favourites] = 1.0

        def per_segment(values: tuple[float, ...]) -> np.ndarray:
            return np.asarray(values)[segment]

        def beta(mean: np.ndarray, concentration: float) -> np.ndarray:
            return rng.beta(mean * concentration, (1.0 - mean) * concentration)

        def lognormal(mean: np.ndarray, sigma: float, z: np.ndarray) -> np.ndarray:
            return mean * np.exp(sigma * z - sigma**2 / 2)

        shape = config.visit_rate_shape
        rate = rng.gamma(shape, 1.0 / (shape * per_segment(config.segment_gap_days)))
        dropout = np.clip(beta(per_segment(config.segment_dropout), config.dropout_concentration), 1e-6, 1 - 1e-6)
        return cls(
            segment=segment,
            relevance=relevance,
            purchase_logit=per_segment(config.segment_purchase_logit) + config.shopper_logit_sigma * z[0],
            price_sensitivity=lognormal(
                per_segment(config.segment_price_sensitivity), config.price_sensitivity_sigma, z[1]
            ),
            deal_sensitivity=lognormal(
                per_segment(config.segment_deal_sensitivity), config.deal_sensitivity_sigma, z[2]
            ),
            smoothing=beta(per_segment(config.segment_smoothing), config.smoothing_concentration),
            mean_gap=1.0 / np.maximum(rate, 1e-12),
            churn_logit=np.log(dropout) - np.log1p(-dropout),
            drift=per_segment(config.segment_satisfaction_drift),
            satisfaction=np.zeros(n),
            expectation=2.0 * per_segment(config.segment_initial_expectation) * rng.beta(2.0, 2.0, n),
            satiety=np.zeros(n),
            satiety_group=np.full(n, -1, dtype=np.int64),
        )

    def put(self, mask: np.ndarray, fresh: ShopperState) -> None:
        """Overwrite the rows where ``mask`` is true with the rows of ``fresh`` (in order)."""
        for f in fields(self):
            getattr(self, f.name)[mask] = getattr(fresh, f.name)

    def take(self, mask: np.ndarray) -> ShopperState:
        """The shoppers where ``mask`` is true, as a new state."""
        return ShopperState(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})
