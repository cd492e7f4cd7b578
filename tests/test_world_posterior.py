"""The posterior predictive of world (v2) shoppers given their logged history: prior at the
first visit for the item shown, evidence from clicks and from satiety, the return law
against the world's own draws, calibration and AUC on a world log, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from experiments.world_posterior import (
    LoggedTrajectories,
    posterior_predictive,
    return_log_likelihood,
)
from retentionrl.interactions.io import read_events
from retentionrl.interactions.visits import build_visits
from retentionrl.simulators.learned.fit import _auc
from retentionrl.simulators.world.catalog import Catalog
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.probabilities import write_world_logs_with_truth
from retentionrl.simulators.world.simulator import GroundTruthWorld

CONFIG = WorldConfig()
CATALOG = Catalog.draw(CONFIG)
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
    traj = LoggedTrajectories.from_visits(visits, DAY0, WINDOW, CATALOG.item_price)
    return visits, traj, posterior_predictive(world, traj, 200, seed=0)


def one_visit_each(arm: list[int], coupon: list[float], item: list[int] | None = None) -> LoggedTrajectories:
    """One visit per shopper, nothing clicked, no return within 50 days; the item shown is
    ``item`` or each group's first."""
    n = len(arm)
    item = CATALOG.offsets[np.clip(arm, 0, CONFIG.n_groups - 1)] if item is None else np.array(item)
    return LoggedTrajectories(
        arm=np.array(arm)[:, None],
        item=np.asarray(item)[:, None],
        coupon=np.array(coupon)[:, None],
        click=np.zeros((n, 1), bool),
        purchase=np.zeros((n, 1), bool),
        redeemed=np.zeros((n, 1), bool),
        units=np.zeros((n, 1)),
        gap=np.full((n, 1), np.nan),
        n_visits=np.ones(n, np.int64),
        remaining=np.full(n, 50.0),
    )


def test_first_visit_predictive_is_the_prior_mean_for_the_item_shown(world):
    """At a first visit, against a large population of fresh shoppers stepped through the
    world's public API: shoppers shown the same item (drawn independently of the state)."""
    n, m = 200_000, 20_000
    levels = CONFIG.coupon_levels
    big = GroundTruthWorld(CONFIG)
    for g, c in [(0, 0), (3, 0), (7, 1), (12, 2), (19, 3)]:
        big.reset(n, seed=99)
        big.step(np.full(n, big.action_space.encode(g, c)))
        shown = big.last_item
        p_click, p_buy = big.last_probabilities
        top = np.bincount(shown - CATALOG.offsets[g]).argsort()[::-1][:2] + CATALOG.offsets[g]  # most often shown
        pred = posterior_predictive(world, one_visit_each([g] * 2, [levels[c]] * 2, top.tolist()), m, seed=1)
        assert pred.p_click[:, 0] == pytest.approx(p_click.mean(), abs=4 * p_click.std() * np.sqrt(1 / n + 1 / m))
        for i, j in enumerate(top):
            at = shown == j
            joint = p_click[at] * p_buy[at]
            tolerance = 4 * joint.std() * np.sqrt(1 / at.sum() + 1 / m)
            assert pred.p_purchase[i, 0] == pytest.approx(joint.mean(), abs=tolerance)
            assert pred.p_buy_click[i, 0] == pytest.approx(joint.mean() / p_click[at].mean(), rel=0.05)
        assert np.allclose(pred.ess, m)  # no evidence yet: equal weights


def test_a_dearer_item_of_the_group_sells_less(world):
    g = 9
    items = np.arange(CATALOG.offsets[g], CATALOG.offsets[g + 1])
    price = CATALOG.item_price[items]
    cheap, dear = items[price.argmin()], items[price.argmax()]
    pred = posterior_predictive(world, one_visit_each([g, g], [0.0, 0.0], [cheap, dear]), 5000, seed=3)
    assert pred.p_click[0, 0] == pytest.approx(pred.p_click[1, 0], abs=0.02)  # the click law reads no price
    assert pred.p_buy_click[1, 0] < pred.p_buy_click[0, 0] - 0.15


