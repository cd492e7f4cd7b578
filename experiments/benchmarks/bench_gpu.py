"""The GPU path, side by side with the CPU in one run: fit, simulator stepping, PPO.

One short script for a machine with a CUDA GPU (about 5 minutes there); on a machine
without one it runs the CPU rows and says that the GPU path was not run. For each device
(``cpu``, then ``cuda`` when available) it

1. fits the learned simulator on a ground-truth world log (``--users`` shoppers x
   ``--days`` days) for ``--epochs`` epochs (early stopping off) and reports seconds per
   epoch;
2. steps that device's fitted simulator for ``--seconds`` at each batch of ``--batches``
   shoppers (churned ones replaced), in shopper-visits per second;
3. trains PPO for ``--ppo-steps`` env steps on the world's batched env (``--num-envs``
   shoppers) with the policy network on that device, in env steps per second.

The last column is cuda / cpu. Every number is wall time on this machine; the CPU rows use
torch's default thread count.

Usage: ``python experiments/benchmarks/bench_gpu.py [--users 20000] [--epochs 2] [--ppo-steps 8192]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from bench_simulator import steps_per_second

from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import build_model, make_training_env
from retentionrl.interactions.io import read_events
from retentionrl.simulators.learned.fit import FitConfig, fit_simulator
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs


def measure(device: str, log_path: Path, args: argparse.Namespace) -> dict[str, float]:
    """Fit seconds per epoch, stepping visits/s per batch and PPO steps/s on ``device``."""
    t0 = time.perf_counter()
    config = FitConfig(epochs=args.epochs, patience=args.epochs, device=device, num_threads=torch.get_num_threads())
    result = fit_simulator(read_events(log_path), config)
    row = {"fit s/epoch": (time.perf_counter() - t0) / len(result.history)}
    for n in args.batches:
        row[f"step n={n:,}"] = steps_per_second(result.simulator, n, args.seconds)
    train = TrainConfig(algo="ppo", total_steps=args.ppo_steps, num_envs=args.num_envs, device=device)
    model = build_model(train, make_training_env(train, seed=0), tensorboard_log=None)
    t0 = time.perf_counter()
    model.learn(args.ppo_steps)
    row["PPO steps/s"] = model.num_timesteps / (time.perf_counter() - t0)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="stepping time per batch size")
    parser.add_argument("--batches", type=int, nargs="+", default=[1024, 16384])
    parser.add_argument("--ppo-steps", type=int, default=8192)
    parser.add_argument("--num-envs", type=int, default=64)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "world.parquet"
        summary = write_world_logs(WorldConfig(), args.users, args.days, 0, log_path)
        print(
            f"world log: {summary.n_events:,} events, {summary.n_users:,} shoppers; "
            f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        )
        rows = {device: measure(device, log_path, args) for device in devices}
    if "cuda" not in rows:
        print("no CUDA GPU here: the GPU path was not run")
    else:
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    print(f"\n{'measure':<20s}" + "".join(f"{d:>14s}" for d in devices) + ("   cuda / cpu" if "cuda" in rows else ""))
    for key in rows["cpu"]:
        cells = "".join(f"{rows[d][key]:>14,.1f}" for d in devices)
        ratio = f"   {rows['cuda'][key] / rows['cpu'][key]:.2f}x" if "cuda" in rows else ""
        print(f"{key:<20s}{cells}{ratio}")
    print("fit s/epoch: lower is better; the other rows are per second, higher is better")


if __name__ == "__main__":
    main()
