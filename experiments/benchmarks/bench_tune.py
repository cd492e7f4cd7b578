"""Benchmark of sweeps: the same trials through Ray Tune (side by side) and one after another,
and an ensemble's members fitted on Ray and in turn, in one run on this machine.

    python experiments/benchmarks/bench_tune.py [--config experiments/configs/tune_quick.yaml]
        [--seeds 2] [--total-steps 100000] [--members 3] [--fit-epochs 30] [--out runs/bench_tune]

The sweep is the config's, crossed with a grid of ``--seeds`` agent seeds (tune_quick: 4 x 2
= 8 distinct trials), each trial training ``--total-steps`` (Ray's per-trial overhead is
seconds: trials need real work for side-by-side running to pay). The shared stages (logs,
split, the two simulators) are computed first and not timed. Then:

1. ``run_sweep``: Ray Tune runs the trials, ``tune.cpus_per_trial`` CPUs each (so two at a
   time on 2 cores, one torch thread each); its wall time includes starting Ray;
2. the same trials (the params Ray drew) through :func:`~retentionrl.tune.trial.run_trial`
   in a loop, in this process, with torch's default threads;
3. ``--members`` simulators fitted on the fit shoppers (bootstrap members, ``--fit-epochs``
   at most), on Ray and in turn.

It prints each wall time, the ratio (one after another / Ray) and the largest difference
between the two runs' trial scores (torch's thread count may change the last bits).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from pathlib import Path

from retentionrl.pipeline.config import parse_config
from retentionrl.tune.config import SweepConfig, load_sweep_config
from retentionrl.tune.sweep import prepare, run_sweep
from retentionrl.tune.trial import run_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("experiments/configs/tune_quick.yaml"))
    parser.add_argument("--seeds", type=int, default=2, help="agent seeds crossed with the config's space")
    parser.add_argument("--total-steps", type=int, default=100_000, help="environment steps per trial")
    parser.add_argument("--members", type=int, default=3, help="ensemble members to fit both ways (0: skip)")
    parser.add_argument("--fit-epochs", type=int, default=30, help="most epochs of each member's fit")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_tune"))
    args = parser.parse_args()
    data = load_sweep_config(args.config).model_dump(mode="json")
    data["out"] = str(args.out)
    data["agents"]["total_steps"] = args.total_steps
    data["tune"]["space"]["seed"] = {"grid": list(range(args.seeds))}
    sweep = parse_config(data, str(args.config), SweepConfig)
    for part in ("ray", "trials", "sequential", "members"):
        shutil.rmtree(args.out / part, ignore_errors=True)
    spec = prepare(sweep, echo=lambda _: None)

    t0 = time.perf_counter()
    summary = run_sweep(sweep, echo=print)
    ray_seconds = time.perf_counter() - t0
    done = [row for row in summary.trials if row.result is not None]

    t0 = time.perf_counter()
    diffs = []
    for row in done:
        alone = run_trial(spec, row.params, spec.sweep.out / "sequential" / row.trial)
        diffs.append(abs(alone.score - row.result.score))  # type: ignore[union-attr]
    seq_seconds = time.perf_counter() - t0

    rows = [(f"{len(done)} agent trials", ray_seconds, seq_seconds)]
    if args.members > 0:
        rows.append(_members(spec, args.members, args.fit_epochs))
    print()
    print(f"{'work':<28} {'Ray (s)':>9} {'in turn (s)':>12} {'in turn / Ray':>14}")
    for name, ray_s, seq_s in rows:
        print(f"{name:<28} {ray_s:>9.1f} {seq_s:>12.1f} {seq_s / ray_s:>14.2f}")
    print(f"largest |score difference| between the two runs of a trial: {max(diffs):.2e}")


def _members(spec, k: int, epochs: int) -> tuple[str, float, float]:
    """Wall seconds of fitting ``k`` ensemble members on Ray and one after another."""
    from retentionrl.interactions.io import read_events
    from retentionrl.pipeline.run import fit_config
    from retentionrl.simulators.learned.fit import fit_simulator
    from retentionrl.tune.parallel import fit_members_on_ray

    base = fit_config(spec.sweep.run_config())
    configs = [dataclasses.replace(base, seed=base.seed + m, bootstrap=True, epochs=epochs) for m in range(k)]
    folder = spec.sweep.out / "members"
    t0 = time.perf_counter()
    fit_members_on_ray(spec.fit_logs, "events", configs, [folder / "ray" / f"member_{m}" for m in range(k)])
    ray_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    log = read_events(spec.fit_logs, "events")
    for m, config in enumerate(configs):
        fit_simulator(log, config, folder / "in_turn" / f"member_{m}")
    return f"{k} simulator fits", ray_s, time.perf_counter() - t0


if __name__ == "__main__":
    main()
