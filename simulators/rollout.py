"""True policy values by on-policy rollouts over a window of days, with 95% intervals.

``evaluate_policy`` draws ``n_users`` fresh shoppers in any
:class:`~retentionrl.simulators.interface.ShopperSimulator`, lets ``policy`` act at every visit in the
window :math:`[0, D)` (``days``; by default the simulator's horizon :math:`H`): until the
shopper churns or their next visit falls at or past day :math:`D`
(:func:`retentionrl.interactions.horizon.in_window`, the definition the env's reward and the
off-policy trajectories share, :mod:`retentionrl.interactions.horizon`), and averages per shopper:

========================  ========================================================
metric                    per shopper
========================  ========================================================
``return_visits``         visits at days :math:`0 < t < D` (the first visit not counted)
``active_at_horizon``     1 if no visit at a day :math:`t < D` ended in churn (the
                          shopper reaches a visit at day :math:`\\ge D`)
``profit``                :math:`\\sum_{t < D}` (spend - coupon cost - cost of goods)
``coupon_cost``           :math:`\\sum_{t < D}` coupon cost
``purchases``             :math:`\\sum_{t < D}` purchases
``first_visit_purchase``  purchase at the first visit (the short-term response)
========================  ========================================================

Churn stays the simulator's: no return within :math:`H` days of a visit. A window
:math:`D > H` (e.g. 365 days beside 90) follows shoppers through later visits; a shopper
counted active at :math:`D` has a visit at or past day :math:`D` still to come.

Intervals are normal approximations over shoppers (independent draws):
:math:`\\bar x \\pm 1.96\\, s / \\sqrt{n}` with :math:`s` the sample standard deviation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
from tqdm.auto import tqdm

from retentionrl.core.checks import require_int
from retentionrl.core.interval import Interval
from retentionrl.core.policy import Policy
from retentionrl.interactions.horizon import in_window
from retentionrl.simulators.interface import ShopperSimulator


@dataclass(frozen=True)
class PolicyValue:
    """True value of one policy over ``days`` days; every metric is per shopper.

    :param horizon_days: the simulator's churn horizon :math:`H`.
    :param days: the window :math:`D` the metrics cover (``active_at_horizon`` is the
        share active at day :math:`D`).
    """

    policy: str
    is_oracle: bool
    n_users: int
    horizon_days: int
    days: int
    return_visits: Interval
    active_at_horizon: Interval
    profit: Interval
    coupon_cost: Interval
    purchases: Interval
    first_visit_purchase: Interval

    def metrics(self) -> dict[str, Interval]:
        """The metrics by name, in column order."""
        return {f.name: v for f in fields(self) if isinstance(v := getattr(self, f.name), Interval)}

    def to_dict(self) -> dict[str, object]:
        """Plain dict (JSON-ready): metrics as ``{"estimate", "low", "high", "n", ...}``."""
        return asdict(self)


def evaluate_policy(
    simulator: ShopperSimulator,
    policy: Policy,
    n_users: int,
    seed: int,
    *,
    days: int | None = None,
    progress: bool = False,
) -> PolicyValue:
    """Roll ``policy`` out on ``n_users`` fresh shoppers of ``simulator`` (which is reset).

    :param simulator: the world (or any simulator) to roll out in.
    :param policy: acts on the simulator's observations; its actions are sampled with a
        generator seeded from ``seed``, apart from the simulator's.
    :param n_users: shoppers, >= 2 (for an interval).
    :param seed: seeds both the simulator and the policy's sampling.
    :param days: the window :math:`D` in days, >= 1; ``None``: the simulator's horizon.
    :param progress: show a progress bar over visit steps.
    """
    require_int("n_users", n_users, 2)
    horizon = simulator.horizon_days
    window = require_int("days", horizon if days is None else days, 1)
    sim_seed, policy_seed = np.random.SeedSequence(seed).spawn(2)
    obs = simulator.reset(int(n_users), seed=int(sim_seed.generate_state(1)[0]))
    rng = np.random.default_rng(policy_seed)
    alive = np.ones(n_users, dtype=bool)
    churned = np.zeros(n_users, dtype=bool)
    visits = np.zeros(n_users)
    profit = np.zeros(n_users)
    cost = np.zeros(n_users)
    purchases = np.zeros(n_users)
    first_purchase: np.ndarray | None = None
    bar = tqdm(desc=f"rollout {policy.name}", unit="visit", disable=not progress)
    while alive.any():
        obs, out = simulator.step(policy.act(obs, rng))
        visits += alive
        profit += np.where(alive, out.profit, 0.0)
        cost += np.where(alive, out.coupon_cost, 0.0)
        purchases += alive & out.purchase
        if first_purchase is None:
            first_purchase = out.purchase.copy()
        churned |= alive & out.churned
        bar.update(int(alive.sum()))
        alive &= ~out.churned & in_window(simulator.days, window)
    bar.close()
    assert first_purchase is not None  # n_users >= 2 shoppers all visit once: the loop ran
    return PolicyValue(
        policy=policy.name,
        is_oracle=policy.is_oracle,
        n_users=int(n_users),
        horizon_days=int(horizon),
        days=int(window),
        return_visits=Interval.of(visits - 1),
        active_at_horizon=Interval.of(~churned),
        profit=Interval.of(profit),
        coupon_cost=Interval.of(cost),
        purchases=Interval.of(purchases),
        first_visit_purchase=Interval.of(first_purchase),
    )


def format_table(values: Sequence[PolicyValue]) -> str:
    """A plain-text table: one row per policy, each metric as ``estimate [low, high]``."""
    if not values:
        return "(no policies)"
    names = list(values[0].metrics())
    header = ["policy", *names]
    rows = [[v.policy + (" (oracle)" if v.is_oracle else ""), *(str(e) for e in v.metrics().values())] for v in values]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    v = values[0]
    note = (
        f"per shopper over {v.days} days (churn: no return within H = {v.horizon_days} days), "
        f"n = {v.n_users} shoppers; 95% normal-approximation intervals over shoppers"
    )
    return "\n".join([*lines, note])
