"""The world's catalog: items in groups, with prices, click appeal and quality.

Drawn once per world from ``WorldConfig.catalog_seed`` (so every run and log of one
config sees the same shop). Items are numbered group by group: group :math:`g` holds the
items ``offsets[g] <= item < offsets[g + 1]`` (sizes differ by at most one).

* Clickbait: ``n_clickbait`` groups drawn at random, with appeal :math:`a_g` =
  ``clickbait_appeal`` and quality :math:`q_g` = ``clickbait_quality``; the others have
  :math:`a_g \\sim N(0, \\sigma_a^2)`, :math:`q_g \\sim N(0, \\sigma_q^2)`.
* Prices: group median :math:`m_g = P \\exp(\\sigma_G z_g)`, item price
  :math:`p_i = m_{g(i)} \\exp(\\sigma_I z_i)`, rounded to cents, :math:`z \\sim N(0,1)`.
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
    """

    item_group: np.ndarray
    item_price: np.ndarray
    offsets: np.ndarray
    appeal: np.ndarray
    quality: np.ndarray
    is_clickbait: np.ndarray
    favourite_prior: np.ndarray

    def __post_init__(self) -> None:
        for value in vars(self).values():
            value.setflags(write=False)

    @property
    def group_size(self) -> np.ndarray:
        """Number of items in each group."""
        return np.diff(self.offsets)

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
        weight = np.empty(g)
        weight[rng.permutation(ordinary)] = 1.0 / np.arange(1, ordinary.size + 1) ** config.group_popularity_zipf
        weight[is_clickbait] = config.clickbait_favourite_weight * weight[ordinary].min()
        return cls(
            item_group=item_group,
            item_price=np.maximum(np.round(item_price, 2), 0.01),
            offsets=offsets,
            appeal=appeal,
            quality=quality,
            is_clickbait=is_clickbait,
            favourite_prior=weight / weight.sum(),
        )
