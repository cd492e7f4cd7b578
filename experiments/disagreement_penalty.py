"""The disagreement penalty against the sim-to-real gap: PPO trained in a simulator ensemble
with the reward r - lambda x disagreement, scored in the ensemble and in the true world.

Top to bottom, CleanRL-style: copy it and change the ``Args``. The steps:

1. a bootstrap ensemble of learned simulators fitted on world logs (default: the
   quickstart's, ``runs/quickstart/simulator``; run ``retentionrl quickstart`` first);
2. for each lambda of ``penalties``, PPO trains in it on the retention reward minus lambda
   times the members' disagreement about each visit
   (:attr:`retentionrl.simulators.learned.ensemble.SimulatorEnsemble.disagreement`;
   lambda = 0 trains as the quickstart does, each shopper in one member). The lambdas are
   fixed before any result is seen: MOPO's (Yu et al. 2020) 1 and 5;
3. every agent is rolled out on ``eval_users`` fresh shoppers in the ensemble (each shopper
   in one member, the value the pipeline shows), in its least favourable member, and in
   the world (the truth); the gap is simulated - true return visits, with a 95% interval
   (the two samples are independent).

    python experiments/disagreement_penalty.py [--simulator runs/quickstart/simulator] [--penalties 0,1,5]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import load_policy, train
from retentionrl.core.atomic import atomic_write_text
from retentionrl.simulators.learned.ensemble import SimulatorEnsemble, load_members
from retentionrl.simulators.rollout import evaluate_policy
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.simulator import GroundTruthWorld


@dataclass
class Args:
    simulator: str = "runs/quickstart/simulator"
    """folder of a simulator ensemble (>= 2 members)"""
    penalties: str = "0,1,5"
    """comma-separated lambdas"""
    total_steps: int = 200_000
    """environment steps per agent (the quickstart's)"""
    num_envs: int = 256
    """shoppers stepped together while training (the quickstart's)"""
    eval_users: int = 5_000
    """fresh shoppers per rollout"""
    seed: int = 0
    """seeds the agents and the rollouts"""
    out: str = "runs/disagreement_penalty"
    """folder of the agents and results.json"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in asdict(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return Args(**vars(parser.parse_args()))


args = parse_args()
out = Path(args.out)
members = load_members(args.simulator, device="cpu")
if len(members) < 2:
    raise SystemExit(f"--simulator: {args.simulator} is not an ensemble of >= 2 simulators")
ensemble = SimulatorEnsemble(members)
world = GroundTruthWorld(WorldConfig())
rows = []
for penalty in (float(v) for v in args.penalties.split(",")):
    folder = out / f"ppo_lambda_{penalty:g}"
    config = TrainConfig(
        algo="ppo",
        simulator=args.simulator,
        total_steps=args.total_steps,
        num_envs=args.num_envs,
        seed=args.seed,
        device="cpu",
        disagreement_penalty=penalty,
    )
    train(config, folder, progress=True)
    policy = load_policy(folder)
    sim = evaluate_policy(ensemble, policy, args.eval_users, args.seed + 1)
    worst = min(
        (evaluate_policy(m, policy, args.eval_users, args.seed + 1) for m in members),
        key=lambda v: v.return_visits.estimate,
    )
    true = evaluate_policy(world, policy, args.eval_users, args.seed + 1)
    gap = sim.return_visits.estimate - true.return_visits.estimate
    # 95% half-widths are 1.96 se each; the difference of independent means has 1.96 sqrt(se1^2 + se2^2)
    half = math.hypot(*(v.return_visits.high - v.return_visits.estimate for v in (sim, true)))
    rows.append(
        {
            "lambda": penalty,
            "true_return_visits": asdict(true.return_visits),
            "true_profit": asdict(true.profit),
            "true_coupon_cost": true.coupon_cost.estimate,
            "ensemble_return_visits": asdict(sim.return_visits),
            "least_member_return_visits": asdict(worst.return_visits),
            "gap": gap,
            "gap_low": gap - half,
            "gap_high": gap + half,
        }
    )

print(
    f"\n{'lambda':>6} {'true return visits':>22} {'true profit':>20} {'ensemble':>8} {'least member':>12} {'gap (sim - true)':>24}"
)
for r in rows:
    t, p = r["true_return_visits"], r["true_profit"]
    print(
        f"{r['lambda']:>6g} {t['estimate']:6.2f} [{t['low']:.2f}, {t['high']:.2f}] "
        f"{p['estimate']:7.2f} [{p['low']:.2f}, {p['high']:.2f}] {r['ensemble_return_visits']['estimate']:8.2f} "
        f"{r['least_member_return_visits']['estimate']:12.2f} {r['gap']:+8.2f} [{r['gap_low']:+.2f}, {r['gap_high']:+.2f}]"
    )
atomic_write_text(out / "results.json", json.dumps({"args": asdict(args), "rows": rows}, indent=2))
print(f"wrote {out / 'results.json'}")
