"""The world's catalog: items in groups, with prices, click appeal and quality.

Drawn once per world from ``WorldConfig.catalog_seed`` (so every run and log of one
config sees the same shop). Items are numbered group by group: group :math:`g` holds the
items ``offsets[g] <= item < offsets[g + 1]`` (sizes differ by at most one).

* Clickbait: ``n_clickbait`` groups drawn at random, with appeal :math:`a_g` =
  ``clickbait_appeal`` and quality :math:`q_g` = ``clickbait_quality``; the others have
  :math:`a_g \\sim N(0, \\sigma_a^2)`, :math:`q_g \\sim N(0, \\sigma_q^2)`.
* Prices: group median :math:`m_g = P \\exp(\\sigma_G z_g)`, item price
  :math:`p_i = m_{g(i)} \\exp(\\sigma_I z_i)`, rounded to cents, :math:`z \\sim N(0,1)`.
* Item popularity: inside each group, items in a random order get weight
  :math:`1/rank^{s_I}` (Zipf, ``item_popularity_zipf``); the item shown is drawn from these
  weights (``item_cdf``, cumulative within the group).
* Gross margins: :math:`m_g = \\mathrm{clip}(\\bar m + \\sigma_m z_g, 0.15, 0.75)`; an item's
  unit cost is :math:`p_i (1 - m_{g(i)})`.
* Favourite prior: ordinary groups in a random order get weight :math:`1/rank^s`
  (Zipf), clickbait groups ``clickbait_favourite_weight`` times the smallest of those;
  normalised to sum to 1. Shoppers draw their favourite groups from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.world_config import WorldConfig


@dataclass(frozen=True)
class Catalog:
    """Items and groups of the world (arrays are read-only).

    :param item_group: group of each item, shape ``(n_items,)``.
    :param item_price: list price of each item, > 0.
    :param offsets: first item of each group, and ``n_items`` last: shape ``(n_groups + 1,)``.
    :param appeal: click appeal :math:`a_g` of each group (logit units).
    :param quality: quality :math:`q_g` of each group (negative: disappointing).
    :param is_clickbait: whether each group is clickbait.
    :param favourite_prior: probability of each group being drawn as a favourite.
    :param item_cdf: the group number plus the cumulative Zipf weight of each item inside
        its group (group :math:`g`'s items rise through :math:`(g, g + 1]`): the item shown
        from group :math:`g` for a uniform :math:`u` is the first whose value exceeds
        :math:`g + u` (one ``searchsorted`` for a whole batch).
    :param margin: gross margin :math:`m_g` of each group, share of list price.
    :param group_price: expected list price of the item shown from each group (Zipf-weighted
        mean): what a shop's catalog says a group costs.
    """

    item_group: np.ndarray
    item_price: np.ndarray
    offsets: np.ndarray
    appeal: np.ndarray
    quality: np.ndarray
    is_clickbait: np.ndarray
    favourite_prior: np.ndarray
    item_cdf: np.ndarray
    margin: np.ndarray
    group_price: np.ndarray

    def __post_init__(self) -> None:
        for value in vars(self).values():
            value.setflags(write=False)

    @property
    def group_size(self) -> np.ndarray:
        """Number of items in each group."""
        return np.diff(self.offsets)

    @property
    def item_cost(self) -> np.ndarray:
        """Unit cost of goods of each item: list price x (1 - its group's margin)."""
        return self.item_price * (1.0 - self.margin[self.item_group])

    def draw_items(self, arm: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The item shown from group ``arm`` for uniforms ``u`` (inverse CDF of the Zipf weights)."""
        item = np.searchsorted(self.item_cdf, arm + u, side="right")
        return np.minimum(item, self.offsets[arm + 1] - 1)  # u rounded up to 1 stays in the group

    @classmethod
    def draw(cls, config: WorldConfig) -> Catalog:
        """The catalog of ``config`` (deterministic in ``config.catalog_seed``)."""
        rng = np.random.default_rng(config.catalog_seed)
        g = config.n_groups
        offsets = np.linspace(0, config.n_items, g + 1).round().astype(np.int64)
        item_group = np.repeat(np.arange(g), np.diff(offsets))
        group_median = config.price_median * np.exp(config.price_group_sigma * rng.standard_normal(g))
        item_price = group_median[item_group] * np.exp(config.price_item_sigma * rng.standard_normal(config.n_items))
        is_clickbait = np.zeros(g, dtype=bool)
        is_clickbait[rng.choice(g, size=config.n_clickbait, replace=False)] = True
        appeal = np.where(is_clickbait, config.clickbait_appeal, config.appeal_sigma * rng.standard_normal(g))
        quality = np.where(is_clickbait, config.clickbait_quality, config.quality_sigma * rng.standard_normal(g))
        ordinary = np.flatnonzero(~is_clickbait)
        fav = np.empty(g)
        fav[rng.permutation(ordinary)] = 1.0 / np.arange(1, ordinary.size + 1) ** config.group_popularity_zipf
        fav[is_clickbait] = config.clickbait_favourite_weight * fav[ordinary].min()
        weight = np.empty(config.n_items)
        for grp in range(g):
            lo, hi = offsets[grp], offsets[grp + 1]
            weight[lo:hi] = 1.0 / (1 + rng.permutation(hi - lo)) ** config.item_popularity_zipf
        group_sum = np.bincount(item_group, weights=weight, minlength=g)
        cdf = np.empty(config.n_items)
        for grp in range(g):
            lo, hi = offsets[grp], offsets[grp + 1]
            cdf[lo:hi] = grp + np.cumsum(weight[lo:hi]) / group_sum[grp]
            cdf[hi - 1] = grp + 1.0
        margin = np.clip(config.margin_mean + config.margin_sigma * rng.standard_normal(g), 0.15, 0.75)
        price = np.maximum(np.round(item_price, 2), 0.01)
        return cls(
            item_group=item_group,
            item_price=price,
            offsets=offsets,
            appeal=appeal,
            quality=quality,
            is_clickbait=is_clickbait,
            favourite_prior=fav / fav.sum(),
            item_cdf=cdf,
            margin=margin,
            group_price=np.bincount(item_group, weights=weight * price, minlength=g) / group_sum,
        )

