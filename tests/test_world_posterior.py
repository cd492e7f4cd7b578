"""The posterior predictive of world shoppers given their logged history: prior at the first
visit, the return law against the world's own draws, calibration and AUC on a world log,
determinism, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interactions.io import read_events
from interactions.visits import build_visits
from simulators.fit import _auc
from simulators.world import GroundTruthWorld
from simulators.world_config import WorldConfig
from simulators.world_posterior import (
    LoggedTrajectories,
    posterior_predictive,
    return_log_likelihood,
)
from simulators.world_probabilities import write_world_logs_with_truth

CONFIG = WorldConfig()
DAY0, WINDOW = pd.Timestamp("2024-01-01"), 180


@pytest.fixture(scope="module")
def world() -> GroundTruthWorld:
    return GroundTruthWorld(CONFIG)


@pytest.fixture(scope="module")
def logged(tmp_path_factory, world):
    """A world log of 1,500 shoppers: its visits (with true probabilities), trajectories and
    posterior predictive with 200 particles."""
    path = tmp_path_factory.mktemp("posterior") / "log.parquet"
    truth = write_world_logs_with_truth(CONFIG, 1500, WINDOW, 3, path)
    visits = build_visits(read_events(path)).reset_index(drop=True)
    session = visits.groupby("user_id", sort=False).cumcount()  # world logs: visit k is session k
    truth = truth.set_index(["user_id", "session_id"]).reindex(list(zip(visits["user_id"], session)))
    visits = visits.assign(**{c: truth[c].to_numpy() for c in ("p_click", "p_buy_click", "p_purchase")})
    traj = LoggedTrajectories.from_visits(visits, DAY0, WINDOW)
    return visits, traj, posterior_predictive(world, traj, 200, seed=0)


def one_visit_each(arm: list[int], coupon: list[float]) -> LoggedTrajectories:
    n = len(arm)
    return LoggedTrajectories(
        arm=np.array(arm)[:, None], coupon=np.array(coupon)[:, None], click=np.zeros((n, 1), bool),
        purchase=np.zeros((n, 1), bool), gap=np.full((n, 1), np.nan), n_visits=np.ones(n, np.int64),
        remaining=np.full(n, 50.0))


def test_first_visit_predictive_is_the_prior_mean(world):
    levels = CONFIG.coupon_levels
    arm, coupon_index = [0, 3, 7, 12, 19, 5], [0, 0, 1, 2, 3, 3]
    pred = posterior_predictive(world, one_visit_each(arm, [levels[c] for c in coupon_index]), 20_000, seed=1)
    # an independent large population of fresh shoppers, through the world's public API
    big = GroundTruthWorld(CONFIG)
    big.reset(200_000, seed=99)
    for i, (g, c) in enumerate(zip(arm, coupon_index)):
        p_click, p_buy = big.response_probabilities(np.full(200_000, big.action_space.encode(g, c)))
        assert pred.p_click[i, 0] == pytest.approx(p_click.mean(), abs=0.006)
        assert pred.p_purchase[i, 0] == pytest.approx((p_click * p_buy).mean(), abs=0.006)
        assert pred.p_buy_click[i, 0] == pytest.approx((p_click * p_buy).mean() / p_click.mean(), abs=0.01)
    assert np.allclose(pred.ess, 20_000)  # no evidence yet: equal weights


def test_clicks_raise_the_predicted_click_on_that_group(world):
    k, arm = 6, 9
    clicker, never = np.ones(k, bool), np.zeros(k, bool)
    traj = LoggedTrajectories(
        arm=np.full((2, k), arm), coupon=np.zeros((2, k)), click=np.stack([clicker, never]),
        purchase=np.zeros((2, k), bool), gap=np.r_[np.full(k - 1, 7.0), np.nan][None].repeat(2, 0),
        n_visits=np.array([k, k]), remaining=np.array([30.0, 30.0]))
    pred = posterior_predictive(world, traj, 4000, seed=2)
    assert pred.p_click[0, 0] == pytest.approx(pred.p_click[1, 0], abs=0.02)  # no history yet: the prior
    prior = pred.p_click[0, 0]
    assert (np.diff(pred.p_click[0]) > 0).all() and pred.p_click[0, -1] > prior + 0.15  # a favourite, likely
    assert (np.diff(pred.p_click[1]) < 0).all() and pred.p_click[1, -1] < prior - 0.02
    assert (np.diff(pred.ess, axis=1) < 0).all()  # evidence concentrates the weights


def test_return_likelihood_sums_to_one_over_what_the_log_can_show():
    horizon = CONFIG.horizon_days
    for scale, p_churn in [(1.3, 0.02), (9.0, 0.1), (60.0, 0.5), (400.0, 0.05)]:
        for remaining in (0, 4, horizon - 1, horizon, 250):
            gaps = np.arange(1.0, min(horizon, remaining) + 1)
            logged = np.exp(return_log_likelihood(scale, p_churn, gaps, 0.0, horizon)).sum()
            none = np.exp(return_log_likelihood(scale, p_churn, np.nan, float(remaining), horizon))
            assert logged + none == pytest.approx(1.0, abs=1e-12)
    assert return_log_likelihood(5.0, 0.1, np.array([horizon + 1.0]), 0.0, horizon)[0] == -np.inf


def test_return_likelihood_matches_the_worlds_own_draws():
    n = 200_000
    world = GroundTruthWorld(CONFIG)
    world.reset(n, seed=5)
    _, out = world.step(np.random.default_rng(6).integers(0, world.action_space.n_actions, n))
    gap_scale, p_churn = world._return_law(world.state, world.state.satisfaction)  # s' after the visit
    horizon = CONFIG.horizon_days
    for g in (1, 2, 3, 5, 8, 13, 30):
        expected = np.exp(return_log_likelihood(gap_scale, p_churn, np.full(n, float(g)), 0.0, horizon)).mean()
        observed = (out.gap_days == g).mean()
        assert observed == pytest.approx(expected, abs=4 * np.sqrt(expected / n) + 1e-4)
    expected = np.exp(return_log_likelihood(gap_scale, p_churn, np.full(n, np.nan), float(horizon), horizon)).mean()
    assert out.churned.mean() == pytest.approx(expected, abs=4 * np.sqrt(expected / n))


def test_one_visit_evidence_matches_fresh_shoppers_of_the_world(world):
    """exp(log-evidence) of a one-visit trajectory = the chance a fresh shopper of the world
    gives those responses and no return that a log ending ``remaining`` days later shows."""
    n, action = 200_000, world.action_space.encode(3, 2)
    fresh = GroundTruthWorld(CONFIG)
    fresh.reset(n, seed=11)
    _, out = fresh.step(np.full(n, action))
    arm, coupon = world.action_space.decode(np.array([action]))
    for click, purchase in [(False, False), (True, False), (True, True)]:
        for remaining in (3, 400):
            traj = one_visit_each(arm.tolist(), world.action_space.coupon_fraction(coupon).tolist())
            traj = LoggedTrajectories(**vars(traj) | {"click": np.array([[click]]), "purchase": np.array([[purchase]]),
                                                      "remaining": np.array([float(remaining)])})
            evidence = np.exp(posterior_predictive(world, traj, 50_000, seed=4).log_evidence[0])
            observed = ((out.click == click) & (out.purchase == purchase) & (out.churned | (out.gap_days > remaining))).mean()
            assert evidence == pytest.approx(observed, abs=4 * np.sqrt(observed / n) + 2e-3)


def test_from_visits_by_hand():
    visits = pd.DataFrame({
        "user_id": ["a", "a", "a", "b"],
        "start": pd.to_datetime(["2024-01-01 09:00", "2024-01-04 09:00", "2024-01-11 09:00", "2024-01-02 21:00"]),
        "rec_group": [1, 2, 1, 4], "rec_coupon": [0.0, 0.1, 0.0, 0.2],
        "clicked": [True, False, True, True], "purchased": [True, False, False, False],
    })
    traj = LoggedTrajectories.from_visits(visits, DAY0, 12)
    np.testing.assert_array_equal(traj.n_visits, [3, 1])
    np.testing.assert_array_equal(traj.gap[0], [3.0, 7.0, np.nan])
    np.testing.assert_array_equal(traj.remaining, [1.0, 10.0])  # last days 10 and 1 of a 12-day window
    np.testing.assert_array_equal(traj.per_visit(traj.arm), visits["rec_group"])
    with pytest.raises(ValueError, match="grouped by user_id"):
        LoggedTrajectories.from_visits(visits.iloc[[0, 3, 1, 2]], DAY0, 12)


def test_posterior_is_calibrated_on_a_world_log(logged):
    visits, traj, pred = logged
    clicked, bought = visits["clicked"].to_numpy(), visits["purchased"].to_numpy()
    for p, label in [(traj.per_visit(pred.p_click), clicked), (traj.per_visit(pred.p_purchase), bought),
                     (traj.per_visit(pred.p_buy_click)[clicked], bought[clicked])]:
        se = np.sqrt((p * (1 - p)).sum()) / p.size
        assert abs(p.mean() - label.mean()) < 3.5 * se
    # finer: by tenth of predicted click probability
    p = traj.per_visit(pred.p_click)
    bins = np.digitize(p, np.quantile(p, np.linspace(0, 1, 11)[1:-1]))
    for b in range(10):
        at = bins == b
        assert abs(p[at].mean() - clicked[at].mean()) < 4 * np.sqrt((p[at] * (1 - p[at])).sum()) / at.sum()


@pytest.mark.parametrize(("name", "label", "only_clicked", "history_gain"), [
    ("p_click", "clicked", False, 0.0),  # the click law leans on the shown group: history adds little
    ("p_purchase", "purchased", False, 0.01),
    ("p_buy_click", "purchased", True, 0.01),
])
def test_history_bayes_auc_lies_between_history_blind_and_oracle(logged, name, label, only_clicked, history_gain):
    visits, traj, pred = logged
    rows = visits["clicked"].to_numpy() if only_clicked else np.ones(len(visits), bool)
    y = visits[label].to_numpy(float)[rows]
    action = (visits["rec_group"].astype(str) + "/" + visits["rec_coupon"].astype(str)).to_numpy()[rows]
    blind = pd.Series(y).groupby(action).transform("mean").to_numpy()  # the action's rate, in-sample
    auc_blind, auc_bayes = _auc(blind, y), _auc(traj.per_visit(getattr(pred, name))[rows], y)
    assert auc_blind + history_gain < auc_bayes < _auc(visits[name].to_numpy()[rows], y) - 0.02


def test_seeded_and_independent_of_batching(world, logged):
    _, traj, pred = logged
    rows = np.arange(40)
    sub = LoggedTrajectories(**{k: v[rows] for k, v in vars(traj).items()})
    again = posterior_predictive(world, sub, 200, seed=0, max_batch_particles=450)
    np.testing.assert_array_equal(again.p_click, pred.p_click[rows])
    np.testing.assert_array_equal(again.log_evidence, pred.log_evidence[rows])
    other = posterior_predictive(world, sub, 200, seed=1)
    assert not np.allclose(np.nan_to_num(other.p_click), np.nan_to_num(pred.p_click[rows]))


@pytest.mark.parametrize(("change", "match"), [
    ({"n_particles": 0}, "n_particles"), ({"n_particles": 2.5}, "n_particles"), ({"n_particles": True}, "n_particles"),
    ({"arm": 20}, r"arm must lie in \[0, 20\)"), ({"arm": -1}, "arm must lie"),
])
def test_invalid_posterior_input_raises(world, change, match):
    traj = one_visit_each([change.get("arm", 0)], [0.0])
    with pytest.raises(ValueError, match=match):
        posterior_predictive(world, traj, change.get("n_particles", 10), seed=0)


@pytest.mark.parametrize(("field", "value", "match"), [
    ("purchase", np.array([[True]]), "purchase needs a click: shopper 0, visit 0"),
    ("gap", np.array([[3.0]]), "gap must be whole days"),
    ("remaining", np.array([-1.0]), "remaining must be >= 0"),
    ("n_visits", np.array([2]), "n_visits"),
    ("coupon", np.zeros((1, 2)), "coupon must have shape"),
])
def test_invalid_trajectories_raise(field, value, match):
    fields = vars(one_visit_each([0], [0.0])) | {field: value}
    with pytest.raises(ValueError, match=match):
        LoggedTrajectories(**fields)
