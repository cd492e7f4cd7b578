"""Online Retail, split by time: the simulator against BG/NBD and Pareto/NBD on the holdout.

The split of the BTYD studies of this log: calibration to 2011-09-09, the 92 days after it
(to the log's end, 2011-12-09) held out; a visit is a purchase day. The simulator's H comes
from the calibration data alone (the 0.9-quantile of its return gaps, within [7 days, half
the span]). Everything else is :func:`retentionrl.simulators.fidelity.holdout.run_holdout`, as
``retentionrl simulator holdout`` runs it on any log; this script only fixes the data and
the split, and prints the same tables.

Usage: ``python experiments/online_retail_holdout.py [--data PATH] [--fits 3] [--out runs/online_retail]``
(default data: the fetched copy, ``retentionrl data fetch online-retail``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from retentionrl.core.atomic import atomic_write_text
from retentionrl.interactions.datasets import resolve_location
from retentionrl.interactions.io import read_events
from retentionrl.simulators.fidelity.holdout import HoldoutConfig, plot_weekly, run_holdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="dataset:online-retail", help="the log, or dataset:online-retail")
    parser.add_argument("--cutoff", default="2011-09-09")
    parser.add_argument("--fits", type=int, default=1, help="simulators fit with seeds seed, seed+1, ...; pooled")
    parser.add_argument("--bootstrap", action="store_true", help="with --fits K: each fit on a bootstrap resample")
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/online_retail"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    log = read_events(resolve_location(args.data), "online-retail")
    config = HoldoutConfig(
        cutoff=pd.Timestamp(args.cutoff),
        fits=args.fits,
        bootstrap=args.bootstrap,
        replicas=args.replicas,
        epochs=args.epochs,
        seed=args.seed,
        device="cpu",
    )
    report = run_holdout(log, config, args.out)
    print("\n".join(report.lines()))
    print("\n" + report.weekly.round(1).to_string())
    atomic_write_text(args.out / "holdout.json", json.dumps(report.to_dict(), indent=2, default=float))
    plot_weekly(report, args.out / "holdout.png")
    print(f"wrote {args.out / 'holdout.json'} and {args.out / 'holdout.png'}")


if __name__ == "__main__":
    main()
