"""Benchmark of the environments: env-steps (shopper-visits) per second, side by side.

In one run, on this machine, single-threaded:

* the bare simulator step (``simulator.step``) and the vector env over it at N = 1, 64,
  1,024, for the ground-truth world and for a learned simulator (``--checkpoint DIR``, or a
  small one fitted here on world logs first, not timed);
* the single-shopper env over each;
* RecSim's ``interest_evolution`` env, run in its own virtual environment
  (``recsim-no-tf six absl-py gin-config scipy``), created on first use under
  ``--recsim-venv`` -- never a dependency of retentionrl;
* the learned single-shopper env (``gymnasium.make("retentionrl/Shopper-v0")``'s env, the
  numpy path of :mod:`retentionrl.simulators.learned.numpy_step`) against RecSim's env,
  ``--repeats`` alternating runs, with their ratios;
* the learned simulator's batched step at 1,024 shoppers (the torch path) of this code
  against the simulator of ``--baseline-rev`` (default: the commit before the numpy path
  was added, or ``HEAD`` while it is uncommitted; read with ``git show``), alternating
  runs, with their ratios.

    python experiments/benchmarks/bench_envs.py [--seconds 2] [--repeats 3] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retentionrl.interactions.horizon import in_window

REPO = Path(__file__).resolve().parents[2]
FUSED_STEP_MODULE = "retentionrl.simulators.learned.fused_step"

RECSIM_PROBE = """
import time
from recsim.environments import interest_evolution
env = interest_evolution.create_environment(
    {"num_candidates": 10, "slate_size": 2, "resample_documents": True, "seed": 0})
env.reset()
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < SECONDS:
    _, _, done, _ = env.step([0, 1])
    n += 1
    if done:
        env.reset()
