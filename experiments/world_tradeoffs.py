"""The trade-offs of the ground-truth world, as true values with 95% intervals.

Rolls out every named policy (:data:`retentionrl.simulators.policy_registry.POLICY_NAMES`) on the same
``--users`` fresh shoppers (one seed, so the population is shared) over the horizon and
prints one table: return visits, share active at day H, profit (spend - coupon cost - cost
of goods), coupon cost, purchases and first-visit purchase probability per shopper.

With ``--days 365`` the rollouts run past the horizon to day 365 (churn is still "no return
within H"), for effects that 90 days cut off.

Usage: ``python experiments/world_tradeoffs.py [--users 20000] [--seed 0] [--days 90] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from retentionrl.core.atomic import atomic_write_text
from retentionrl.simulators.policy_registry import POLICY_NAMES, make_policy
from retentionrl.simulators.rollout import format_table
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.simulator import GroundTruthWorld


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, roll every policy out, print the table (and save it as JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--users", type=int, default=20_000, help="shoppers per policy (>= 5,000 for the issue's table)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=None, help="roll out until this day (default: the horizon H)")
    parser.add_argument("--json", type=Path, default=None, help="also write the values to this JSON file")
    args = parser.parse_args(argv)
    config = WorldConfig()
    world = GroundTruthWorld(config)
    values = [
        world.evaluate(make_policy(name, config), args.users, args.seed, days=args.days, progress=True)
        for name in POLICY_NAMES
    ]
    print(format_table(values))
    if args.json is not None:
        atomic_write_text(args.json, json.dumps([v.to_dict() for v in values], indent=2))


if __name__ == "__main__":
    main()
