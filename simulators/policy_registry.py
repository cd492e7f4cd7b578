"""Every named policy of the ground-truth world, built from what a shop can measure.

Group scores come from a pilot of the world (:func:`retentionrl.simulators.group_rates.pilot_group_rates`,
seeded by ``config.catalog_seed``, so one config always gives the same policies and a log's
propensities can be recomputed from its config alone).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from retentionrl.core.policy import Policy
from retentionrl.simulators.group_rates import GroupRates, pilot_group_rates
from retentionrl.simulators.world.catalog import Catalog
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.heuristics import HEURISTICS, make_heuristic
from retentionrl.simulators.world.logging_policies import EpsilonGreedyPolicy, SoftmaxPolicy, UniformPolicy
from retentionrl.simulators.world.simulator import GroundTruthWorld

LOGGING_POLICIES: tuple[str, ...] = ("uniform", "epsilon-greedy", "softmax")
POLICY_NAMES: tuple[str, ...] = HEURISTICS + LOGGING_POLICIES


@lru_cache(maxsize=8)
def world_group_rates(config: WorldConfig) -> GroupRates:
    """First-visit click and purchase rates per group of the world of ``config``."""
    return pilot_group_rates(GroundTruthWorld(config), seed=config.catalog_seed)


def make_policy(name: str, config: WorldConfig) -> Policy:
    """The policy called ``name`` (one of :data:`POLICY_NAMES`) for the world of ``config``."""
    space = config.action_space
    if name == "uniform":
        return UniformPolicy(space)
    if name not in POLICY_NAMES:
        raise ValueError(f"unknown policy {name!r}; expected one of {POLICY_NAMES}")
    rates = world_group_rates(config)
    if name == "epsilon-greedy":
        return EpsilonGreedyPolicy(space, rates.purchase)
    if name == "softmax":
        return SoftmaxPolicy.over_popularity(space, rates.purchase)
    return make_heuristic(name, space, rates, config.horizon_days, group_price=world_group_prices(config))


@lru_cache(maxsize=8)
def world_group_prices(config: WorldConfig) -> np.ndarray:
    """Expected list price of the item shown from each group: what the shop's catalog says."""
    return Catalog.draw(config).group_price
