"""Train PPO and DQN in the learned simulator only, then score them in the true world.

Top to bottom, CleanRL-style: copy it and change the ``Args``. The steps:

1. the ground-truth world writes logs of ``n_log_users`` shoppers under its default
   (softmax) logging policy -- the only thing the rest of the script learns from;
2. the learned simulator is fit on those logs;
3. PPO and DQN train in the learned simulator (``retention`` reward: return visits);
4. baselines fit on the same logs: a clone of the logging policy and myopic-greedy;
5. every policy is evaluated on ``n_eval_users`` new shoppers in the world (true values)
   and in the learned simulator (the sim-to-real gap), with 95% intervals.

    python experiments/sim_to_real.py --total-steps 300000 --out runs/sim_to_real
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from retentionrl.agents.baselines import LoggingPolicyClone, MyopicGreedyPolicy
from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import load_policy, train
from retentionrl.core.interval import Z95
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.io import read_events
from retentionrl.simulators.learned.fit import FitConfig, fit_simulator
from retentionrl.simulators.learned.simulator import LearnedSimulator
from retentionrl.simulators.policy_registry import make_policy
from retentionrl.simulators.rollout import evaluate_policy, format_table
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs
from retentionrl.simulators.world.simulator import GroundTruthWorld


@dataclass
class Args:
    out: str = "runs/sim_to_real"
    """folder for logs, simulator, agents and results"""
    n_log_users: int = 20_000
    """shoppers in the world's logs"""
    log_days: int = 180
    """days the logs cover"""
    total_steps: int = 300_000
    """environment steps per agent (in the learned simulator)"""
    num_envs: int = 256
    """shoppers stepped together while training"""
    n_eval_users: int = 5_000
    """new shoppers per evaluation"""
    seed: int = 0
    """seed of everything"""
    fit_epochs: int = 30
    """most epochs of the simulator fit"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in asdict(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    args = parse_args()
    out = Path(args.out)
    config = WorldConfig()
    timings: dict[str, float] = {}

    # 1. logs of the true world
    t0 = time.perf_counter()
    logs = out / "world_logs.parquet"
    write_world_logs(config, args.n_log_users, args.log_days, args.seed, logs, progress=True)
    log = read_events(logs, "events")

    # 2. the learned simulator, from the logs alone
    fit_simulator(
        log, FitConfig(epochs=args.fit_epochs, seed=args.seed, device="auto"), out / "simulator", progress=True
    )
    timings["logs + simulator fit (s)"] = time.perf_counter() - t0

    # 3. PPO and DQN trained in the learned simulator only
    agents = {}
    for algo in ("ppo", "dqn"):
        t0 = time.perf_counter()
        train(
            TrainConfig(
                algo=algo,
                simulator=str(out / "simulator"),
                total_steps=args.total_steps,
                num_envs=args.num_envs,
                seed=args.seed,
            ),
            out / algo,
        )
        timings[f"{algo} training (s)"] = time.perf_counter() - t0
        agents[algo] = load_policy(out / algo)

    # 4. baselines fit on the same logs
    decisions = LoggedDecisions.from_log(log, horizon_days=config.horizon_days)
    policies = {
        **agents,
        "logging (true)": make_policy("softmax", config),
        "logging clone": LoggingPolicyClone.fit(decisions),
        "myopic-greedy": MyopicGreedyPolicy.fit(decisions, seed=args.seed),
    }

    # 5. true values in the world, and values inside the learned simulator
    results = {}
    for where, make_sim in (
        ("world", GroundTruthWorld),
        ("learned simulator", lambda: LearnedSimulator.load(out / "simulator")),
    ):
        values = []
        for name, policy in policies.items():
            policy.name = name
            values.append(evaluate_policy(make_sim(), policy, args.n_eval_users, args.seed + 1))
        results[where] = values
        print(f"\n== {where} ==\n{format_table(values)}")
    # 6. relative gain in true return visits, with a delta-method 95% interval (independent samples)
    world = {v.policy: v.return_visits for v in results["world"]}
    for algo in agents:
        for base in ("logging (true)", "myopic-greedy"):
            a, b = world[algo], world[base]
            se_a, se_b = (a.high - a.low) / (2 * Z95), (b.high - b.low) / (2 * Z95)
            gain = a.estimate / b.estimate - 1.0
            se = ((se_a / b.estimate) ** 2 + (a.estimate * se_b / b.estimate**2) ** 2) ** 0.5
            print(f"{algo} vs {base}: return visits {gain:+.1%} [{gain - Z95 * se:+.1%}, {gain + Z95 * se:+.1%}]")
    print("\n" + "\n".join(f"{k:<28} {v:,.0f}" for k, v in timings.items()))
    (out / "results.json").write_text(
        json.dumps(
            {
                "args": asdict(args),
                "timings": timings,
                "values": {w: [v.to_dict() for v in vals] for w, vals in results.items()},
            },
            indent=2,
        )
    )
