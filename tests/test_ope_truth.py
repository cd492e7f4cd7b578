"""The per-decision truth of experiments/ope_truth: the world's own expected reward, and the
same quantity the on-policy rollouts measure for the logging policy."""

from __future__ import annotations

import numpy as np

from retentionrl.simulators.policy_registry import make_policy
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.simulator import GroundTruthWorld
from retentionrl.simulators.world.truth import expected_profit, per_decision_truth


def test_expected_profit_is_the_mean_of_the_worlds_draws():
    config = WorldConfig()
    world = GroundTruthWorld(config)
    n = 50_000
    world.reset(n, seed=4)
    rng = np.random.default_rng(0)
    world.step(rng.integers(0, config.action_space.n_actions, n))  # shoppers with some history
    mu = expected_profit(world, np.random.default_rng(1))
    assert mu.shape == (n, config.action_space.n_actions) and np.isfinite(mu).all()
    action = rng.integers(0, config.action_space.n_actions, n)
    expected = mu[np.arange(n), action]
    _, out = world.step(action)
    drawn = out.profit
    se = drawn.std(ddof=1) / np.sqrt(n)
    assert abs(drawn.mean() - expected.mean()) < 4 * se


def test_truth_of_the_logging_policy_is_its_profit_per_visit():
    """V(pi_b) = E[profit within H] / E[visits within H], from the rollouts of
    :func:`retentionrl.simulators.rollout.evaluate_policy` (visits = 1 + return visits)."""
    config = WorldConfig()
    logging = make_policy("softmax", config)
    truth = per_decision_truth(config, logging, {"logging": logging}, 10_000, seed=1)["logging"]
    rollout = GroundTruthWorld(config).evaluate(logging, 10_000, seed=2)
    per_visit = rollout.profit.estimate / (1.0 + rollout.return_visits.estimate)
    se_rollout = per_visit * (rollout.profit.high - rollout.profit.estimate) / 1.96 / rollout.profit.estimate
    assert truth.se > 0
    assert abs(truth.value - per_visit) < 4 * np.hypot(truth.se, se_rollout)


def test_tables_summarize_relative_error_coverage_and_interval_width():
    import pandas as pd

    from experiments.ope_truth import spread_table, summary_table

    frame = pd.DataFrame(
        {
            "family": "per-decision",
            "estimator": "dr",
            "policy": "p",
            "estimate": [1.0, 3.0],
            "low": [0.0, 2.5],
            "high": [3.92, 3.5],
            "truth": 2.0,
            "rel_error": [0.5, 0.5],
            "covered": [1.0, 0.0],
        }
    )
    assert summary_table(frame).loc[("per-decision", "dr"), "p"] == "0.500 / 50%"
    # mean bootstrap se (1 + 0.255) / 2 over the sd of [1, 3] (sqrt 2)
    assert spread_table(frame).loc[("per-decision", "dr"), "p"] == round((1 + 1 / 3.92) / 2 / np.sqrt(2), 2)
