"""Trajectory estimators on churn-ended trajectories of different lengths, and linear FQE."""

from __future__ import annotations

import numpy as np
import pytest

from retentionrl.evaluation.fqe import fit_fqe
from retentionrl.evaluation.trajectory import (
    FQEValue,
    PerDecisionIS,
    PerDecisionWIS,
    TrajectoryDR,
    TrajectoryInputs,
    TrajectoryIS,
    WeightedIS,
    default_trajectory_estimators,
    evaluate_trajectories,
    trajectory_diagnostics,
)

# trajectory 7: two steps, rewards 1, 1, ratios 2, 0.5 (weights 2, 1);
# trajectory 3: one step (churned), reward 0, ratio 2.  Rows deliberately out of order.
TINY = {
    "trajectory_id": np.array([7, 3, 7]),
    "step": np.array([1, 0, 0]),
    "reward": np.array([1.0, 0.0, 1.0]),
    "propensity": np.array([0.5, 0.25, 0.5]),
    "target_prob": np.array([0.25, 0.5, 1.0]),
    "q_factual": np.full(3, 0.5),
    "v_policy": np.full(3, 0.6),
}


@pytest.mark.parametrize(
    ("estimator", "expected"),
    [
        (TrajectoryIS(), (1 * 2 + 2 * 0) / 2),
        (PerDecisionIS(), (2 * 1 + 1 * 1 + 0) / 2),
        (WeightedIS(), (1 * 2 + 2 * 0) / (1 + 2)),
        # step 0: (2*1 + 2*0)/(2+2); step 1: the ended trajectory keeps weight 2: (1*1 + 0)/(1+2)
        (PerDecisionWIS(), 0.5 + 1 / 3),
        # traj 7: [2*(1-.5) + 1*.6] + [1*(1-.5) + 2*.6] = 3.3; traj 3: 2*(0-.5) + .6 = -0.4
        (TrajectoryDR(), (3.3 - 0.4) / 2),
        (FQEValue(), 0.6),
    ],
)
def test_hand_computed_values_on_variable_length_trajectories(estimator, expected):
    assert estimator.estimate(TrajectoryInputs.prepare(**TINY)) == pytest.approx(expected)


def test_padding_keeps_ended_trajectories_absorbing():
    inputs = TrajectoryInputs.prepare(**TINY)
    assert inputs.reward.shape == (2, 2)
    np.testing.assert_allclose(inputs.cum_weight, [[2.0, 2.0], [2.0, 1.0]])  # ids sorted: 3, 7
    assert inputs.mask.tolist() == [[True, False], [True, True]]
    assert trajectory_diagnostics(inputs).max_weight == 2.0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"step": np.array([1, 0, 1])}, r"trajectory 7 has step 1 more than once|steps must be 0..T-1"),
        ({"step": np.array([2, 0, 0])}, r"trajectory 7 has 2 steps but row 0 has step 2"),
        ({"step": np.array([1, -1, 0])}, r"step must be >= 0; row 1"),
        ({"propensity": np.array([0.5, 0.0, 0.5])}, r"propensity must lie in \(0, 1\]; row 1: 0.0"),
        ({"target_prob": np.array([0.25, 1.5, 1.0])}, r"target_prob must lie in \[0, 1\]; row 1: 1.5"),
        ({"reward": np.array([1.0, np.inf, 1.0])}, r"reward must be finite .* row 1: inf"),
        ({"gamma": 1.5}, r"gamma must lie in \[0, 1\]"),
        ({"trajectory_id": np.array([7, 3])}, r"trajectory_id must have shape \(3,\)"),
    ],
)
def test_invalid_inputs(change, match):
    with pytest.raises(ValueError, match=match):
        TrajectoryInputs.prepare(**{**TINY, **change})


def test_dr_without_model_raises():
    with pytest.raises(ValueError, match="dr needs q_factual and v_policy"):
        TrajectoryDR().estimate(TrajectoryInputs.prepare(**{**TINY, "q_factual": None, "v_policy": None}))


def _chain(rng, n, p_stop, behavior_p0, target_p0):
    """Two actions; action 0 pays 1, action 1 pays 0; after each step the trajectory ends
    (churn) with probability ``p_stop``, so lengths vary. State: the step number."""
    rows = []
    for i in range(n):
        t = 0
        while True:
            a = int(rng.random() >= behavior_p0)
            rows.append(
                (
                    i,
                    t,
                    float(a == 0),
                    behavior_p0 if a == 0 else 1 - behavior_p0,
                    target_p0 if a == 0 else 1 - target_p0,
                    a,
                )
            )
            t += 1
            if rng.random() < p_stop or t >= 20:
                break
    return np.array(rows)