def test_clicks_raise_the_predicted_click_on_that_group(world):
    k, arm = 6, 9
    clicker, never = np.ones(k, bool), np.zeros(k, bool)
    traj = LoggedTrajectories(
        arm=np.full((2, k), arm),
        item=np.full((2, k), CATALOG.offsets[arm]),
        coupon=np.zeros((2, k)),
        click=np.stack([clicker, never]),
        purchase=np.zeros((2, k), bool),
        redeemed=np.zeros((2, k), bool),
        units=np.zeros((2, k)),
        gap=np.r_[np.full(k - 1, 7.0), np.nan][None].repeat(2, 0),
        n_visits=np.array([k, k]),
        remaining=np.array([30.0, 30.0]),
    )
    pred = posterior_predictive(world, traj, 4000, seed=2)
    assert pred.p_click[0, 0] == pytest.approx(pred.p_click[1, 0], abs=0.02)  # no history yet: the prior
    prior = pred.p_click[0, 0]
    assert (np.diff(pred.p_click[0]) > 0).all() and pred.p_click[0, -1] > prior + 0.15  # a favourite, likely
    assert (np.diff(pred.p_click[1]) < 0).all() and pred.p_click[1, -1] < prior - 0.02
    assert (np.diff(pred.ess, axis=1) < 0).all()  # evidence concentrates the weights


def test_units_bought_satiate_that_group_for_a_while(world):
    """A purchase of 1 or 4 units of group 9, then a visit ``gap`` days later shown group 9 or
    13: the 3 extra units of satiety weigh on the purchase of group 9 only, less after a
    long gap (they decay over the logged gap)."""
    rows = [(units, gap, shown) for gap in (1.0, 80.0) for shown in (9, 13) for units in (1.0, 4.0)]
    n = len(rows)
    units, gap, shown = (np.array(v) for v in zip(*rows))
    traj = LoggedTrajectories(
        arm=np.c_[np.full(n, 9), shown],
        item=np.c_[np.full(n, CATALOG.offsets[9]), CATALOG.offsets[shown]],
        coupon=np.zeros((n, 2)),
        click=np.c_[np.ones(n, bool), np.zeros(n, bool)],
        purchase=np.c_[np.ones(n, bool), np.zeros(n, bool)],
        redeemed=np.zeros((n, 2), bool),
        units=np.c_[units, np.zeros(n)],
        gap=np.c_[gap, np.full(n, np.nan)],
        n_visits=np.full(n, 2),
        remaining=np.full(n, 30.0),
    )
    # the same particles for every shopper (the row's seed), so differences are the evidence's
    p = np.array(
        [
            posterior_predictive(
                world, LoggedTrajectories(**{k: v[[i]] for k, v in vars(traj).items()}), 20_000, seed=5
            ).p_buy_click[0, 1]
            for i in range(n)
        ]
    )
    one, four = (dict(zip(zip(gap[i::2], shown[i::2]), p[i::2])) for i in (0, 1))
    assert four[1.0, 9] < one[1.0, 9] / 2  # satiated: 3 more units of 9 lower its purchase the next day
    assert four[1.0, 13] == pytest.approx(one[1.0, 13], abs=0.02)  # not another group's
    assert four[80.0, 9] == pytest.approx(one[80.0, 9], abs=0.02)  # decayed over 80 days (tau = 30)


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
    # coupons of 20% on every group: purchases of 1 to 4 units, whose stock lengthens the gap
    arm = np.random.default_rng(6).integers(0, CONFIG.n_groups, n)
    _, out = world.step(world.action_space.encode(arm, 3))
    assert (world.last_units > 1).mean() > 0.05
    # s' after the visit, and the units bought
    gap_scale, p_churn = world._return_law(world.state, world.state.satisfaction, world.last_units)
    horizon = CONFIG.horizon_days
    for g in (1, 2, 3, 5, 8, 13, 30):
        for stocked in (False, True):
            at = (world.last_units > 1) == stocked
            expected = np.exp(
                return_log_likelihood(gap_scale[at], p_churn[at], np.full(at.sum(), float(g)), 0.0, horizon)
            ).mean()
            observed = (out.gap_days[at] == g).mean()
            assert observed == pytest.approx(expected, abs=4 * np.sqrt(expected / at.sum()) + 1e-4)
    expected = np.exp(return_log_likelihood(gap_scale, p_churn, np.full(n, np.nan), float(horizon), horizon)).mean()
    assert out.churned.mean() == pytest.approx(expected, abs=4 * np.sqrt(expected / n))


