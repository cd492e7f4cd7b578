"""Benchmark of agent training: PPO and DQN environment steps per second, and where the
time goes (stepping the batched env vs learning), on each simulator named, side by side in
one run (the ground-truth world, a learned simulator's folder, an ensemble's folder).

    python experiments/benchmarks/bench_training.py [--simulators world,runs/quickstart/simulator]
        [--steps 50000] [--num-envs 64] [--device auto]

The env is timed by a thin ``VecEnvWrapper`` around the batched env; the rest of the
wall time is policy inference, rollout bookkeeping and gradient steps ("learning").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stable_baselines3.common.vec_env import VecEnvWrapper, VecMonitor

from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import build_model, make_training_env


class TimedEnv(VecEnvWrapper):
    """Adds up the seconds spent in the wrapped env's ``step_wait`` and ``reset``."""

    def __init__(self, venv) -> None:
        super().__init__(venv)
        self.seconds = 0.0

    def reset(self):
        t0 = time.perf_counter()
        obs = self.venv.reset()
        self.seconds += time.perf_counter() - t0
        return obs

    def step_wait(self):
        t0 = time.perf_counter()
        out = self.venv.step_wait()
        self.seconds += time.perf_counter() - t0
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--simulators",
        default="world",
        help="comma-separated: 'world' and/or folders of learned simulators (or ensembles)",
    )
    args = parser.parse_args()
    rows = []
    for simulator in args.simulators.split(","):
        if simulator != "world" and not Path(simulator).is_dir():
            parser.error(f"--simulators: {simulator} is neither 'world' nor a folder")
        for algo in ("ppo", "dqn"):
            config = TrainConfig(
                algo=algo, simulator=simulator, total_steps=args.steps, num_envs=args.num_envs, device=args.device
            )
            env = TimedEnv(VecMonitor(make_training_env(config, seed=0)))
            model = build_model(config, env, tensorboard_log=None)
            t0 = time.perf_counter()
            model.learn(args.steps)
            wall = time.perf_counter() - t0
            rows.append(
                (Path(simulator).name, algo, str(model.device), model.num_timesteps / wall, wall, env.seconds / wall)
            )
    width = max(9, *(len(r[0]) for r in rows))
    print(
        f"{'simulator':<{width}} {'algo':<5} {'device':<7} {'env steps/s':>12} {'wall s':>8} {'env share':>10} "
        f"{'learning share':>15}"
    )
    for simulator, algo, device, rate, wall, share in rows:
        print(
            f"{simulator:<{width}} {algo:<5} {device:<7} {rate:>12,.0f} {wall:>8.1f} {share:>10.0%} {1 - share:>15.0%}"
        )


if __name__ == "__main__":
    main()
