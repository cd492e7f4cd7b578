"""The true per-decision values that :mod:`experiments.ope_truth` checks estimators against.

The estimand of the per-decision (bandit) estimators on a log of the logging policy
:math:`\\pi_b` is the target policy's expected immediate reward **at the logging policy's
visits**, one visit weighed as much as another:

.. math:: V(\\pi_e) = \\frac{E\\big[\\sum_{t < T} \\bar r_e(s_t)\\big]}{E[T]}, \\qquad
          \\bar r_e(s) = \\sum_a \\pi_e(a \\mid x(s))\\, \\mu(s, a)

over shoppers whose visits :math:`s_0, \\dots, s_{T-1}` (the first :math:`H` days, see
:mod:`experiments.ope_truth`) follow :math:`\\pi_b`; :math:`x(s)` is the observation the
policies see, :math:`\\mu(s, a)` the expected profit of action :math:`a` in the latent
state :math:`s` (:func:`expected_profit`). Every estimator's per-round mean is an
estimate of this ratio (their unit = the shopper).

:func:`per_decision_truth` computes it **exactly in the actions and in the rewards given the
item shown** -- :math:`\\mu` from the world's true response probabilities, the sum over
:math:`a` in closed form -- so the only Monte-Carlo error left is over the shoppers' states
and the item each group would show (one draw per shopper, group and visit, as the world
draws it), and it is reported: the delta-method standard error of the ratio,
:math:`\\mathrm{se} = \\sqrt{\\sum_u (A_u - V T_u)^2} / \\sum_u T_u` (:math:`A_u`, :math:`T_u`
shopper :math:`u`'s sum of :math:`\\bar r_e` and its visit count).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from retentionrl.core.policy import Policy
from retentionrl.interactions.horizon import in_window
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.simulator import GroundTruthWorld


@dataclass(frozen=True)
class TruthValue:
    """A true value with the standard error of its Monte-Carlo part."""

    value: float
    se: float


def expected_profit(world: GroundTruthWorld, rng: np.random.Generator) -> np.ndarray:
    """:math:`\\mu(s_i, a \\mid J_i) = E[\\text{spend} - \\text{coupon cost} - \\text{cost of goods}
    \\mid s_i, a, J_i]` of every current shopper and flat action, ``(n, n_actions)``, given an
    item :math:`J_i` of each group drawn as the world draws the item it shows (by popularity,
    with ``rng``): its mean over the draw is :math:`\\mu(s_i, a)`.

    By the world's laws (:mod:`retentionrl.simulators.world.simulator`): a purchase needs a click; the purchase
    probability after a click depends on the item shown (through its list price
    :math:`p_j`); a purchase holds :math:`1 + \\mathrm{Binomial}(K, \\pi(c))` units,
    :math:`\\pi(c) = \\min(1, \\pi_0 + \\phi c)`; of the spend, the coupon costs :math:`c` and
    the goods :math:`1 - m_g` (the group's gross margin). The draws are independent given
    the state and the item, so for group :math:`g` and coupon :math:`c`

    .. math:: \\mu(s, (g, c) \\mid j) = P(\\text{click})\\, P(\\text{buy} \\mid \\text{click}, j)\\,
              p_j\\, (1 + K \\pi(c))\\, (m_g - c).

    The response probabilities are the world's own (its ``_response``: the oracle this
    referee needs).
    """
    space, catalog, config = world.action_space, world.catalog, world.config
    state, n = world.state, int(world.days.shape[0])
    mu = np.empty((n, space.n_actions))
    for g in range(space.n_arms):
        arm = np.full(n, g)
        item = catalog.draw_items(arm, rng.random(n))
        for coupon_index, c in enumerate(config.coupon_levels):
            p_click, p_buy = world._response(state, arm, item, np.full(n, coupon_index))[:2]
            units = 1.0 + config.max_extra_units * min(config.extra_unit_base + config.extra_unit_discount * c, 1.0)
            mu[:, int(space.encode(g, coupon_index))] = (
                p_click * p_buy * catalog.item_price[item] * units * (catalog.margin[g] - c)
            )
    return mu


def per_decision_truth(
    config: WorldConfig, logging: Policy, targets: Mapping[str, Policy], n_users: int, seed: int, batch: int = 50_000
) -> dict[str, TruthValue]:
    """:math:`V(\\pi_e)` of every target (module docstring) from one logging-policy rollout of
    ``n_users`` shoppers (in batches of ``batch``), each shopper followed until churn or day
    :math:`H`; the target policies only score the visited states, they never act."""
    rng = np.random.default_rng(seed)
    totals: dict[str, list[np.ndarray]] = {name: [] for name in targets}
    visits: list[np.ndarray] = []
    world = GroundTruthWorld(config)
    for start in range(0, n_users, batch):
        m = min(batch, n_users - start)
        obs = world.reset(m, seed=int(rng.integers(2**63)))
        shopper = np.arange(m)
        count = np.zeros(m)
        sums = {name: np.zeros(m) for name in targets}
        while shopper.size:
            mu = expected_profit(world, rng)
            for name, policy in targets.items():
                sums[name] += np.bincount(shopper, np.einsum("ia,ia->i", policy.action_probs(obs), mu), m)
            count[shopper] += 1.0
            obs, out = world.step(logging.act(obs, rng))
            keep = ~out.churned & in_window(world.days, config.horizon_days)
            obs = world.keep_rows(keep)
            shopper = shopper[keep]
        visits.append(count)
        for name in targets:
            totals[name].append(sums[name])
    t = np.concatenate(visits)
    truth: dict[str, TruthValue] = {}
    for name in targets:
        a = np.concatenate(totals[name])
        value = float(a.sum() / t.sum())
        truth[name] = TruthValue(value, float(np.sqrt(((a - value * t) ** 2).sum()) / t.sum()))
    return truth