def test_one_visit_evidence_matches_fresh_shoppers_of_the_world(world):
    """exp(log-evidence) of a one-visit trajectory = the chance a fresh shopper of the world
    shown that item gives those responses and no return that a log ending ``remaining``
    days later shows, over the chance of the units bought (left out of the evidence)."""
    n, action = 200_000, world.action_space.encode(3, 2)
    fresh = GroundTruthWorld(CONFIG)
    fresh.reset(n, seed=11)
    _, out = fresh.step(np.full(n, action))
    arm, coupon_index = world.action_space.decode(np.array([action]))
    c = float(world.action_space.coupon_fraction(coupon_index)[0])
    item = np.bincount(fresh.last_item).argmax()  # the group's most popular item
    shown = fresh.last_item == item
    p_extra = min(1.0, CONFIG.extra_unit_base + CONFIG.extra_unit_discount * c)
    cases = [
        (click, purchase, units, remaining)
        for click, purchase, units in [(False, False, 0), (True, False, 0), (True, True, 1), (True, True, 2)]
        for remaining in (3, 400)
    ]
    click, purchase, units, remaining = (np.array(v) for v in zip(*cases))
    traj = LoggedTrajectories(
        **vars(one_visit_each([int(arm[0])] * len(cases), [c] * len(cases), [item] * len(cases)))
        | {
            "click": click[:, None],
            "purchase": purchase[:, None],
            "redeemed": purchase[:, None] & (c > 0),
            "units": units[:, None].astype(float),
            "remaining": remaining.astype(float),
        }
    )
    evidence = np.exp(posterior_predictive(world, traj, 50_000, seed=4).log_evidence)
    units_chance = np.where(purchase, binom.pmf(units - 1, CONFIG.max_extra_units, p_extra), 1.0)
    for i in range(len(cases)):
        gone = out.churned | (out.gap_days > remaining[i])
        observed = (
            shown & (out.click == click[i]) & (out.purchase == purchase[i]) & (fresh.last_units == units[i]) & gone
        ).sum() / shown.sum()
        assert evidence[i] * units_chance[i] == pytest.approx(observed, abs=4 * np.sqrt(observed / shown.sum()) + 2e-3)


def test_from_visits_by_hand():
    item_price = np.array([10.0, 12.5, 3.0, 7.25, 20.0, 1.0])
    visits = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b"],
            "start": pd.to_datetime(["2024-01-01 09:00", "2024-01-04 09:00", "2024-01-11 09:00", "2024-01-02 21:00"]),
            "rec_group": [1, 2, 1, 4],
            "rec_item": [1, 3, 2, 4],
            "rec_coupon": [0.0, 0.1, 0.05, 0.2],
            "clicked": [True, True, True, True],
            "purchased": [True, True, False, False],
            "redeemed": [False, True, False, False],
            "spend": [12.5, 3 * 7.25, 0.0, 0.0],
        }
    )
    traj = LoggedTrajectories.from_visits(visits, DAY0, 12, item_price)
    np.testing.assert_array_equal(traj.n_visits, [3, 1])
    np.testing.assert_array_equal(traj.gap[0], [3.0, 7.0, np.nan])
    np.testing.assert_array_equal(traj.remaining, [1.0, 10.0])  # last days 10 and 1 of a 12-day window
    np.testing.assert_array_equal(traj.per_visit(traj.arm), visits["rec_group"])
    np.testing.assert_array_equal(traj.per_visit(traj.item), visits["rec_item"])
    np.testing.assert_array_equal(traj.per_visit(traj.units), [1.0, 3.0, 0.0, 0.0])  # spend / list price
    np.testing.assert_array_equal(traj.per_visit(traj.redeemed), visits["redeemed"])
    with pytest.raises(ValueError, match="grouped by user_id"):
        LoggedTrajectories.from_visits(visits.iloc[[0, 3, 1, 2]], DAY0, 12, item_price)
    with pytest.raises(ValueError, match="whole units of the shown item's list price"):
        LoggedTrajectories.from_visits(visits, DAY0, 12, item_price * 1.1)
    with pytest.raises(ValueError, match=r"rec_item must lie in \[0, 4\)"):
        LoggedTrajectories.from_visits(visits, DAY0, 12, item_price[:4])


