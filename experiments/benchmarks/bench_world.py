"""Speed of the ground-truth world: shopper-visits per second, and writing logs.

1. ``world.step`` for batches of 1, 64, 1,024 and 4,096 shoppers (random actions, the
   observation included; best of ``--repeats`` timings);
2. ``world logs`` for ``--log-users`` shoppers over ``--log-days`` days (softmax logging
   policy): wall time, visits, events and file size.

Usage: ``python experiments/benchmarks/bench_world.py [--log-users 100000] [--log-days 180]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs
from retentionrl.simulators.world.simulator import GroundTruthWorld

BATCHES = (1, 64, 1024, 4096)


def step_rate(world: GroundTruthWorld, n: int, visits: int, repeats: int) -> float:
    """Best visits/s over ``repeats`` runs of about ``visits`` shopper-visits each."""
    world.reset(n, seed=0)
    actions = np.random.default_rng(0).integers(0, world.action_space.n_actions, n)
    steps = min(max(20, visits // n), 5000)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            world.step(actions)
        best = min(best, time.perf_counter() - t)
    return steps * n / best


def main(argv: list[str] | None = None) -> None:
    """Run both benchmarks and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--visits", type=int, default=1_000_000, help="shopper-visits per step timing (at most 5,000 steps)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--log-users", type=int, default=100_000)
    parser.add_argument("--log-days", type=int, default=180)
    args = parser.parse_args(argv)
    world = GroundTruthWorld(WorldConfig())
    print(f"{'batch':>6}  {'visits/s':>12}")
    for n in BATCHES:
        print(f"{n:>6}  {step_rate(world, n, args.visits, args.repeats):>12,.0f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "world.parquet"
        t = time.perf_counter()
        summary = write_world_logs(WorldConfig(), args.log_users, args.log_days, 0, path, progress=True)
        wall = time.perf_counter() - t
    print(
        f"world logs: {args.log_users:,} shoppers x {args.log_days} days: {wall:.1f} s, "
        f"{summary.n_visits:,} visits, {summary.n_events:,} events, {summary.n_bytes / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