def test_estimators_recover_the_value_of_variable_length_trajectories():
    rng = np.random.default_rng(1)
    p_stop, target_p0 = 0.3, 0.8
    data = _chain(rng, 3000, p_stop, 0.5, target_p0)
    tid, step, reward, prop, target, action = data.T
    tid, step, action = tid.astype(int), step.astype(int), action.astype(int)
    expected_len = sum((1 - p_stop) ** t for t in range(20))
    truth = target_p0 * expected_len
    dist = np.tile([target_p0, 1 - target_p0], (tid.size, 1))
    obs = np.eye(20)[step]
    q = fit_fqe(obs, action, reward, tid, step, dist, n_actions=2, ridge=1e-3)
    inputs = TrajectoryInputs.prepare(tid, step, reward, prop, target, q.q_logged(obs, action), q.v(obs, dist))
    out = evaluate_trajectories(default_trajectory_estimators(), inputs, n_bootstrap=200, seed=0)
    for name in ("is", "pdis", "wis", "pdwis", "dr"):
        assert abs(out[name].estimate - truth) / truth < 0.1, (name, out[name], truth)
    # FQE is exact up to the stopping rule it cannot see (states = step numbers): close
    assert abs(out["fqe"].estimate - truth) / truth < 0.05
    assert np.isnan(out["fqe"].low)


@pytest.mark.parametrize(("gamma", "expected"), [(1.0, [2.0, 1.0]), (0.0, [1.0, 1.0])])
def test_fqe_backs_up_a_two_step_chain(gamma, expected):
    # states 0 -> 1 -> end, one action, reward 1 per step: Q(0) = 1 + gamma, Q(1) = 1
    obs = np.eye(2)[[0, 1, 0, 1]]
    trajectory, step = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    q = fit_fqe(
        obs, np.zeros(4, dtype=int), np.ones(4), trajectory, step, np.ones((4, 1)), n_actions=1, ridge=1e-8, gamma=gamma
    )
    np.testing.assert_allclose(q.q_all(np.eye(2)).ravel(), expected, atol=1e-4)


def test_dr_bootstrap_over_trajectories_covers_at_the_nominal_rate():
    rng = np.random.default_rng(5)
    truth = 0.8 * sum(0.7**t for t in range(20))
    covered = []
    for _ in range(40):
        tid, step, reward, prop, target, action = _chain(rng, 300, 0.3, 0.5, 0.8).T
        tid, step, action = tid.astype(int), step.astype(int), action.astype(int)
        dist = np.tile([0.8, 0.2], (tid.size, 1))
        obs = np.eye(20)[step]
        q = fit_fqe(obs, action, reward, tid, step, dist, n_actions=2, ridge=1e-3)
        inputs = TrajectoryInputs.prepare(tid, step, reward, prop, target, q.q_logged(obs, action), q.v(obs, dist))
        iv = TrajectoryDR().interval(inputs, n_bootstrap=200, seed=1)
        covered.append(iv.covers(truth))
    assert np.mean(covered) >= 0.85


def test_cross_fitted_reward_model_predicts_each_fold_from_the_others():
    from retentionrl.evaluation.fqe import RidgeDesign

    rng = np.random.default_rng(0)
    n, n_actions = 400, 3
    obs = rng.normal(size=(n, 2))
    action = rng.integers(0, n_actions, n)
    y = obs[:, 0] + (action == 1) + rng.normal(0, 0.1, n)
    design = RidgeDesign.build(obs, action, n_actions)
    fold = np.repeat(np.arange(2), n // 2)
    q = design.cross_fit(obs, y, fold).estimated_rewards
    # fold 1's predictions are the ridge fit of fold 0's rows alone
    coef = np.linalg.solve(
        design.x[:200].T @ design.x[:200] + np.diag([0.0] + [1.0] * (design.x.shape[1] - 1)), design.x[:200].T @ y[:200]
    )
    expected = type(design.template)(
        n_actions, design.template.action_features, coef, design.template.x_mean, design.template.x_scale
    ).q_all(obs[200:])
    np.testing.assert_allclose(q[200:], expected)
    assert np.corrcoef(q[np.arange(n), action], y)[0, 1] > 0.9
