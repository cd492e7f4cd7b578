"""The learned simulator as an off-policy estimator of whole lifetimes, against world truth.

For each seed, as a shop would: the world writes a *training* log (``--train-users``
shoppers over ``2 H`` days, softmax logging policy, its own seed) on which a bootstrap
ensemble of ``--members`` simulators is fitted, and a *held-out* log (``--users`` shoppers,
another seed) whose fully observed lifetimes (shoppers who arrived by day ``H``, as in
:mod:`experiments.ope_truth`) are the evaluation data. The model-based estimators of
:mod:`retentionrl.evaluation.model_based` (``sim-dm``, ``sim-dr``, ``sim-magic``) estimate the
return visits per lifetime of the four target policies of :mod:`experiments.ope_truth`
(two close to the logging policy, two far: never-coupon and satisfaction-aware), and
each estimate is compared with the truth (on-policy rollouts of ``--truth-users``
shoppers, shared with ``ope_truth.py`` through its truth cache).

Prints one line per seed and policy, then per policy and estimator the mean relative
error :math:`|\\hat V - V| / V` over seeds and the share of seeds whose 95% interval
covers :math:`V` (with its 95% Wilson interval), and the intervals' mean half-width
relative to :math:`V`.

    python -m experiments.model_based_truth --seeds 30 --csv runs/model_based_truth.csv
    python -m experiments.model_based_truth --summarise runs/part1.csv runs/part2.csv
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from experiments.certify_truth import wilson
from experiments.ope_truth import START, target_policies, true_values
from retentionrl.core.atomic import atomic_write_text
from retentionrl.evaluation.model_based import ESTIMATORS, ROLLOUTS, Lifetimes, model_based_estimates
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.io import read_events
from retentionrl.interactions.trajectories import visits_with_trajectories
from retentionrl.simulators.learned.config import FitConfig
from retentionrl.simulators.learned.fit import fit_simulator
from retentionrl.simulators.learned.simulator import LearnedSimulator
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs


def fit_members(config: WorldConfig, users: int, seed: int, members: int, folder: Path) -> list[LearnedSimulator]:
    """A bootstrap ensemble fitted on a fresh world log of ``users`` shoppers (seed ``100_000 + seed``)."""
    path = folder / f"train_{seed}.parquet"
    write_world_logs(config, users, 2 * config.horizon_days, 100_000 + seed, path, start=START)
    log = read_events(path)
    path.unlink()
    fits = [FitConfig(seed=members * seed + m, bootstrap=members > 1, device="cpu") for m in range(members)]
    return [fit_simulator(log, fit).simulator for fit in fits]


def heldout_lifetimes(config: WorldConfig, users: int, seed: int, sim: LearnedSimulator, folder: Path) -> Lifetimes:
    """The fully observed lifetimes of a fresh world log, encoded with the simulator's action map."""
    path = folder / f"heldout_{seed}.parquet"
    days = 2 * config.horizon_days
    write_world_logs(config, users, days, seed, path, start=START)
    log = read_events(path)
    path.unlink()
    visits = visits_with_trajectories(log, horizon_days=config.horizon_days)
    card = sim.card
    decisions = LoggedDecisions.from_visits(
        visits, card.action_map, config.horizon_days, card.spend_scale, log_end=log.end
    )
    first = visits.groupby("trajectory_id")["start"].transform("min")
    arrival_day = ((first - pd.Timestamp(START)) / pd.Timedelta(days=1)).to_numpy()
    return Lifetimes.from_decisions(decisions.take(arrival_day <= days - config.horizon_days), config.horizon_days)


def run(args: argparse.Namespace) -> pd.DataFrame:
    """One row per (seed, policy, estimator)."""
    config = WorldConfig()
    targets = target_policies(config)
    truth = true_values(config, targets, args.truth_users, args.truth_cache)
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            members = fit_members(config, args.train_users, seed, args.members, Path(tmp))
            lifetimes = heldout_lifetimes(config, args.users, seed, members[0], Path(tmp))
            results = model_based_estimates(
                members, {name: p for name, (p, _) in targets.items()}, lifetimes, rollouts=args.rollouts, seed=seed
            )
            for name, res in results.items():
                v = truth[name]["per-trajectory"]
                for est, iv in res.intervals.items():
                    rows.append(
                        {
                            "seed": seed,
                            "policy": name,
                            "kind": targets[name][1],
                            "estimator": est,
                            "estimate": iv.estimate,
                            "low": iv.low,
                            "high": iv.high,
                            "truth": v,
                            "rel_error": abs(iv.estimate - v) / v,
                            "covered": bool(iv.covers(v)),
                            "members": " ".join(f"{m:.3f}" for m in res.members[est]),
                            "lifetimes": res.n_lifetimes,
                        }
                    )
                magic = res.intervals["sim-magic"]
                print(
                    f"seed {seed:3d}  {name:20s} truth {v:.3f}  sim-magic {magic}  "
                    f"sim-dm {res.intervals['sim-dm'].estimate:.3f}  sim-dr {res.intervals['sim-dr'].estimate:.3f}"
                    f"  ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
            if args.csv is not None:
                atomic_write_text(args.csv, pd.DataFrame(rows).to_csv(index=False))
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> str:
    """Markdown: per policy and estimator, mean relative error and coverage over seeds."""
    lines = [
        "| policy | estimator | mean relative error | covered (95% Wilson interval) | mean half-width / truth | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for (policy, est), part in frame.groupby(["policy", "estimator"], sort=False):
        k, n = int(part["covered"].sum()), len(part)
        low, high = wilson(k, n)
        lines.append(
            f"| {policy} | {est} | {part['rel_error'].mean():.3f} | {k} of {n} ({k / n:.0%}; [{low:.0%}, {high:.0%}])"
            f" | {((part['high'] - part['low']) / 2 / part['truth']).mean():.3f} | {n} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=8_000, help="shoppers of each held-out log")
    parser.add_argument("--train-users", type=int, default=16_000, help="shoppers of each training log")
    parser.add_argument("--members", type=int, default=3, help="bootstrap simulators per seed")
    parser.add_argument("--rollouts", type=int, default=ROLLOUTS)
    parser.add_argument("--truth-users", type=int, default=400_000)
    parser.add_argument("--truth-cache", type=Path, default=Path("runs/ope_truth/truth.json"))
    parser.add_argument("--csv", type=Path, default=None, help="write the rows here (after every seed)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: run two at once on 2 cores)")
    parser.add_argument("--summarise", type=Path, nargs="+", default=None, help="only print the table of these CSVs")
    args = parser.parse_args(argv)
    if args.summarise:
        frame = pd.concat([pd.read_csv(p) for p in args.summarise], ignore_index=True)
    else:
        torch.set_num_threads(args.threads)
        frame = run(args)
    frame = frame[frame["estimator"].isin(ESTIMATORS)]
    print(summary(frame))


if __name__ == "__main__":
    main()