def test_world_log_trajectories_hold_what_the_world_logged(logged):
    visits, traj, _ = logged
    units = traj.per_visit(traj.units)
    assert {0.0, 1.0, 2.0} <= set(np.unique(units)) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    np.testing.assert_array_equal(units > 0, visits["purchased"])
    np.testing.assert_array_equal(CATALOG.item_group[traj.per_visit(traj.item)], visits["rec_group"])
    np.testing.assert_allclose(units * CATALOG.item_cost[traj.per_visit(traj.item)], visits["cogs"])


def test_posterior_is_calibrated_on_a_world_log(logged):
    visits, traj, pred = logged
    clicked, bought = visits["clicked"].to_numpy(), visits["purchased"].to_numpy()
    for p, label in [
        (traj.per_visit(pred.p_click), clicked),
        (traj.per_visit(pred.p_purchase), bought),
        (traj.per_visit(pred.p_buy_click)[clicked], bought[clicked]),
    ]:
        se = np.sqrt((p * (1 - p)).sum()) / p.size
        assert abs(p.mean() - label.mean()) < 3.5 * se
    # finer: by tenth of predicted click and purchase probability
    for p, label in [(traj.per_visit(pred.p_click), clicked), (traj.per_visit(pred.p_purchase), bought)]:
        bins = np.digitize(p, np.quantile(p, np.linspace(0, 1, 11)[1:-1]))
        for b in range(10):
            at = bins == b
            assert abs(p[at].mean() - label[at].mean()) < 4 * np.sqrt((p[at] * (1 - p[at])).sum()) / at.sum()


def test_posterior_is_the_truths_mean_given_the_history(logged):
    """The posterior predictive is the conditional mean of the true probability given the
    history and what the visit shows: by tenth of the prediction, the truth averages to it
    (closer than the responses could tell)."""
    visits, traj, pred = logged
    clicked = visits["clicked"].to_numpy()
    for name, rows in [("p_click", slice(None)), ("p_purchase", slice(None)), ("p_buy_click", clicked)]:
        p, truth = traj.per_visit(getattr(pred, name))[rows], visits[name].to_numpy()[rows]
        bins = np.digitize(p, np.quantile(p, np.linspace(0, 1, 11)[1:-1]))
        for b in range(10):
            at = bins == b
            diff = truth[at] - p[at]
            assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(at.sum()) + 0.005, (name, b)


@pytest.mark.parametrize(
    ("name", "label", "only_clicked", "gain"),
    [
        ("p_click", "clicked", False, 0.01),  # the click law leans on the shown group: history adds little
        ("p_purchase", "purchased", False, 0.05),  # the item's price and the history add much
        ("p_buy_click", "purchased", True, 0.05),
    ],
)
def test_history_bayes_auc_lies_between_history_blind_and_oracle(logged, name, label, only_clicked, gain):
    """Above the action's rate (cross-fitted over two halves of the shoppers, as a model of
    the log would estimate it), below the truth's."""
    visits, traj, pred = logged
    rows = visits["clicked"].to_numpy() if only_clicked else np.ones(len(visits), bool)
    y = visits[label].to_numpy(float)[rows]
    action = (visits["rec_group"].astype(str) + "/" + visits["rec_coupon"].astype(str)).to_numpy()[rows]
    half = pd.factorize(visits["user_id"])[0][rows] % 2
    blind = np.empty(y.size)
    for h in (0, 1):
        rate = pd.Series(y[half != h]).groupby(action[half != h]).mean()
        blind[half == h] = rate.reindex(action[half == h]).fillna(y[half != h].mean()).to_numpy()
    auc_blind, auc_bayes = _auc(blind, y), _auc(traj.per_visit(getattr(pred, name))[rows], y)
    assert auc_blind + gain < auc_bayes < _auc(visits[name].to_numpy()[rows], y) - 0.02


