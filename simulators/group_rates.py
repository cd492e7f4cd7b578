"""Group-level response rates a shop can measure from its own logs.

Heuristics and logging policies score item groups by aggregate rates (popularity), never
by a shopper's latent state. :func:`pilot_group_rates` measures them the way a shop
would: show ``n_users`` new shoppers one group each (every group to an equal share) and no
coupon, and count the responses per group at that first visit.

=================  ==========================================================
rate               estimate per group :math:`g` (:math:`N_g` shoppers shown g)
=================  ==========================================================
``click``          :math:`\\frac{1}{N_g}\\sum click`
``purchase``       :math:`\\frac{1}{N_g}\\sum purchase` (per impression)
``conversion``     ``purchase / click`` (0 where no click): a quality proxy
=================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retentionrl.core.checks import require_int
from retentionrl.simulators.interface import ShopperSimulator


@dataclass(frozen=True)
class GroupRates:
    """Per-group response rates, each of shape ``(n_arms,)``, in [0, 1]."""

    click: np.ndarray
    purchase: np.ndarray

    @property
    def conversion(self) -> np.ndarray:
        """Purchases per click of each group (0 where nobody clicked)."""
        return np.divide(self.purchase, self.click, out=np.zeros_like(self.purchase), where=self.click > 0)


def pilot_group_rates(simulator: ShopperSimulator, n_users: int = 20_000, seed: int = 0) -> GroupRates:
    """First-visit rates per arm of ``n_users`` fresh shoppers shown a uniform arm, no coupon.

    :param simulator: reset with ``n_users`` shoppers (its batch is replaced).
    :param n_users: pilot shoppers, >= the number of arms (more: less noise).
    :param seed: seed of the pilot (shoppers and the arms shown).
    """
    space = simulator.action_space
    require_int("n_users", n_users, space.n_arms, bound=f">= n_arms ({space.n_arms})")
    simulator.reset(int(n_users), seed=seed)
    arm = np.arange(int(n_users)) % space.n_arms
    _, out = simulator.step(space.encode(arm, np.zeros_like(arm)))
    shown = np.bincount(arm, minlength=space.n_arms)
    return GroupRates(
        click=np.bincount(arm, weights=out.click, minlength=space.n_arms) / shown,
        purchase=np.bincount(arm, weights=out.purchase, minlength=space.n_arms) / shown,
    )
