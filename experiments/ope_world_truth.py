"""The true per-decision values that :mod:`experiments.ope_truth` checks estimators against.

The estimand of the per-decision (bandit) estimators on a log of the logging policy
:math:`\\pi_b` is the target policy's expected immediate reward **at the logging policy's
visits**, one visit weighed as much as another:

.. math:: V(\\pi_e) = \\frac{E\\big[\\sum_{t < T} \\bar r_e(s_t)\\big]}{E[T]}, \\qquad
          \\bar r_e(s) = \\sum_a \\pi_e(a \\mid x(s))\\, \\mu(s, a)

over shoppers whose visits :math:`s_0, \\dots, s_{T-1}` (the first :math:`H` days, see
:mod:`experiments.ope_truth`) follow :math:`\\pi_b`; :math:`x(s)` is the observation the
policies see, :math:`\\mu(s, a)` the expected net revenue of action :math:`a` in the latent
state :math:`s` (:func:`expected_net_revenue`). Every estimator's per-round mean is an
estimate of this ratio (their unit = the shopper).

:func:`per_decision_truth` computes it **exactly in the actions and the rewards** --
:math:`\\mu` from the world's true response probabilities, the sum over :math:`a` in closed
form -- so the only Monte-Carlo error left is over the shoppers' states, and it is reported:
the delta-method standard error of the ratio,
:math:`\\mathrm{se} = \\sqrt{\\sum_u (A_u - V T_u)^2} / \\sum_u T_u` (:math:`A_u`, :math:`T_u`
shopper :math:`u`'s sum of :math:`\\bar r_e` and its visit count).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from simulators.policy import Policy
from simulators.world import GroundTruthWorld
from simulators.world_config import WorldConfig


@dataclass(frozen=True)
class TruthValue:
    """A true value with the standard error of its Monte-Carlo part."""

    value: float
    se: float


def expected_net_revenue(world: GroundTruthWorld) -> np.ndarray:
    """:math:`\\mu(s_i, a) = E[\\text{spend} - \\text{coupon cost} \\mid s_i, a]` of every
    current shopper and flat action, ``(n, n_actions)``.

    By the world's laws (:mod:`simulators.world`): a purchase needs a click; the item is
    uniform within the shown group :math:`g`, so its expected price is the group's mean
    list price :math:`\\bar p_g`; the quantity is :math:`1 + \\mathrm{Bernoulli}(p_2)`; a
    purchase with coupon :math:`c > 0` redeems it at cost :math:`c \\cdot` spend. The draws
    are independent given the state, so

    .. math:: \\mu(s, (g, c)) = P(\\text{click})\\, P(\\text{buy} \\mid \\text{click})\\,
              \\bar p_g\\, (1 + p_2)\\, (1 - c).
    """
    space, catalog = world.action_space, world.catalog
    arm, coupon = space.decode(np.arange(space.n_actions))
    group_price = np.add.reduceat(catalog.item_price, catalog.offsets[:-1]) / catalog.group_size
    per_purchase = group_price[arm] * (1.0 + world.config.extra_unit_prob) * (1.0 - space.coupon_fraction(coupon))
    n = world.days.shape[0]
    p_purchase = np.empty((n, space.n_actions))
    for a in range(space.n_actions):
        p_click, p_buy = world.response_probabilities(np.full(n, a))
        p_purchase[:, a] = p_click * p_buy
    return p_purchase * per_purchase[None, :]


def per_decision_truth(config: WorldConfig, logging: Policy, targets: Mapping[str, Policy], n_users: int,
                       seed: int, batch: int = 50_000) -> dict[str, TruthValue]:
    """:math:`V(\\pi_e)` of every target (module docstring) from one logging-policy rollout of
    ``n_users`` shoppers (in batches of ``batch``), each shopper followed until churn or day
    :math:`H`; the target policies only score the visited states, they never act."""
    rng = np.random.default_rng(seed)
    totals = {name: [] for name in targets}
    visits: list[np.ndarray] = []
    world = GroundTruthWorld(config)
    for start in range(0, n_users, batch):
        m = min(batch, n_users - start)
        obs = world.reset(m, seed=int(rng.integers(2**63)))
        shopper = np.arange(m)
        count = np.zeros(m)
        sums = {name: np.zeros(m) for name in targets}
        while shopper.size:
            mu = expected_net_revenue(world)
            for name, policy in targets.items():
                sums[name] += np.bincount(shopper, np.einsum("ia,ia->i", policy.action_probs(obs), mu), m)
            count[shopper] += 1.0
            obs, out = world.step(logging.act(obs, rng))
            keep = ~out.churned & (world.days < config.horizon_days)
            obs = world.keep_rows(keep)
            shopper = shopper[keep]
        visits.append(count)
        for name in targets:
            totals[name].append(sums[name])
    t = np.concatenate(visits)
    out: dict[str, TruthValue] = {}
    for name in targets:
        a = np.concatenate(totals[name])
        value = float(a.sum() / t.sum())
        out[name] = TruthValue(value, float(np.sqrt(((a - value * t) ** 2).sum()) / t.sum()))
    return out