def test_seeded_and_independent_of_batching(world, logged):
    _, traj, pred = logged
    rows = np.arange(40)
    sub = LoggedTrajectories(**{k: v[rows] for k, v in vars(traj).items()})
    again = posterior_predictive(world, sub, 200, seed=0, max_batch_particles=450)
    np.testing.assert_array_equal(again.p_click, pred.p_click[rows])
    np.testing.assert_array_equal(again.p_buy_click, pred.p_buy_click[rows])
    np.testing.assert_array_equal(again.log_evidence, pred.log_evidence[rows])
    other = posterior_predictive(world, sub, 200, seed=1)
    assert not np.allclose(np.nan_to_num(other.p_click), np.nan_to_num(pred.p_click[rows]))


def test_padding_is_never_read(world, logged):
    _, traj, pred = logged
    rows = np.flatnonzero(traj.n_visits < traj.arm.shape[1])[:20]
    sub = {k: v[rows] for k, v in vars(traj).items()}
    pad = ~LoggedTrajectories(**sub).valid
    garbage = {"arm": -7, "item": 10**6, "coupon": 0.33, "click": True, "units": 99.0, "gap": -2.0}
    junk = LoggedTrajectories(**sub | {k: np.where(pad, v, sub[k]) for k, v in garbage.items()})
    again = posterior_predictive(world, junk, 200, seed=0)
    np.testing.assert_array_equal(again.p_click, pred.p_click[rows])
    np.testing.assert_array_equal(again.log_evidence, pred.log_evidence[rows])


def bought(**change) -> dict:
    """A one-visit trajectory's fields: group 2's first item bought with a 10% coupon, then
    ``change`` (arrays of shape (1, 1))."""
    fields = vars(one_visit_each([2], [0.1])) | {k: np.ones((1, 1), bool) for k in ("click", "purchase", "redeemed")}
    return fields | {"units": np.ones((1, 1))} | {k: np.array([[v]]) for k, v in change.items()}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"n_particles": 0}, "n_particles"),
        ({"n_particles": 2.5}, "n_particles"),
        ({"n_particles": True}, "n_particles"),
        ({"arm": 20}, r"arm must lie in \[0, 20\)"),
        ({"arm": -1}, "arm must lie"),
        ({"item": int(CATALOG.offsets[3])}, "item must be an item of the shown group"),
        ({"item": -1}, "item must be an item of the shown group"),
        ({"coupon": 0.15}, "not on the coupon ladder"),
        ({"redeemed": False}, "redeemed must be true exactly at purchases with a coupon"),
        ({"coupon": 0.0}, "redeemed must be true exactly"),
        ({"units": 1.0 + CONFIG.max_extra_units + 1}, f"units must be at most {1 + CONFIG.max_extra_units}"),
    ],
)
def test_invalid_posterior_input_raises(world, change, match):
    n_particles = change.pop("n_particles", 10)
    traj = LoggedTrajectories(**bought(**change))
    with pytest.raises(ValueError, match=match):
        posterior_predictive(world, traj, n_particles, seed=0)


def test_a_valid_purchase_passes(world):
    pred = posterior_predictive(world, LoggedTrajectories(**bought(units=4.0)), 10, seed=0)
    assert np.isfinite(pred.log_evidence).all()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("purchase", np.array([[True]]), "purchase needs a click: shopper 0, visit 0"),
        ("redeemed", np.array([[True]]), "redeemed needs a purchase"),
        ("units", np.array([[1.0]]), "units must be whole >= 1 after a purchase and 0 without"),
        ("gap", np.array([[3.0]]), "gap must be whole days"),
        ("remaining", np.array([-1.0]), "remaining must be >= 0"),
        ("n_visits", np.array([2]), "n_visits"),
        ("coupon", np.zeros((1, 2)), "coupon must have shape"),
        ("item", np.zeros(1, np.int64), "item must have shape"),
    ],
)
def test_invalid_trajectories_raise(field, value, match):
    fields = vars(one_visit_each([0], [0.0])) | {field: value}
    with pytest.raises(ValueError, match=match):
        LoggedTrajectories(**fields)


@pytest.mark.parametrize("units", [0.0, 1.5, -1.0])
def test_units_of_a_purchase_must_be_whole_and_positive(units):
    with pytest.raises(ValueError, match="units must be whole >= 1 after a purchase"):
        LoggedTrajectories(**bought(units=units))
