"""The world's laws (simulators/world/simulator.py's table) as behaviour of seeded shoppers.

Each test gives two arms the same shoppers and uniforms (one seed: common random numbers)
and compares exact probabilities or the latent state, against a hand-computed value where
the law gives one.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from experiments.world_laws import (
    coupon_elasticity,
    coupon_ladder_asymmetry,
    load_config,
    main,
    reference_response,
    units_per_purchase,
)
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.simulator import GroundTruthWorld

CONFIG = WorldConfig()
DEAL = CONFIG.coupon_levels.index(0.20)


def _world(n: int, seed: int = 0, config: WorldConfig = CONFIG, expectation: float | None = None) -> GroundTruthWorld:
    world = GroundTruthWorld(config)
    world.reset(n, seed=seed)
    if expectation is not None:
        world._state.expectation[:] = expectation  # a study of the laws: latent state set by hand
    return world


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _deal(x: np.ndarray) -> np.ndarray:
    """The gain / loss D(x) of world.py's table, by hand."""
    theta, g, lam = CONFIG.price_threshold, CONFIG.gain_saturation, CONFIG.loss_aversion
    over = np.maximum(x - theta, 0)
    return over / (1 + over / g) - lam * np.maximum(-x - theta, 0)


@pytest.mark.parametrize("reference_follows", [True, False])
def test_purchase_probability_falls_with_the_items_price(reference_follows):
    """List prices x1.1, same shoppers, groups and items: P(click) unchanged, P(buy | click)
    lower for every shopper. The price term reads the item's price against its group's
    typical price at full weight and the group's price level at weight nu, so when every
    price rises the logit falls by beta [log(p'/p) - (1 - nu) log(pg'/pg)] = beta nu log 1.1
    (up to rounding to cents). The reference price is the item's own list price less the
    expected discount, R = p (1 - e), so it follows the price and the deal term stays; with
    the reference kept where it was (expected discount lowered to match) the item also
    reads as a loss of log 1.1 and the fall is larger, by kappa (D(x) - D(x - log 1.1))."""
    n = 3000
    arm = np.random.default_rng(0).integers(0, CONFIG.n_groups, n)
    actions = CONFIG.action_space.encode(arm, 0)
    cheap, dear = _world(n), _world(n, config=replace(CONFIG, price_median=CONFIG.price_median * 1.1))
    if not reference_follows:  # R = p (1 - e) kept: 1 - e' = (1 - e) / 1.1
        dear._state.expectation[:] = 1 - (1 - cheap.state.expectation) / 1.1
    (click0, buy0), (click1, buy1) = cheap.response_probabilities(actions), dear.response_probabilities(actions)
    np.testing.assert_array_equal(click0, click1)
    assert (buy1 < buy0).all()
    x = {"cheap": np.log1p(-cheap.state.expectation), "dear": np.log1p(-dear.state.expectation)}  # no coupon
    cheap.step(actions)
    dear.step(actions)  # the same uniforms: the same item shown
    np.testing.assert_array_equal(cheap.last_item, dear.last_item)
    fall = _logit(cheap.last_probabilities[1]) - _logit(dear.last_probabilities[1])
    beta, kappa = cheap.state.price_sensitivity, cheap.state.deal_sensitivity
    nu = CONFIG.cross_group_price_weight
    log_rise = np.log(dear.catalog.item_price[dear.last_item] / cheap.catalog.item_price[cheap.last_item])
    group_rise = np.log(dear.catalog.group_price[arm] / cheap.catalog.group_price[arm])
    price_term = beta * (log_rise - (1.0 - nu) * group_rise)
    expected = price_term + kappa * (_deal(x["cheap"]) - _deal(x["dear"]))  # by hand, prices as rounded
    np.testing.assert_allclose(fall, expected, rtol=1e-6, atol=1e-9)
    absolute = beta * nu * np.log(1.1)
    if reference_follows:
        np.testing.assert_allclose(fall, price_term, rtol=1e-6, atol=1e-9)  # the deal term did not move
        np.testing.assert_allclose(fall, absolute, atol=0.02)
    else:
        assert (fall > absolute - 0.02).all() and fall.mean() > 1.2 * absolute.mean()


