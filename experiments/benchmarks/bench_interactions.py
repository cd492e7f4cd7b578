"""Benchmark of the log layer: load + validate + build visits (+ trajectories).

Each case runs in a fresh child process so that its wall time and peak memory (max RSS)
are its own. Cases: a generated log of ``--events`` events (default 10 million) in the
retentionrl schema, written to Parquet first (not timed), and UCI Online Retail when
``../shared/data`` is present. Prints one table.

    python experiments/benchmarks/bench_interactions.py [--events 10000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ONLINE_RETAIL = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "online_retail" / "online_retail.parquet"
)


def generate(path: Path, n_events: int, seed: int = 0) -> None:
    """A shop-like log: visits of 4 events (impression, view, then click/cart/purchase)."""
    rng = np.random.default_rng(seed)
    n_visits = n_events // 4
    n_users = max(n_visits // 10, 1)
    start = rng.integers(0, 365 * 86_400, n_visits)
    offsets = np.array([0, 20, 60, 120])
    event = np.empty((n_visits, 4), dtype=object)
    event[:, 0], event[:, 1] = "impression", "view"
    event[:, 2] = np.where(rng.random(n_visits) < 0.3, "click", "view")
    event[:, 3] = np.where(rng.random(n_visits) < 0.2, "purchase", "cart")
    propensity = np.full((n_visits, 4), np.nan)
    propensity[:, 0] = rng.uniform(0.01, 1.0, n_visits)
    frame = pd.DataFrame(
        {
            "user_id": np.repeat(rng.integers(0, n_users, n_visits), 4),
            "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta((start[:, None] + offsets).ravel(), unit="s"),
            "event": event.ravel(),
            "item_id": rng.integers(0, 1_000, n_visits * 4),
            "price": np.round(rng.lognormal(3.0, 0.6, n_visits * 4), 2),
            "coupon": np.repeat(rng.choice([0.0, 0.05, 0.1, 0.2], n_visits), 4),
            "propensity": propensity.ravel(),
            "position": np.zeros(n_visits * 4, dtype=np.int64),
        }
    ).sort_values("timestamp", kind="stable")
    frame.to_parquet(path, index=False)


def run_case(path: str, fmt: str) -> dict[str, float]:
    """Load, validate, build visits and trajectories; timings in seconds, peak RSS in MiB."""
    from retentionrl.interactions.io import read_events
    from retentionrl.interactions.trajectories import add_trajectories
    from retentionrl.interactions.visits import build_visits

    t0 = time.perf_counter()
    log = read_events(path, fmt)
    t1 = time.perf_counter()
    visits = build_visits(log)
    t2 = time.perf_counter()
    add_trajectories(visits, log.end)
    t3 = time.perf_counter()
    return {
        "events": len(log.events),
        "visits": len(visits),
        "load_validate_s": t1 - t0,
        "visits_s": t2 - t1,
        "trajectories_s": t3 - t2,
        "total_s": t3 - t0,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events in the generated log")
    parser.add_argument("--case", nargs=2, metavar=("PATH", "FORMAT"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(*args.case)))
        return
    if args.generate:
        generate(Path(args.generate), args.events)
        return
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        generated = Path(tmp) / "events.parquet"
        # In a child too: Linux carries a parent's peak RSS into the children it forks.
        subprocess.run(
            [sys.executable, __file__, "--generate", str(generated), "--events", str(args.events)], check=True
        )
        cases.append((f"generated ({args.events:,} events)", str(generated), "events"))
        if ONLINE_RETAIL.exists():
            cases.append(("UCI Online Retail", str(ONLINE_RETAIL.resolve()), "online-retail"))
        else:
            print(f"(skipping Online Retail: {ONLINE_RETAIL} not present)")
        rows = []
        for label, path, fmt in cases:
            out = subprocess.run(
                [sys.executable, __file__, "--case", path, fmt], check=True, capture_output=True, text=True
            )
            rows.append((label, json.loads(out.stdout.strip().splitlines()[-1])))
    print(
        f"{'case':<32} {'events':>11} {'visits':>10} {'load+valid s':>12} {'visits s':>9} {'traj s':>7} {'total s':>8} {'peak MiB':>9}"
    )
    for label, r in rows:
        print(
            f"{label:<32} {r['events']:>11,} {r['visits']:>10,} {r['load_validate_s']:>12.2f} {r['visits_s']:>9.2f} "
            f"{r['trajectories_s']:>7.2f} {r['total_s']:>8.2f} {r['peak_mib']:>9.0f}"
        )


if __name__ == "__main__":
    main()
