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
  weights (``item_weight``).
* Gross margins: :math:`m_g = \\mathrm{clip}(\\bar m + \\sigma_m z_g, 0.15, 0.75)`; an item's
  unit cost is :math:`p_i (1 - m_{g(i)})`.
* Favourite prior: ordinary groups in a random order get weight :math:`1/rank^s`
  (Zipf), clickbait groups ``clickbait_favourite_weight`` times the smallest of those;
  normalised to sum to 1. Shoppers draw their favourite groups from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retentionrl.simulators.world.config import WorldConfig


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
    :param item_weight: Zipf probability of each item inside its group (each group's sum to 1).
    :param alias_accept: Walker alias table of each group's Zipf weights, ``(n_groups,
        max group size)``: slot :math:`j` of group :math:`g` keeps item :math:`j` with this
        probability, else hands over to ``alias_index``.
    :param alias_index: the other item (index inside the group) of each slot.
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
    item_weight: np.ndarray
    alias_accept: np.ndarray
    alias_index: np.ndarray
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
        """The item shown from group ``arm`` for uniforms ``u`` in [0, 1), by the group's Zipf
        weights (Walker's alias method: slot :math:`j = \\lfloor u K_g \\rfloor` of the group's
        :math:`K_g` items, kept when the rest :math:`u K_g - j` is below its acceptance
        probability, else its alias; one uniform serves both draws)."""
        size = self.offsets[arm + 1] - self.offsets[arm]
        scaled = u * size
        slot = np.minimum(scaled.astype(np.int64), size - 1)
        keep = (scaled - slot) < self.alias_accept[arm, slot]
        return self.offsets[arm] + np.where(keep, slot, self.alias_index[arm, slot])

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
        accept, alias = _alias_tables(weight, offsets)
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
            item_weight=weight / group_sum[item_group],
            alias_accept=accept,
            alias_index=alias,
            margin=margin,
            group_price=np.bincount(item_group, weights=weight * price, minlength=g) / group_sum,
        )


def _alias_tables(weight: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker alias tables (Vose's construction) of each group's item weights, padded to the
    largest group: ``accept[g, j]`` and ``alias[g, j]`` (an index inside the group)."""
    sizes = np.diff(offsets)
    accept = np.ones((sizes.size, int(sizes.max())))
    alias = np.zeros((sizes.size, int(sizes.max())), dtype=np.int64)
    for g, (lo, k) in enumerate(zip(offsets[:-1], sizes)):
        scaled = weight[lo : lo + k] * k / weight[lo : lo + k].sum()
        small = [j for j in range(k) if scaled[j] < 1.0]
        large = [j for j in range(k) if scaled[j] >= 1.0]
        while small and large:
            s, big = small.pop(), large[-1]
            accept[g, s], alias[g, s] = scaled[s], big
            scaled[big] -= 1.0 - scaled[s]
            if scaled[big] < 1.0:
                small.append(large.pop())
        for j in small + large:  # leftovers are 1 up to rounding
            accept[g, j], alias[g, j] = 1.0, j
    return accept, alias
