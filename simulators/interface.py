"""The one interface behind which every shopper model sits.

An environment drives a :class:`ShopperSimulator` and never knows which one it is: the
ground-truth world (:mod:`retentionrl.simulators.world.simulator`) or the learned sequence simulator. A
simulator holds a *batch* of ``n`` shoppers, each at one of their visits, and advances all
of them by one visit per call:

1. ``reset(n, seed)`` draws ``n`` fresh shoppers, each at the first visit of a new
   lifetime (day 0), and returns their observations;
2. ``step(actions)`` applies one action per shopper at the current visit and returns the
   visit's :class:`VisitOutcome` and the observations at each shopper's *next* visit;
   a shopper whose outcome says ``churned`` has no next visit, and their row of the
   returned observation is meaningless until it is replaced;
3. ``replace(mask)`` draws fresh shoppers into the masked slots (a vector env's
   auto-reset) and returns the whole batch's observations.

Observations are what a shop can observe about a shopper (their visit history, see
:class:`retentionrl.interactions.history.HistoryFeatures`), never a simulator's latent state, so a
policy trained on one simulator runs on the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from retentionrl.core.actions import ActionSpace
from retentionrl.interactions.history import HistoryFeatures


@dataclass(frozen=True)
class VisitOutcome:
    """What happened at one visit of each shopper in a batch; every field has shape ``(n,)``.

    :param click: the shopper clicked the recommendation.
    :param purchase: the shopper bought something at this visit.
    :param redeemed: the purchase used the offered coupon.
    :param spend: list-price value of what the shopper bought (price x quantity, >= 0).
    :param coupon_cost: the discount the shop gave: spend x coupon fraction when redeemed.
    :param cogs: cost of the goods sold at the visit (>= 0): (1 - gross margin) x spend.
        Profit of the visit is ``spend - coupon_cost - cogs`` (gross margin x spend - coupon cost).
    :param gap_days: days from this visit to the next one (> 0); ``inf`` when churned.
    :param churned: the shopper will never come back.
    """

    click: np.ndarray
    purchase: np.ndarray
    redeemed: np.ndarray
    spend: np.ndarray
    coupon_cost: np.ndarray
    cogs: np.ndarray
    gap_days: np.ndarray
    churned: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        """The fields as a dict of arrays (for ``info`` and logging), in declaration order."""
        return dict(vars(self))  # a frozen dataclass's __dict__ holds exactly its fields

    @property
    def profit(self) -> np.ndarray:
        """Profit of each visit: ``spend - coupon_cost - cogs``."""
        return self.spend - self.coupon_cost - self.cogs


class ShopperSimulator(ABC):
    """A batch of shoppers stepped one visit at a time (see the module docstring).

    Subclasses set :attr:`action_space`, :attr:`observation_names` and
    :attr:`horizon_days`, and keep ``days``: the day of each shopper's current visit,
    counted from the first visit of their lifetime. Simulators that build observations
    from visit histories (the world, the learned simulator) keep them in :attr:`history`.
    """

    action_space: ActionSpace
    observation_names: tuple[str, ...]
    horizon_days: int
    history: HistoryFeatures

    @property
    def obs_dim(self) -> int:
        """Length of one shopper's observation vector."""
        return len(self.observation_names)

    @property
    @abstractmethod
    def days(self) -> np.ndarray:
        """Day of each shopper's current visit since their first visit, shape ``(n,)``."""

    @abstractmethod
    def reset(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """Draw ``n`` fresh shoppers at their first visit; observations ``(n, obs_dim)``."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, VisitOutcome]:
        """Apply one flat action per shopper; return next observations and the outcome.

        :raises ValueError: actions of the wrong shape or dtype or outside
            :attr:`action_space` (:meth:`ActionSpace.check`), before anything changes: the
            environments hand discrete actions over unchecked.
        """

    @abstractmethod
    def replace(self, mask: np.ndarray) -> np.ndarray:
        """Draw fresh shoppers into the slots where ``mask`` is true; all observations."""