def test_the_reference_is_the_items_own_price_so_item_prices_do_not_blur_the_kink():
    """Every shopper expects 10% and is offered 0 / 10 / 20% on the ladder: whatever the
    item's price, the reference-price part of the purchase logit (logit + beta log(1 - c))
    moves by kappa (D(x_c) - D(0)) with x_c = log(0.9 / (1 - c)): the loss of the 0% rung
    and the gain of the 20% rung are the same for a cheap and a dear item, and loss / gain
    slope is the law's, for every shopper."""
    n, e = 3000, 0.10
    arm = np.random.default_rng(2).integers(0, CONFIG.n_groups, n)
    part, item = {}, None
    for c in (0.0, 0.10, 0.20):
        world = _world(n, seed=2, expectation=e)
        world.step(CONFIG.action_space.encode(arm, CONFIG.coupon_levels.index(c)))
        assert item is None or np.array_equal(world.last_item, item)  # the same uniforms: the same item
        item = world.last_item.copy()
        part[c] = _logit(world.last_probabilities[1]) + world.state.price_sensitivity * np.log1p(-c)
    kappa = world.state.deal_sensitivity
    prices = world.catalog.item_price[item]
    assert prices.max() / prices.min() > 5  # items of very different prices
    for c in (0.0, 0.20):
        x = np.log1p(-e) - np.log1p(-c)
        np.testing.assert_allclose(part[c] - part[0.10], kappa * _deal(np.full(n, x)), rtol=1e-6, atol=1e-9)
    lam, theta, g = CONFIG.loss_aversion, CONFIG.price_threshold, CONFIG.gain_saturation
    loss_step, gain_step = np.log(1 / 0.9), np.log(0.9 / 0.8)
    law = (lam * (loss_step - theta) / loss_step) / ((gain_step - theta) / (1 + (gain_step - theta) / g) / gain_step)
    ladder = coupon_ladder_asymmetry(CONFIG, 2000, 2)
    assert ladder["law"] == pytest.approx(law, rel=1e-12)
    assert ladder["reference"].estimate == pytest.approx(law, rel=1e-9)
    assert ladder["logit"].low > 1 and ladder["prob"].low > 1  # loss aversion shows on the ladder, diluted


def test_losses_weigh_more_than_gains_of_the_same_size():
    """Reference set Delta above or below the shown item's effective price (expected discount
    e = 1 - 0.8 e^x at a 20% coupon; the absolute term fixed): the logit moves by
    kappa (Delta - theta) / (1 + (Delta - theta) / g) for the gain and kappa lambda (Delta - theta) for the
    loss; losses move P(buy | click) more, too."""
    n, theta, g, lam = 3000, CONFIG.price_threshold, CONFIG.gain_saturation, CONFIG.loss_aversion
    kappa = _world(n, seed=3).state.deal_sensitivity
    for delta in (0.05, 0.10, 0.20):
        resp = reference_response(CONFIG, n, 3, (0.0, delta, -delta), DEAL)
        for x, r in resp.items():
            np.testing.assert_allclose(r["e"], 1 - 0.8 * np.exp(x), rtol=1e-12)  # log((1 - e) / (1 - c)) = x
        p = {x: r["p"] for x, r in resp.items()}
        ok = (p[-delta] > 1e-9) & (p[delta] < 1 - 1e-9)
        assert ok.mean() > 0.99
        gain = _logit(p[delta]) - _logit(p[0.0])
        loss = _logit(p[0.0]) - _logit(p[-delta])
        np.testing.assert_allclose(gain[ok], (kappa * (delta - theta) / (1 + (delta - theta) / g))[ok], rtol=1e-6)
        np.testing.assert_allclose(loss[ok], (kappa * lam * (delta - theta))[ok], rtol=1e-6)
        assert (loss[ok] > gain[ok]).all()
        assert (p[0.0] - p[-delta]).mean() > 1.5 * (p[delta] - p[0.0]).mean()


