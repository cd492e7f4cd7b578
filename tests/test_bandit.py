"""BanditFeedback: validation of every field, summary arithmetic, resampling, pi_e lookup."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retentionrl.core.errors import LogError
from retentionrl.interactions.bandit import BanditFeedback


def make(**overrides: object) -> BanditFeedback:
    """4 rounds, 3 actions, 2 positions, 2 context features; any field overridable."""
    fields: dict[str, object] = {
        "n_actions": 3,
        "action": [0, 2, 1, 2],
        "reward": [1.0, 0.0, 0.0, 1.0],
        "propensity": [0.5, 0.25, 1.0, 0.25],
        "context": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, -1.0]],
        "position": [0, 1, 1, 0],
        "len_list": 2,
        "action_context": [[1.0], [2.0], [3.0]],
        "reward_name": "click",
        "source": "log.csv",
        "context_names": ("age", "income"),
    }
    fields.update(overrides)
    return BanditFeedback(**fields)  # type: ignore[arg-type]


def test_valid_feedback_is_converted_typed_and_read_only() -> None:
    fb = make(action=np.array([0.0, 2.0, 1.0, 2.0]))
    assert fb.n_rounds == 4 and fb.dim_context == 2
    assert fb.action.dtype == np.int64 and fb.position is not None and fb.position.dtype == np.int64
    assert fb.reward.dtype == fb.propensity.dtype == fb.context.dtype == np.float64
    assert fb.action.tolist() == [0, 2, 1, 2]
    with pytest.raises(ValueError, match="read-only"):
        fb.reward[0] = 5.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        fb.n_actions = 4  # type: ignore[misc]


def test_caller_array_stays_writable() -> None:
    reward = np.array([1.0, 0.0, 0.0, 1.0])
    make(reward=reward)
    reward[0] = 2.0  # the caller's array is not frozen by the feedback's view


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (
            {"propensity": [0.5, 0.25, np.nan, 0.25]},
            LogError,
            r"log\.csv: column 'propensity': must be finite.*row 3 \(nan\)",
        ),
        (
            {"propensity": [0.5, 0.0, 1.0, 0.25]},
            LogError,
            r"'propensity': must lie in \(0, 1\].*row 2 \(0\.0\)",
        ),
        ({"propensity": [0.5, 0.25, 1.5, 0.25]}, LogError, r"'propensity'.*row 3 \(1\.5\)"),
        (
            {"propensity": [0.5, 0.25, 1.0]},
            LogError,
            r"'propensity': must have shape \(n_rounds=4,\), got \(3,\)",
        ),
        ({"action": [0, 3, 1, 2]}, LogError, r"'action': must lie in \[0, 2\].*row 2 \(3\)"),
        ({"action": [0, -1, 1, 2]}, LogError, r"'action'.*row 2 \(-1\)"),
        ({"action": [0.0, 1.5, 1.0, 2.0]}, LogError, r"'action': must hold integers.*row 2 \(1\.5\)"),
        ({"action": ["a", "b", "c", "d"]}, LogError, r"'action': must hold integers, got dtype"),
        ({"action": [[0, 1], [1, 2]]}, LogError, r"'action': must have shape \(n_rounds,\)"),
        ({"action": []}, LogError, r"no rounds"),
        ({"reward": [1.0, np.inf, 0.0, 1.0]}, LogError, r"'reward': must be finite.*row 2 \(inf\)"),
        ({"reward": [1.0, 0.0]}, LogError, r"'reward': must have shape \(n_rounds=4,\), got \(2,\)"),
        ({"reward": ["x", 0, 0, 1]}, LogError, r"'reward': must hold numbers"),
        (
            {"context": [1.0, 2.0, 3.0, 4.0]},
            LogError,
            r"'context': must have shape \(n_rounds=4, d\), got \(4,\)",
        ),
        (
            {"context": [[0.0, 1.0], [1.0, np.nan], [2.0, 2.0], [3.0, -1.0]]},
            LogError,
            r"'context'.*feature: 'income'.*row 2 \(nan\)",
        ),
        ({"context_names": ("age",)}, ValueError, r"context_names has 1 names for 2 context columns"),
        ({"position": [0, 2, 1, 0]}, LogError, r"'position': must lie in \[0, 1\].*row 2 \(2\)"),
        ({"position": [0, 1, 1]}, LogError, r"'position': must have shape \(n_rounds=4,\)"),
        ({"position": None}, ValueError, r"len_list is 2 but position is None"),
        ({"len_list": 0}, ValueError, r"len_list must be a positive integer, got 0"),
        ({"n_actions": 0}, ValueError, r"n_actions must be a positive integer, got 0"),
        ({"n_actions": 2.5}, ValueError, r"n_actions must be a positive integer, got 2\.5"),
        (
            {"action_context": [[1.0], [2.0]]},
            LogError,
            r"'action_context': must have shape \(n_actions=3, k\), got \(2, 1\)",
        ),
        ({"action_context": [[1.0], [np.nan], [3.0]]}, LogError, r"'action_context': must be finite.*row 2"),
        ({"reward_name": ""}, ValueError, r"reward_name must be a non-empty str"),
    ],
)
def test_invalid_input_names_field_row_and_value(overrides: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make(**overrides)


def test_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        make(propensity=[0.5, 0.25, np.nan, 0.25])


def test_no_positions_means_one_slot() -> None:
    fb = make(position=None, len_list=1)
    assert fb.position is None and fb.len_list == 1
    assert fb.summary()["positions"] == 1


def test_summary_by_hand() -> None:
    summary = make().summary()
    # rewards 1, 0, 0, 1: mean 0.5, s = sqrt(1/3), half width 1.96 * s / 2
    half = 1.959963984540054 * np.sqrt(1 / 3) / 2
    assert summary["reward_mean"] == pytest.approx(0.5)
    assert summary["reward_ci95"] == pytest.approx((0.5 - half, 0.5 + half))
    assert (summary["propensity_min"], summary["propensity_max"]) == (0.25, 1.0)
    assert summary["propensity_mean"] == pytest.approx(0.5)
    assert summary["rounds"] == 4 and summary["actions"] == 3 and summary["actions_logged"] == 3
    assert summary["positions"] == 2 and summary["context_dims"] == 2 and summary["action_context_dims"] == 1
    assert summary["reward_name"] == "click" and summary["source"] == "log.csv"


def test_summary_of_one_round_has_no_interval() -> None:
    fb = make().subsample(np.array([1]))
    assert fb.n_rounds == 1 and np.isnan(fb.summary()["reward_ci95"]).all()


def test_subsample_by_mask_and_by_index() -> None:
    fb = make()
    masked = fb.subsample(np.array([True, False, True, False]))
    assert masked.action.tolist() == [0, 1] and masked.position is not None and masked.position.tolist() == [0, 1]
    picked = fb.subsample(np.array([3, 3, 0]))
    assert picked.reward.tolist() == [1.0, 1.0, 1.0] and picked.context[0].tolist() == [3.0, -1.0]
    assert picked.n_actions == 3 and picked.len_list == 2 and picked.context_names == ("age", "income")


@pytest.mark.parametrize(
    ("idx", "match"),
    [
        (np.array([True, False]), r"mask must have shape \(4,\)"),
        (np.array([0, 4]), r"index 4 is outside \[0, 3\]"),
        (np.array([0.5]), r"boolean mask or integer indices"),
    ],
)
def test_subsample_rejects_bad_indices(idx: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make().subsample(idx)


def test_bootstrap_is_seeded_and_draws_with_replacement() -> None:
    n = 2000
    rng = np.random.default_rng(0)
    fb = BanditFeedback(
        n_actions=2,
        action=rng.integers(0, 2, n),
        reward=rng.normal(size=n),
        propensity=np.full(n, 0.5),
        context=np.arange(n, dtype=float)[:, None],
    )
    a, b = fb.bootstrap(7), fb.bootstrap(7)
    assert a.n_rounds == n and np.array_equal(a.context, b.context)
    distinct = np.unique(a.context).size
    assert 0.55 * n < distinct < 0.70 * n  # expected share of distinct draws: 1 - 1/e = 0.632
    means = np.array([fb.bootstrap(seed).reward.mean() for seed in range(200)])
    assert means.std() == pytest.approx(fb.reward.std() / np.sqrt(n), rel=0.25)


def test_prob_of_logged_per_round_and_context_free() -> None:
    fb = make()
    per_round = np.zeros((4, 3, 2))
    per_round[np.arange(4), fb.action, fb.position] = [0.1, 0.2, 0.3, 0.4]
    assert fb.prob_of_logged(per_round).tolist() == [0.1, 0.2, 0.3, 0.4]
    free = np.array([[0.2, 0.5], [0.3, 0.1], [0.5, 0.4]])  # (n_actions, len_list)
    assert fb.prob_of_logged(free).tolist() == [0.2, 0.4, 0.1, 0.5]


def test_prob_of_logged_without_positions() -> None:
    fb = make(position=None, len_list=1)
    assert fb.prob_of_logged(np.array([0.2, 0.3, 0.5])).tolist() == [0.2, 0.5, 0.3, 0.5]
    assert fb.prob_of_logged(np.tile([0.2, 0.3, 0.5], (4, 1))).tolist() == [0.2, 0.5, 0.3, 0.5]


@pytest.mark.parametrize(
    ("dist", "match"),
    [
        (np.full((4, 3), 1 / 3), r"action_dist must have shape in"),
        (np.full((3, 3), 1 / 3), r"action_dist must have shape in"),
        (np.full((3, 2), np.nan), r"finite probabilities"),
    ],
)
def test_prob_of_logged_rejects_bad_distributions(dist: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make().prob_of_logged(dist)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.floats(-1e6, 1e6), st.floats(1e-6, 1.0)), min_size=1, max_size=30))
def test_subsample_of_all_rounds_is_identity(rows: list[tuple[int, float, float]]) -> None:
    action, reward, propensity = (np.array(col) for col in zip(*rows, strict=True))
    fb = BanditFeedback(
        n_actions=5, action=action, reward=reward, propensity=propensity, context=np.zeros((len(rows), 0))
    )
    same = fb.subsample(np.arange(fb.n_rounds))
    assert np.array_equal(same.action, fb.action) and np.array_equal(same.reward, fb.reward)
    assert np.array_equal(same.propensity, fb.propensity)