print(n / (time.perf_counter() - t0))
"""


def rate(step: Callable[[], None], per_call: int, seconds: float) -> float:
    """Calls of ``step`` for about ``seconds`` (after a warm-up), times ``per_call``, per second."""
    for _ in range(3):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n * per_call / (time.perf_counter() - t0)


def bare_simulator_rate(make_sim: Callable[[], object], n: int, seconds: float) -> float:
    """Shopper-visits/s of ``simulator.step`` alone, replacing churned shoppers as an env would."""
    sim = make_sim()
    sim.reset(n, seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, sim.action_space.n_actions, (64, n))
    i = [0]

    def step() -> None:
        _, outcome = sim.step(actions[i[0] % 64])
        done = outcome.churned | ~in_window(sim.days, sim.horizon_days)
        if done.any():
            sim.replace(done)
        i[0] += 1

    return rate(step, n, seconds)


def vector_env_rate(make_sim: Callable[[], object], n: int, seconds: float) -> float:
    from retentionrl.envs.vector_env import ShopperVectorEnv

    env = ShopperVectorEnv(make_sim(), n)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, env.single_action_space.n, (64, n))
    i = [0]

    def step() -> None:
        env.step(actions[i[0] % 64])
        i[0] += 1

    return rate(step, n, seconds)


def single_env_rate(make_sim: Callable[[], object], seconds: float) -> float:
    from retentionrl.envs.shopper_env import ShopperEnv

    env = ShopperEnv(make_sim())
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, env.action_space.n, 4096).tolist()
    i = [0]

    def step() -> None:
        _, _, term, trunc, _ = env.step(actions[i[0] % 4096])
        if term or trunc:
            env.reset()
        i[0] += 1

    return rate(step, 1, seconds)


def recsim_rate(venv: Path, seconds: float) -> float | None:
    """RecSim interest_evolution steps/s, or None when its environment cannot be made."""
    python = venv / "bin" / "python"
    try:
        if not python.exists():
            print(f"creating RecSim's own virtual environment in {venv} ...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "recsim-no-tf", "six", "absl-py", "gin-config", "scipy"],
                check=True,
            )
        out = subprocess.run(
            [str(python), "-c", RECSIM_PROBE.replace("SECONDS", str(seconds))],
            check=True,
            capture_output=True,
            text=True,
        )
        return float(out.stdout.strip().splitlines()[-1])
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        print(f"RecSim could not run: {exc}")
        return None


def git_show(rev: str, path: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True, text=True).stdout


def default_baseline_rev() -> str:
    """The commit before the one that added the numpy path, or ``HEAD`` while it is uncommitted."""
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%h", "-1", "--", "simulators/learned/numpy_step.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{added}^" if added else "HEAD"


def baseline_simulator(rev: str | None) -> tuple[str, type | None]:
    """Git revision ``rev`` (default: :func:`default_baseline_rev`) and its ``LearnedSimulator``
    class: its ``simulator.py`` run over its own ``fused_step.py`` (the rest of the package as
    it is now), or None when git or the revision is missing."""
    try:
        rev = rev or default_baseline_rev()
        modules = {}
        for name, path in (
            ("fused_step", "simulators/learned/fused_step.py"),
            ("simulator", "simulators/learned/simulator.py"),
        ):
            module = types.ModuleType(f"baseline_{name}")
            sys.modules[module.__name__] = module
            current = sys.modules[FUSED_STEP_MODULE]
            sys.modules[FUSED_STEP_MODULE] = modules.get("fused_step", current)  # the simulator imports the old step
            try:
                exec(compile(git_show(rev, path), f"{rev}:{path}", "exec"), module.__dict__)
            finally:
                sys.modules[FUSED_STEP_MODULE] = current
            modules[name] = module
        return rev, modules["simulator"].LearnedSimulator
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"the baseline simulator of {rev or 'the default revision'} could not be read: {exc}")
        return str(rev), None


def alternate(
    first: Callable[[], float | None], second: Callable[[], float | None], repeats: int
) -> list[tuple[float | None, float | None]]:
    """``repeats`` (first, second) measurements, each pair run back to back."""
    return [(first(), second()) for _ in range(repeats)]


def print_pairs(title: str, names: tuple[str, str], pairs: list[tuple[float, float]] | list) -> None:
    """One line per run, the second over the first, and the median ratio."""
    print(f"\n{title}")
    print(f"{'run':<10} {names[0]:>17} {names[1]:>17} {names[1] + ' / ' + names[0]:>28}")
    for k, (a, b) in enumerate(pairs, start=1):
        print(f"{k:<10} {a:>17,.0f} {b:>17,.0f} {b / a:>28.2f}")
    print(
        f"{'median':<10} {statistics.median(a for a, _ in pairs):>17,.0f} "
        f"{statistics.median(b for _, b in pairs):>17,.0f} {statistics.median(b / a for a, b in pairs):>28.2f}"
    )


def learned_checkpoint(directory: Path) -> Path:
    """Fit a small learned simulator on world logs (2,000 shoppers x 180 days) into ``directory``."""
    from retentionrl.interactions.io import read_events
    from retentionrl.simulators.learned.fit import FitConfig, fit_simulator
    from retentionrl.simulators.world.config import WorldConfig
    from retentionrl.simulators.world.logs import write_world_logs

    logs = directory / "world_logs.parquet"
    write_world_logs(WorldConfig(), 2_000, 180, 0, logs)
    fit_simulator(read_events(logs, "events"), FitConfig(epochs=2, device="cpu"), directory / "sim")
    return directory / "sim"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timing window per cell")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of the paired comparisons")
    parser.add_argument("--checkpoint", type=Path, help="a fitted learned simulator (default: fit a small one)")
    parser.add_argument("--baseline-rev", help="git revision of the baseline batched step (default: see above)")
    parser.add_argument("--recsim-venv", type=Path, default=Path(tempfile.gettempdir()) / "retentionrl-recsim-venv")
    args = parser.parse_args()

    import torch

    from retentionrl.simulators.learned.simulator import LearnedSimulator
    from retentionrl.simulators.world.simulator import GroundTruthWorld

    torch.set_num_threads(1)  # single-threaded, as RecSim runs
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or learned_checkpoint(Path(tmp))
        simulators = {
            "world": GroundTruthWorld,
            "learned": lambda: LearnedSimulator.load(checkpoint, device="cpu"),
        }
        rows = []
        for name, make_sim in simulators.items():
            rows.append((name, "single env", 1, single_env_rate(make_sim, args.seconds), None))
            for n in (1, 64, 1024):
                bare = bare_simulator_rate(make_sim, n, args.seconds)
                env = vector_env_rate(make_sim, n, args.seconds)
                rows.append((name, "vector env", n, env, bare))
        versus_recsim = alternate(
            lambda: single_env_rate(simulators["learned"], args.seconds),
            lambda: recsim_rate(args.recsim_venv, args.seconds),
            args.repeats,
        )
        baseline_rev, baseline = baseline_simulator(args.baseline_rev)
        batched = (
            None
            if baseline is None
            else alternate(
                lambda: bare_simulator_rate(lambda: baseline.load(checkpoint, device="cpu"), 1024, args.seconds),
                lambda: bare_simulator_rate(simulators["learned"], 1024, args.seconds),
                args.repeats,
            )
        )
    recsim_runs = [r for _, r in versus_recsim]
    recsim = None if None in recsim_runs else statistics.median(recsim_runs)

    print(
        f"\n{'simulator':<10} {'env':<11} {'N':>5} {'env steps/s':>13} {'bare sim/s':>12} {'env overhead':>12} {'x RecSim':>9}"
    )
    for name, kind, n, env, bare in rows:
        overhead = f"{bare / env - 1:>11.0%}" if bare else f"{'':>11}"
        vs = f"{env / recsim:>9.1f}" if recsim else f"{'n/a':>9}"
        bare_txt = f"{bare:>12,.0f}" if bare else f"{'':>12}"
        print(f"{name:<10} {kind:<11} {n:>5} {env:>13,.0f} {bare_txt} {overhead} {vs}")
    if recsim:
        print(f"{'recsim':<10} {'interest_evolution':<17} {recsim:>13,.0f}")
        print_pairs(
            "single shopper, env steps/s: RecSim interest_evolution vs the learned simulator's env",
            ("RecSim", "learned"),
            [(r, learned) for learned, r in versus_recsim],
        )
    if batched:
        print_pairs(
            f"learned simulator.step at 1,024 shoppers, shopper-visits/s: {baseline_rev} vs this code",
            (baseline_rev, "this code"),
            batched,
        )


if __name__ == "__main__":
    main()
