"""Learning happens: PPO and DQN trained briefly in the world keep more shoppers than random.

Seeded, small budgets; the margin is asserted in standard errors of the difference of the
two means (independent rollouts of 3,000 fresh shoppers each)."""

from __future__ import annotations

import numpy as np
import pytest

from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import load_policy, train
from retentionrl.core.interval import Z95, Interval
from retentionrl.simulators.rollout import evaluate_policy
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logging_policies import UniformPolicy
from retentionrl.simulators.world.simulator import GroundTruthWorld

BUDGETS = {
    "ppo": dict(total_steps=32_768),
    "dqn": dict(
        total_steps=32_768,
        dqn_learning_starts=1_000,
        dqn_buffer_size=20_000,
        dqn_exploration_fraction=0.5,
        dqn_target_update=1_000,
    ),
}


def standard_error(e: Interval) -> float:
    return (e.high - e.low) / (2 * Z95)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_agent_trained_in_the_world_beats_random_by_several_standard_errors(algo, tmp_path):
    config = TrainConfig(
        algo=algo, simulator="world", num_envs=64, device="cpu", checkpoint_every=10**9, seed=0, **BUDGETS[algo]
    )
    train(config, tmp_path, progress=False)
    agent = evaluate_policy(GroundTruthWorld(), load_policy(tmp_path), 3_000, 5).return_visits
    random = evaluate_policy(GroundTruthWorld(), UniformPolicy(WorldConfig().action_space), 3_000, 5).return_visits
    margin = (agent.estimate - random.estimate) / np.hypot(standard_error(agent), standard_error(random))
    assert margin > 4.0, (agent, random, margin)
