"""Warm start by behaviour cloning: PPO starts as its teacher and does not end below it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import load_policy, train
from retentionrl.simulators.policy_registry import make_policy
from retentionrl.simulators.rollout import evaluate_policy
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.simulator import GroundTruthWorld

TEACHER = make_policy("never-coupon", WorldConfig())
SMALL = dict(
    simulator="world",
    num_envs=32,
    device="cpu",
    ppo_n_steps=32,
    ppo_batch_size=256,
    ppo_epochs=2,
    warm_start="never-coupon",
    warm_start_visits=20_000,
)


def test_the_clone_acts_as_its_teacher_before_any_training(tmp_path):
    train(TrainConfig(total_steps=1, **SMALL), tmp_path, progress=False, teacher=TEACHER)
    fit = json.loads((tmp_path / "warm_start.json").read_text())
    assert fit["teacher"] == "never-coupon" and fit["agreement"] > 0.99
    obs = GroundTruthWorld().reset(500, seed=4)
    np.testing.assert_array_equal(load_policy(tmp_path).action_probs(obs), TEACHER.action_probs(obs))


def test_the_warm_started_agent_is_not_below_its_teacher(tmp_path):
    """After PPO updates in the simulator it trains in, it keeps the teacher's return visits
    (its 95% interval reaches the teacher's mean) and beats an agent trained from scratch."""
    train(TrainConfig(total_steps=16_384, **SMALL), tmp_path / "warm", progress=False, teacher=TEACHER)
    scratch = {k: v for k, v in SMALL.items() if not k.startswith("warm_start")}
    train(TrainConfig(total_steps=16_384, **scratch), tmp_path / "scratch", progress=False)
    world = GroundTruthWorld()
    teacher = evaluate_policy(world, TEACHER, 4000, 11).return_visits
    warm = evaluate_policy(world, load_policy(tmp_path / "warm"), 4000, 11).return_visits
    cold = evaluate_policy(world, load_policy(tmp_path / "scratch"), 4000, 11).return_visits
    assert warm.high >= teacher.estimate
    assert warm.estimate > cold.high


def test_warm_start_needs_ppo_and_its_teacher(tmp_path):
    with pytest.raises(ValueError, match="PPO"):
        TrainConfig(algo="dqn", warm_start="never-coupon")
    with pytest.raises(ValueError, match="teacher"):
        train(TrainConfig(total_steps=1, **SMALL), tmp_path, progress=False)


def test_a_smoothed_clone_keeps_the_teachers_argmax_but_is_not_peaked(tmp_path):
    train(TrainConfig(total_steps=1, warm_start_smoothing=0.5, **SMALL), tmp_path, progress=False, teacher=TEACHER)
    obs = GroundTruthWorld().reset(500, seed=4)
    np.testing.assert_array_equal(load_policy(tmp_path).action_probs(obs), TEACHER.action_probs(obs))
    top = load_policy(tmp_path, deploy="stochastic").action_probs(obs).max(axis=1)
    assert np.all(top < 0.8) and np.all(top > 0.3)  # about 1 - 0.5 + 0.5 / 80 by the target
