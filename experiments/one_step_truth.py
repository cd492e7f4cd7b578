"""The one-step agents fitted in the learned simulators against the same step fitted in the world.

:mod:`retentionrl.agents.one_step` fits popularity's Q networks on rollouts in each member of a
learned simulator ensemble. This script fits the same networks, with the same settings, on
rollouts in the ground-truth world itself (the referee as the simulator: what the step reaches
when the model is exact, bar sampling noise) with the same budget: as many independent world
rollouts as the ensemble has members, two networks on each, so the pessimism takes the least of
as many estimates), then rolls both out at every weight on the same
``--users`` fresh shoppers of the world and prints return visits and profit per shopper with
95% intervals, and the simulator-fitted agent's share of the world-fitted one's return visits.

Usage: ``python experiments/one_step_truth.py --run runs/quickstart [--users 5000]``
(``--run``: a quickstart folder, whose ``agent_one-step`` and ``dataset`` stages it reads).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from retentionrl.agents.one_step import ONE_STEP_META, OneStepConfig, OneStepPolicy, fit_q, load_one_step
from retentionrl.envs.reward import RewardConfig
from retentionrl.simulators.rollout import evaluate_policy
from retentionrl.simulators.world.simulator import GroundTruthWorld


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a quickstart folder with an agent_one-step stage")
    parser.add_argument("--users", type=int, default=5_000, help="fresh world shoppers per policy")
    parser.add_argument("--weights", default="0,0.25,0.5,0.75,1", help="retention weights w to deploy at")
    args = parser.parse_args(argv)
    folder = args.run / "agent_one-step"
    sim_fitted = load_one_step(folder)
    config = OneStepConfig(**json.loads((folder / ONE_STEP_META).read_text())["config"])
    world = GroundTruthWorld()
    members = len(sim_fitted.q.nets) // 2  # two networks per member
    t0 = time.perf_counter()
    q_world = fit_q([GroundTruthWorld() for _ in range(members)], sim_fitted.base_action, config, progress=True)
    print(f"fitted in the world ({members} x {config.users:,} shoppers, {time.perf_counter() - t0:.0f} s)", flush=True)
    world_fitted = OneStepPolicy(q_world, sim_fitted.base_action, sim_fitted.action_space, sim_fitted.reward)
    scale = sim_fitted.reward.revenue_scale
    print(f"{'w':>5}  {'fitted in':10}  {'return visits':24}  {'profit':22}  coupon cost")
    for w in (float(x) for x in args.weights.split(",")):
        reward = RewardConfig.weighted(w, scale)
        rows = {}
        for place, policy in (("simulator", sim_fitted), ("world", world_fitted)):
            value = evaluate_policy(world, policy.with_reward(reward), args.users, seed=1)
            rows[place] = value
            print(f"{w:5.2f}  {place:10}  {value.return_visits!s:24}  {value.profit!s:22}  {value.coupon_cost}")
        share = rows["simulator"].return_visits.estimate / rows["world"].return_visits.estimate
        print(f"{'':5}  simulator-fitted / world-fitted return visits: {share:.1%}", flush=True)


if __name__ == "__main__":
    main()
