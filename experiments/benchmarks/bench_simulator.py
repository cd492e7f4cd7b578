"""Benchmark of the learned simulator: fit time on ~1 million events, stepping speed.

1. Writes ground-truth world logs with about ``--events`` events (the world's log writer,
   :mod:`retentionrl.simulators.world.logs`; shoppers scale with the target) and fits the simulator
   on them with the default :class:`~retentionrl.simulators.learned.fit.FitConfig` (early stopping included),
   reporting the total time and the time per epoch. Target: <= 10 minutes on 2 CPU cores.
2. Steps the fitted simulator for ``--seconds`` per setting at batches of 1, 64 and 1,024
   shoppers (churned shoppers replaced, as a vector env does), with 1 and 2 CPU threads
   (and on CUDA when there is a GPU), in shopper-visits per second. Target: >= 300,000/s
   at 1,024 on CPU. A width-64 GRU step costs about 50 kFLOP per shopper, so a 2-core
   machine's ceiling is near 1,000,000/s.

3. The cost of simulator v6's per-arm intercepts (``ModelSize.arm_bias``): the same fitted
   weights stepped with and without them (the intercepts dropped), alternating, ``--rounds``
   times at 1 and 1,024 shoppers on one thread; the median ratio of the two speeds.

With ``--model DIR`` (a fitted simulator, e.g. ``runs/fidelity/model_seed0``) part 1 is
skipped and that model is stepped.

Usage: ``python experiments/benchmarks/bench_simulator.py [--events 1000000] [--seconds 3] [--model DIR]``
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from retentionrl.interactions.io import read_events
from retentionrl.simulators.learned.fit import FitConfig, fit_simulator
from retentionrl.simulators.learned.sequence_model import ShopperSequenceModel
from retentionrl.simulators.learned.simulator import LearnedSimulator
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs

EVENTS_PER_SHOPPER = 10.0
"""About how many events a world shopper writes over 180 days (default config)."""
BATCHES = (1, 64, 1024)


def steps_per_second(sim: LearnedSimulator, n: int, seconds: float, seed: int = 0) -> float:
    """Shopper-visits per second of ``sim`` stepping ``n`` shoppers for about ``seconds``."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, sim.action_space.n_actions, (64, n))
    sim.reset(n, seed=seed)
    for k in range(5):  # warm-up
        sim.step(actions[k])
    done, start, k = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        _, out = sim.step(actions[k % 64])
        if out.churned.any():
            sim.replace(out.churned)
        done += n
        k += 1
    return done / (time.perf_counter() - start)


def without_arm_bias(sim: LearnedSimulator) -> LearnedSimulator:
    """``sim``'s model with its per-arm intercepts dropped (simulator v5's heads), the other weights shared."""
    spec = dataclasses.replace(sim.card.spec, arm_bias=False)
    model = ShopperSequenceModel(spec)
    model.load_state_dict({k: v for k, v in sim.model.state_dict().items() if k != "arm_bias"})
    return LearnedSimulator(model, dataclasses.replace(sim.card, spec=spec), "cpu")


def arm_bias_cost(sim: LearnedSimulator, seconds: float, rounds: int) -> None:
    """Part 3 of the module docstring: speeds with and without the intercepts, alternating."""
    if not sim.card.spec.arm_bias:
        print("\nthis model has no per-arm intercepts: their cost not measured")
        return
    plain = without_arm_bias(sim)
    torch.set_num_threads(1)
    print(f"\nper-arm intercepts, 1 thread, {rounds} alternating rounds of {seconds:g} s (shopper-visits/s):")
    print(f"{'n':>6s} {'with (median)':>14s} {'without':>14s} {'ratio median [min, max]':>28s}")
    for n in (1, 1024):
        pairs = [(steps_per_second(sim, n, seconds), steps_per_second(plain, n, seconds)) for _ in range(rounds)]
        ratios = np.array([a / b for a, b in pairs])
        with_, without = np.median([a for a, _ in pairs]), np.median([b for _, b in pairs])
        print(
            f"{n:6,d} {with_:14,.0f} {without:14,.0f} "
            f"{np.median(ratios):>12.3f} [{ratios.min():.3f}, {ratios.max():.3f}]"
        )


def fit_and_time(args: argparse.Namespace) -> LearnedSimulator:
    """Write world logs of about ``args.events`` events, fit on them, print the times."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "world.parquet"
        t0 = time.perf_counter()
        summary = write_world_logs(WorldConfig(), max(2, int(args.events / EVENTS_PER_SHOPPER)), args.days, 0, path)
        print(
            f"logs: {summary.n_events:,} events, {summary.n_visits:,} visits, {summary.n_users:,} shoppers "
            f"({time.perf_counter() - t0:.1f} s to write)"
        )
        config = FitConfig(epochs=args.epochs, device="cpu", num_threads=args.threads)
        t0 = time.perf_counter()
        result = fit_simulator(read_events(path), config, Path(tmp) / "model")
        fit_s = time.perf_counter() - t0
    epochs = len(result.history)
    print(
        f"fit on CPU ({args.threads} thread(s)): {fit_s:.1f} s for {epochs} epochs ({fit_s / epochs:.1f} s/epoch, "
        f"early stopping at epoch {epochs}; target <= 600 s)"
    )
    return result.simulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="target size of the log in events")
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--epochs", type=int, default=FitConfig.epochs)
    parser.add_argument("--seconds", type=float, default=3.0, help="stepping time per setting")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of the fit")
    parser.add_argument("--model", type=Path, default=None, help="step this fitted simulator instead of fitting one")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the intercepts' cost (part 3)")
    args = parser.parse_args()
    sim = LearnedSimulator.load(args.model, device="cpu") if args.model is not None else fit_and_time(args)
    rows = []
    default_threads = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rows.append((f"cpu, {threads} thread(s)", [steps_per_second(sim, n, args.seconds) for n in BATCHES]))
    torch.set_num_threads(default_threads)
    if torch.cuda.is_available():
        gpu = LearnedSimulator(sim.model, sim.card, "cuda")
        rows.append(("cuda", [steps_per_second(gpu, n, args.seconds) for n in BATCHES]))
    else:
        print("no CUDA GPU here: GPU stepping not measured")
    print(f"\n{'device':22s}" + "".join(f"{f'n={n:,}':>14s}" for n in BATCHES) + "   (shopper-visits/s)")
    for name, speeds in rows:
        print(f"{name:22s}" + "".join(f"{s:14,.0f}" for s in speeds))
    print("target: >= 300,000/s at n=1,024 on CPU; ceiling near 1,000,000/s (50 kFLOP per shopper-step, 2 cores)")
    arm_bias_cost(sim, args.seconds, args.rounds)
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
