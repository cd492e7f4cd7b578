"""Where does a learned simulator go wrong on a policy? Its errors against the world, split by what shoppers did.

For a trained policy (``--policy``, a run folder) and one or more fitted simulators
(``--simulator``, repeatable: one per independent log shows whether an error is the noise of
one log or a bias of the model), this prints three tables:

1. **Values.** Return visits and profit per shopper over the horizon (95% intervals) of the
   policy, of popularity (the world's never-coupon heuristic: the most purchased group, no
   coupon) and of a personalised probe, in the world and in each simulator. The probe shows
   the two most popular groups in turn until the shopper clicks or buys, then the group they
   engaged with most, never a coupon (:class:`~retentionrl.simulators.world.heuristics.GreedyHeuristic`
   with ``explore_top=2``): it reads the world heuristics' popularity scores, so it is a
   measuring stick, not a product policy.
2. **Where the policy's error sits.** The policy's click and purchase rates from the second
   visit on, split by the shopper's purchases so far: never bought, bought before but not at
   the last visit, bought at the last visit; world against each simulator.
3. **What the logs say** (``--logs``, the simulators' training log): among visits without a
   coupon, after the first, to shoppers who never bought the shown group, the change in
   purchase and click rate after the shopper ignored that group (shown, no click, no purchase)
   once or more, averaged *within* groups weighted by visits (across groups the association
   is confounded: popular groups are both shown again more often and bought more).

Usage: ``python experiments/simulator_error_probe.py --policy runs/quickstart/agent_ppo_profit
--simulator runs/quickstart/simulator [--simulator runs/other_log_sim]
--logs runs/quickstart/split/train.parquet [--users 5000] [--seed 1]``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pandas as pd

from retentionrl.agents.training import load_policy
from retentionrl.core.actions import ActionSpace
from retentionrl.core.policy import Policy
from retentionrl.envs.factory import load_simulator
from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.io import read_events
from retentionrl.interactions.trajectories import visits_with_trajectories
from retentionrl.simulators.interface import ShopperSimulator
from retentionrl.simulators.policy_registry import make_policy, world_group_rates
from retentionrl.simulators.rollout import evaluate_policy, in_window
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.heuristics import FixedCoupon, GreedyHeuristic

HISTORY = ("never bought", "bought before, not at the last visit", "bought at the last visit")


def probe(config: WorldConfig) -> GreedyHeuristic:
    """The personalised probe of the module docstring."""
    scores = np.log(np.maximum(world_group_rates(config).purchase, 1e-6))
    return GreedyHeuristic(config.action_space, "probe", scores, 1.0, FixedCoupon(0), explore_top=2)


def rates_by_history(simulator: ShopperSimulator, policy: Policy, n_users: int, seed: int) -> pd.DataFrame:
    """Click and purchase rates of ``policy``'s visits from the second on, by :data:`HISTORY`
    (rolled out as :func:`~retentionrl.simulators.rollout.evaluate_policy` does, same seeds)."""
    sim_seed, policy_seed = np.random.SeedSequence(seed).spawn(2)
    obs = simulator.reset(n_users, seed=int(sim_seed.generate_state(1)[0]))
    rng = np.random.default_rng(policy_seed)
    alive = np.ones(n_users, dtype=bool)
    last, ever = np.zeros(n_users, dtype=bool), np.zeros(n_users, dtype=bool)
    parts, visit = [], 0
    while alive.any():
        obs, out = simulator.step(policy.act(obs, rng))
        if visit > 0:
            history = np.where(last, 2, np.where(ever, 1, 0))
            parts.append(pd.DataFrame({"history": history, "click": out.click, "purchase": out.purchase})[alive])
        last = out.purchase.astype(bool)
        ever |= last
        alive &= ~out.churned & in_window(simulator.days, simulator.horizon_days)
        visit += 1
    table = (
        pd.concat(parts)
        .groupby("history")
        .agg(visits=("click", "size"), click=("click", "mean"), purchase=("purchase", "mean"))
    )
    return table.rename(index=dict(enumerate(HISTORY)))


def ignored_exposure_effect(
    decisions: LoggedDecisions, space: ActionSpace, min_visits: int = 30
) -> tuple[float, float, float, int]:
    """Within-group change in purchase and click rate after an ignored showing (module docstring, 3).

    :returns: purchase change, its approximate standard error, click change, number of groups.
    """
    arm, coupon = space.decode(decisions.action)
    order = np.lexsort((decisions.visit_index, decisions.trajectory_id))
    ignored = np.zeros(arm.size, dtype=np.int64)
    bought_before = np.zeros(arm.size, dtype=bool)
    current, skipped, bought = None, {}, set()
    for i in order:
        if decisions.trajectory_id[i] != current:
            current, skipped, bought = decisions.trajectory_id[i], {}, set()
        g = int(arm[i])
        ignored[i], bought_before[i] = skipped.get(g, 0), g in bought
        if decisions.purchase[i]:
            bought.add(g)
        elif not decisions.click[i]:
            skipped[g] = skipped.get(g, 0) + 1
    eligible = (coupon == 0) & ~bought_before & (decisions.visit_index >= 1)
    buy, click = decisions.purchase.astype(float), decisions.click.astype(float)
    rows = []
    for g in np.unique(arm):
        after, before = eligible & (arm == g) & (ignored >= 1), eligible & (arm == g) & (ignored == 0)
        if after.sum() >= min_visits and before.sum() >= min_visits:
            p = buy[after | before].mean()
            var = p * (1 - p) * (1 / after.sum() + 1 / before.sum())
            rows.append(
                (after.sum(), buy[after].mean() - buy[before].mean(), var, click[after].mean() - click[before].mean())
            )
    if not rows:
        raise ValueError(f"no group has {min_visits} eligible visits both before and after an ignored showing")
    n, d_buy, var, d_click = map(np.asarray, zip(*rows))
    w = n / n.sum()
    return float(w @ d_buy), float(np.sqrt(w**2 @ var)), float(w @ d_click), len(rows)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the three tables of the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True, help="trained policy folder")
    parser.add_argument("--simulator", action="append", required=True, help="fitted simulator folder (repeatable)")
    parser.add_argument("--logs", help="the first simulator's training log, for table 3")
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    config = WorldConfig()
    trained = load_policy(args.policy)
    policies = [trained, make_policy("never-coupon", config), probe(config)]
    worlds = {"world": load_simulator("world", device="cpu")}
    worlds.update({folder: load_simulator(folder, device="cpu") for folder in args.simulator})

    print(f"1. values per shopper ({args.users} fresh shoppers, seed {args.seed})")
    for policy in policies:
        for name, sim in worlds.items():
            v = evaluate_policy(sim, policy, args.users, args.seed)
            print(f"  {policy.name:14s} {name:40s} return visits {v.return_visits}  profit {v.profit}")

    print(f"2. {trained.name}'s click and purchase rates from the second visit on, by purchases so far")
    tables = {name: rates_by_history(sim, trained, args.users, args.seed) for name, sim in worlds.items()}
    print(pd.concat(tables, axis=1).round(3).to_string())

    if args.logs:
        sim = worlds[args.simulator[0]]
        visits = visits_with_trajectories(read_events(args.logs), horizon_days=sim.horizon_days)
        amap = ActionMap.fit(visits, coupon_levels=sim.action_space.coupon_levels)
        decisions = LoggedDecisions.from_visits(visits, amap, sim.horizon_days, sim.history.spend_scale)
        d_buy, se, d_click, groups = ignored_exposure_effect(decisions, sim.action_space)
        print(
            f"3. the logs: after ignoring the shown group once or more (never bought it, no coupon, not the first "
            f"visit), within {groups} groups: purchase rate {d_buy:+.3f} (SE {se:.3f}), click rate {d_click:+.3f}"
        )


if __name__ == "__main__":
    main()