def test_offers_inside_the_threshold_change_nothing():
    theta = CONFIG.price_threshold
    inside = (0.0, 0.5 * theta, -0.5 * theta, 0.99 * theta, -0.99 * theta)
    p = reference_response(CONFIG, 2000, 5, (*inside, 2 * theta, -2 * theta), DEAL)
    for x in inside[1:]:
        np.testing.assert_allclose(p[x]["p"], p[0.0]["p"], rtol=1e-12)
    assert (p[2 * theta]["p"] > p[0.0]["p"]).all() and (p[-2 * theta]["p"] < p[0.0]["p"]).all()


def _both_arms(n: int, config: WorldConfig = CONFIG, arm: np.ndarray | None = None, expectation: float = 0.0):
    """The same shoppers stepped once shown ``arm`` without coupon and with the 20% coupon."""
    if arm is None:
        arm = np.random.default_rng(1).integers(0, config.n_groups, n)
    out = {}
    for coupon in (0, DEAL):
        world = _world(n, seed=7, config=config, expectation=expectation)
        _, outcome = world.step(config.action_space.encode(arm, coupon))
        out[coupon] = (world, outcome)
    return out


def test_units_rise_with_the_coupon():
    arms = _both_arms(30_000)
    (w0, o0), (w1, o1) = arms[0], arms[DEAL]
    both = o0.purchase & o1.purchase
    assert both.sum() > 1000
    assert (w1.last_units[both] >= w0.last_units[both]).all()  # same coins, higher chance per extra unit
    for world, outcome, c in ((w0, o0, 0.0), (w1, o1, 0.20)):
        units = world.last_units[outcome.purchase]
        se = units.std(ddof=1) / np.sqrt(units.size)
        assert abs(units.mean() - units_per_purchase(CONFIG, c)) < 4 * se
    assert w1.last_units[o1.purchase].mean() > w0.last_units[o0.purchase].mean() + 0.1


