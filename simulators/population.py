"""The world's shoppers: a seeded population of segments with individual traits.

A shopper of segment :math:`k` (drawn with probability ``segment_mix[k]``, by inverse CDF:
the first :math:`k` whose cumulative mix exceeds a uniform draw) gets

* purchase logit :math:`b = b_k + \\sigma_\\ell z_1` and churn logit
  :math:`c = c_k + \\sigma_\\ell z_2`;
* coupon sensitivity :math:`\\kappa_k`, habituation speed :math:`\\eta_k`, satisfaction
  drift :math:`d_k`;
* mean return gap :math:`\\mu = \\mu_k \\exp(\\sigma_\\mu z_3)` days;
* relevance :math:`r_g` of each group: 1 for ``n_favourites`` favourite groups drawn
  without replacement from the catalog's favourite prior (Gumbel top-k), uniform on
  ``[0, background_relevance]`` for the others;
* latent satisfaction :math:`s = 0` and coupon expectation :math:`e = 0` at the first visit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from simulators.catalog import Catalog
from simulators.world_config import WorldConfig


@dataclass
class ShopperState:
    """Latent state of a batch of ``n`` shoppers; every field has ``n`` rows.

    :param segment: segment index.
    :param relevance: relevance of each group to the shopper, in [0, 1], ``(n, n_groups)``.
    :param purchase_logit: the shopper's base purchase logit :math:`b`.
    :param coupon_sensitivity: :math:`\\kappa`, purchase-logit gain per unit coupon.
    :param habituation: :math:`\\eta`, speed at which expectation rises to a coupon.
    :param mean_gap: :math:`\\mu`, mean days between visits at satisfaction 0.
    :param churn_logit: :math:`c`, churn logit at satisfaction 0.
    :param drift: :math:`d`, satisfaction added at every visit.
    :param satisfaction: :math:`s`, latent satisfaction.
    :param expectation: :math:`e`, the coupon fraction the shopper has come to expect.
    """

    segment: np.ndarray
    relevance: np.ndarray
    purchase_logit: np.ndarray
    coupon_sensitivity: np.ndarray
    habituation: np.ndarray
    mean_gap: np.ndarray
    churn_logit: np.ndarray
    drift: np.ndarray
    satisfaction: np.ndarray
    expectation: np.ndarray

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

        return cls(
            segment=segment,
            relevance=relevance,
            purchase_logit=per_segment(config.segment_purchase_logit) + config.shopper_logit_sigma * z[0],
            coupon_sensitivity=per_segment(config.segment_coupon_sensitivity),
            habituation=per_segment(config.segment_habituation),
            mean_gap=per_segment(config.segment_gap_days) * np.exp(config.shopper_gap_sigma * z[2]),
            churn_logit=per_segment(config.segment_churn_logit) + config.shopper_logit_sigma * z[1],
            drift=per_segment(config.segment_satisfaction_drift),
            satisfaction=np.zeros(n),
            expectation=np.zeros(n),
        )

    def put(self, mask: np.ndarray, fresh: ShopperState) -> None:
        """Overwrite the rows where ``mask`` is true with the rows of ``fresh`` (in order)."""
        for f in fields(self):
            getattr(self, f.name)[mask] = getattr(fresh, f.name)

    def take(self, mask: np.ndarray) -> ShopperState:
        """The shoppers where ``mask`` is true, as a new state."""
        return ShopperState(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})
