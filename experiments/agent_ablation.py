"""Why do the agents lose to popularity? Train variants, score each in the simulator and in truth.

Every variant is a PPO or DQN run (:class:`retentionrl.agents.config.TrainConfig` overrides) trained in
the learned simulator ``--simulator`` (a fitted folder or an ensemble's; or in the world, for the sim-to-real reference),
then deployed both ways (``greedy`` and ``stochastic``, see :mod:`retentionrl.agents.policies`) and
rolled out on ``--users`` fresh shoppers in the learned simulator (the value the pipeline
may select on) and in the ground-truth world (the referee, for the record only), beside
the baselines fit on the simulator's training logs (popularity, logging clone) and the
world heuristics. One row per (variant, deployment): return visits and profit per
shopper over the horizon with 95% intervals, and coupon cost.

Usage: ``python experiments/agent_ablation.py --simulator runs/quickstart/simulator
--logs runs/quickstart/split/train.parquet [--variants default,gamma99,...] [--steps 200000]
[--json runs/ablation/results.json]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from retentionrl.agents.baselines import LoggingPolicyClone, PopularityPolicy
from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import load_policy, train
from retentionrl.core.atomic import atomic_write_text
from retentionrl.core.policy import Policy
from retentionrl.envs.factory import load_simulator
from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.io import EventLog, read_events
from retentionrl.interactions.trajectories import visits_with_trajectories
from retentionrl.pipeline.run import logged_reward_scale
from retentionrl.simulators.policy_registry import make_policy
from retentionrl.simulators.rollout import PolicyValue, evaluate_policy
from retentionrl.simulators.world.config import WorldConfig

LOGS_SCALE = "logs"
"""``revenue_scale`` of the ``balanced-*`` variants' mixed reward, resolved from ``--logs``: their
profit per visit over their share of visits followed by a return within H
(:func:`retentionrl.pipeline.run.logged_reward_scale`, the pipeline's default), so that w = 0.5
weighs a return and its profit as the logs trade them (2.44 on the quickstart's train split)."""

VARIANTS: dict[str, dict[str, object]] = {
    "default": {},
    "gamma99": {"gamma": 0.99},
    "ent001": {"ppo_ent_coef": 0.001},
    "gae95": {"ppo_gae_lambda": 0.95, "gamma": 0.99},
    "big-net": {"net_arch": (256, 256)},
    "factorised": {"ppo_head": "factorised"},
    "world-factorised": {"simulator": "world", "ppo_head": "factorised"},
    "lr1e-4": {"learning_rate": 1e-4},
    "dqn": {"algo": "dqn"},
    "dqn-gamma99": {"algo": "dqn", "gamma": 0.99},
    "world": {"simulator": "world"},
    "warm-popularity": {"warm_start": "popularity"},
    "warm-popularity-lr1e-4": {"warm_start": "popularity", "learning_rate": 1e-4},
    "world-warm-popularity": {"simulator": "world", "warm_start": "popularity"},
    "warm-soft": {"warm_start": "popularity", "warm_start_smoothing": 0.5},
    "world-warm-soft": {"simulator": "world", "warm_start": "popularity", "warm_start_smoothing": 0.5},
    "profit": {"reward_mode": "profit"},
    "profit-logs": {"reward_mode": "profit", "revenue_scale": LOGS_SCALE},
    **{
        f"balanced-w{w}": {"reward_mode": "mixed", "retention_weight": w, "revenue_scale": LOGS_SCALE}
        for w in (0.5, 0.65, 0.72, 0.8, 0.9)
    },
    "warm-popularity-profit": {"warm_start": "popularity", "reward_mode": "profit"},
    "warm-popularity-balanced-w0.8": {
        "warm_start": "popularity",
        "reward_mode": "mixed",
        "retention_weight": 0.8,
        "revenue_scale": LOGS_SCALE,
    },
}
"""Named overrides of :class:`TrainConfig`; ``simulator: world`` trains in the referee;
``warm_start`` names the baseline (fit on ``--logs``) that PPO is cloned from first."""


def baselines(log: EventLog, simulator) -> list[Policy]:
    """Popularity and the logging clone fit on ``log``, and the world's never- and always-coupon."""
    visits = visits_with_trajectories(log, horizon_days=simulator.horizon_days)
    amap = ActionMap.fit(visits, coupon_levels=simulator.action_space.coupon_levels)
    decisions = LoggedDecisions.from_visits(visits, amap, simulator.horizon_days, simulator.history.spend_scale)
    return [
        PopularityPolicy.fit(decisions),
        LoggingPolicyClone.fit(decisions),
        make_policy("never-coupon", WorldConfig()),
        make_policy("always-coupon", WorldConfig()),
    ]


def row(name: str, sim_value: PolicyValue, world_value: PolicyValue, minutes: float | None) -> dict[str, object]:
    """One table row (JSON-ready)."""
    return {"policy": name, "train_min": minutes, "simulator": sim_value.to_dict(), "world": world_value.to_dict()}


def main(argv: list[str] | None = None) -> None:
    """Train the variants, roll every policy out in both simulators, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", type=Path, required=True, help="fitted learned simulator folder")
    parser.add_argument("--logs", type=Path, required=True, help="the simulator's training logs (for the baselines)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    sim, world = load_simulator(str(args.simulator), device="cpu"), load_simulator("world", device="cpu")
    log = read_events(args.logs)
    scale = None
    if any(VARIANTS[v].get("revenue_scale") == LOGS_SCALE for v in args.variants.split(",")):
        scale = logged_reward_scale(log, sim.horizon_days, "auto")["revenue_scale"]
        if scale is None:
            parser.error(f"{args.logs} gives no revenue scale for the variants that take it from the logs")
    rows = []

    def score(policy: Policy, name: str, minutes: float | None = None) -> None:
        s = evaluate_policy(sim, policy, args.users, args.seed + 1)
        w = evaluate_policy(world, policy, args.users, args.seed + 1)
        rows.append(row(name, s, w, minutes))
        print(
            f"{name:28s} sim {s.return_visits} profit {s.profit} | world {w.return_visits} profit {w.profit} "
            f"coupon {w.coupon_cost.estimate:.2f}",
            flush=True,
        )

    fitted = baselines(log, sim)
    for policy in fitted:
        score(policy, policy.name)
    by_name = {policy.name: policy for policy in fitted}
    for variant in args.variants.split(","):
        overrides = {
            "simulator": str(args.simulator),
            "total_steps": args.steps,
            "num_envs": args.num_envs,
            "seed": args.seed,
            "device": "cpu",
            **VARIANTS[variant],
        }
        if overrides.get("revenue_scale") == LOGS_SCALE:
            overrides["revenue_scale"] = scale
        config = TrainConfig(**overrides)
        t = time.perf_counter()
        train(config, args.out / variant, progress=False, teacher=by_name.get(config.warm_start))
        minutes = (time.perf_counter() - t) / 60
        for deploy in ("stochastic", "greedy"):
            score(load_policy(args.out / variant, deploy=deploy), f"{variant} ({deploy})", minutes)
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