@pytest.mark.parametrize("group", ["best", "clickbait"])
def test_a_deal_purchase_leaves_less_satisfaction_than_a_full_price_one(group):
    """Expected discount 0, so neither offer disappoints: a shopper buying the same group in
    both arms ends delta w^+ lower after the couponed purchase, w = omega_p (1 + q_g). The
    deal discounts positive pleasure only: the best group's purchase pleases less on a deal,
    a clickbait purchase (w < 0) displeases the same with or without the coupon."""
    n = 20_000
    cat = GroundTruthWorld(CONFIG).catalog
    if group == "best":
        g = int(np.argmax(cat.quality))
    else:  # the cheapest clickbait group: the most buyers
        clickbait = np.flatnonzero(cat.is_clickbait)
        g = int(clickbait[np.argmin(cat.group_price[clickbait])])
    arms = _both_arms(n, arm=np.full(n, g))
    (w0, o0), (w1, o1) = arms[0], arms[DEAL]
    both, neither = o0.purchase & o1.purchase, ~o0.purchase & ~o1.purchase
    assert both.sum() > 300
    w = CONFIG.satisfaction_purchase * (1 + cat.quality[g])
    assert (w > 0) == (group == "best")
    drop = CONFIG.deal_purchase_discount * max(w, 0.0)
    np.testing.assert_allclose(w0.state.satisfaction[both] - w1.state.satisfaction[both], drop, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(w0.state.satisfaction[neither], w1.state.satisfaction[neither])


def test_the_next_gap_scale_grows_with_units_bought():
    """No deal discount of satisfaction and no disappointment, so the arms differ in units
    only: gap = ceil(m X) with the same X and m scaled by (1 + psi (u - 1))."""
    config = replace(CONFIG, deal_purchase_discount=0.0)
    arms = _both_arms(30_000, config=config)
    (w0, o0), (w1, o1) = arms[0], arms[DEAL]
    u0, u1 = w0.last_units, w1.last_units
    np.testing.assert_array_equal(
        w0.state.satisfaction[o0.purchase & o1.purchase], w1.state.satisfaction[o0.purchase & o1.purchase]
    )
    more = o0.purchase & o1.purchase & (u1 > u0) & np.isfinite(o0.gap_days) & np.isfinite(o1.gap_days)
    assert more.sum() > 100
    r = ((1 + config.gap_per_unit * (u1 - 1)) / (1 + config.gap_per_unit * (u0 - 1)))[more]
    g0, g1 = o0.gap_days[more], o1.gap_days[more]
    assert (g1 >= np.floor(r * (g0 - 1)) + 1).all() and (g1 <= np.ceil(r * g0)).all()
    assert (g1 / g0).mean() > 1.3


def test_satiety_lowers_the_purchase_of_the_group_just_bought():
    n, g, h = 20_000, 3, 5
    world = _world(n)
    _, out = world.step(CONFIG.action_space.encode(np.full(n, g), 0))
    bought = out.purchase
    assert bought.sum() > 200
    assert (world.state.satiety_group[bought] == g).all() and (world.state.satiety[bought] > 0).all()
    satiated = [world.response_probabilities(CONFIG.action_space.encode(np.full(n, k), 0))[1] for k in (g, h)]
    left = bought & (world.state.satiety > 1e-3)  # satiety decays over the gap (factor e per 30 days)
    world._state.satiety[:] = 0.0
    fresh = [world.response_probabilities(CONFIG.action_space.encode(np.full(n, k), 0))[1] for k in (g, h)]
    assert left.sum() > 100
    assert (satiated[0][left] < fresh[0][left]).all() and (satiated[0] <= fresh[0]).all()
    np.testing.assert_array_equal(satiated[0][~bought], fresh[0][~bought])
    np.testing.assert_array_equal(satiated[1], fresh[1])  # another group: no satiety


def test_expectation_moves_towards_the_offer_at_the_shoppers_rate_both_ways():
    n, e = 2000, 0.10
    arm = np.zeros(n, dtype=np.int64)
    arms = _both_arms(n, arm=arm, expectation=e)
    alpha = arms[0][0].state.smoothing
    assert alpha.min() < 0.01 and alpha.max() > 0.1  # slow and fast learners alike
    after_deal, after_full_price = arms[DEAL][0].state.expectation, arms[0][0].state.expectation
    np.testing.assert_allclose(after_deal, e + alpha * (0.20 - e), rtol=1e-12)  # e' = e + alpha (c - e)
    np.testing.assert_allclose(after_full_price, e + alpha * (0.0 - e), rtol=1e-12)
    # symmetric: no faster learning of deals than of full prices (to rounding of e + step - e)
    np.testing.assert_allclose(after_deal - e, e - after_full_price, rtol=1e-9, atol=1e-15)


def test_coupon_elasticity_of_the_default_world_is_in_the_published_range():
    """Bijmolt, van Heerde & Pieters (2005): mean price elasticity -2.62; the issue's range -1.5 to -3.5."""
    at10 = coupon_elasticity(CONFIG, 20_000, 0)["units"][0.10]
    assert -3.5 <= at10.low and at10.high <= -1.5


def test_config_overrides_are_checked_and_the_script_writes_its_table(tmp_path, capsys):
    assert load_config('{"loss_aversion": 2.5, "segment_mix": [0.25, 0.25, 0.25, 0.25]}').segment_mix == (0.25,) * 4
    with pytest.raises(ValueError, match="unknown WorldConfig fields \\['loss_avers'\\]"):
        load_config('{"loss_avers": 2.5}')
    out = tmp_path / "laws.json"
    main(["--users", "300", "--json", str(out)])
    assert "deal elasticity" in capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert payload["config"]["world_version"] == 2 and payload["args"]["users"] == 300
    first = payload["rows"][0]["world"]
    assert first["low"] <= first["estimate"] <= first["high"]
