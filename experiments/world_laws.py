"""The ground-truth world's laws, measured as behaviour and set beside the published figures.

Each measurement runs in the world of ``WorldConfig()`` (or of ``--config-json`` overrides)
on ``--users`` fresh shoppers, uses the world's exact probabilities where a law allows
(:meth:`~retentionrl.simulators.world.simulator.GroundTruthWorld.response_probabilities`, ``last_probabilities``),
and gives every arm of an experiment the same shoppers and the same uniforms (one seed:
common random numbers). Intervals are 95% normal approximations over shoppers: a mean's
:math:`\\pm 1.96\\,s/\\sqrt n`, a ratio or log-ratio of means by the delta method over the
same per-shopper terms. :math:`U` is expected units bought at a visit,
:math:`P(click) \\, P(buy \\mid click) \\, (1 + K \\min(1, \\pi_0 + \\phi c))`.

===  ================================================================  ===========================================
row  definition                                                        compared with
===  ================================================================  ===========================================
a    deal elasticity at coupon c: first visit, a uniformly random      mean price elasticity -2.62 (Bijmolt, van
     group; log(U_c / U_0) / log(1 - c); beside it the purchase-       Heerde & Pieters 2005: 1,851 elasticities,
     incidence part (units per purchase held fixed)                    81 studies); the issue's range -1.5 to -3.5
b    regular-price elasticity: every list price x1.05                  the same -2.62
     (price_median x 1.05), same shoppers, groups and items, no
     coupon: log(U' / U) / log 1.05. The reference price is the
     item's own list price less the expected discount, so it moves
     with the price, and so does each group's typical price: only
     the group price level term -beta nu log(p_g / P0) changes
c    loss aversion in behaviour: first visit, random group, 20%        lambda = 2.25 (Tversky & Kahneman 1992);
     coupon; every shopper's expected discount set to                  losses weigh 1.5-2x gains in brand choice
     e = 1 - (1 - c) e^x, so that the reference R = p (1 - e) sits     (Neumann & Bockenholt 2014, as cited in
     at the shown item's effective price (x = 0), or Delta (log)       the issue)
     above it (a gain, e < 20%) or below it (a loss, e > 20%); the
     absolute term is unchanged. loss / gain = mean[l(0) - l(-D)] /
     mean[l(+D) - l(0)] of the purchase logit l (by the law
     lambda (D - theta) / sat(D - theta), sat(z) = z / (1 + z / g), the same for
     every shopper), and the same in P(buy | click)
c'   the same read from a coupon ladder: every shopper expects 10%,    losses loom larger (Kahneman & Tversky
     offers 0 / 10 / 20% (x = -0.105 / 0 / +0.118: the kink at the     1979)
     expected discount, for every item); loss slope
     (P_10 - P_0) / log(1 / 0.9) over gain slope
     (P_20 - P_10) / log(0.9 / 0.8), P averaged over items
     (absolute term included: it is symmetric and dilutes the
     ratio); and the same of the reference-price part of the
     purchase logit of the item shown, l + beta log(1 - c) (the
     absolute term removed with the shopper's own beta; by the law
     the same for every shopper)
d    post-promotion dip: first visit shown the best group (largest     dips exist but are small in store data
     P(click) P(buy | click) without coupon) with a 20% coupon (arm    (van Heerde, Leeflang & Wittink 2000; Mace
     C) or none (arm N), then the same group without coupon at         & Neslin 2004); ~1/3 of the bump from
     every later visit. bump = U at visit 0, C - N; after = expected   stockpiling / acceleration (van Heerde,
     units over visits at days 0 < t < W, C - N (the dip, < 0);        Gupta & Wittink 2003, as cited in the
     offset share = -dip / bump; next gap: C - N over shoppers back    issue; that paper's 1/3 is the brand-
     within H in both arms                                             switching share of the unit bump)
e    repeat purchase (one at days 0 < t < 90) after a deal vs a        deal purchases lower repeat purchase
     full-price purchase at visit 0, arms of d. naive: buyers under a  (Dodson, Tybout & Sternthal 1978; Gedenk
     fair-coin coupon, deal minus full price (conditioning on buying   & Neslin 1999)
     lets marginal, deal-prone buyers in); randomised: the shoppers
     who buy at visit 0 in both arms, C - N (the deal's causal
     effect); intention to treat: all shoppers, C - N
f    always-coupon vs never-coupon (retentionrl.simulators.world.heuristics), rolled     -
     out by hand to day 365: profit and return visits per shopper
     within 90 and 365 days, and their paired difference
===  ================================================================  ===========================================

Expected units after visit 0 (d) are summed from each later visit's exact probabilities
given the path drawn so far (the same expectation as the drawn units, with less noise).

Usage::

    python experiments/world_laws.py
    python experiments/world_laws.py --users 20000 --json runs/world_laws.json
    python experiments/world_laws.py --config-json '{"loss_aversion": 2.5, "gap_per_unit": 0.0}'
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from retentionrl.core.atomic import atomic_write_text
from retentionrl.core.interval import Z95, Interval
from retentionrl.simulators.policy_registry import make_policy
from retentionrl.simulators.world.config import WORLD_VERSION, WorldConfig
from retentionrl.simulators.world.simulator import GroundTruthWorld

DEAL = 0.20
"""Coupon fraction of the promotion in d, e and of the ladder's top in c'."""


@dataclass(frozen=True)
class Args:
    """Arguments of a run (saved in the JSON beside the numbers)."""

    users: int = 40_000
    """shoppers per experiment, >= 100 (40,000: intervals of a few % in about a minute on 2 cores)"""
    seed: int = 0
    """seed of shoppers and uniforms, shared by every arm of an experiment"""
    json: Path | None = None
    """also write the rows and the details as JSON here (atomically)"""
    config_json: str | None = None
    """WorldConfig overrides as a JSON object, or a path to a file holding one"""


@dataclass(frozen=True)
class Row:
    """One line of the table: a measurement of the world beside its published figure."""

    measurement: str
    world: Interval | str
    published: str
    source: str


# ---------------------------------------------------------------- estimates


def _ratio(a: np.ndarray, b: np.ndarray) -> Interval:
    """:math:`\\bar a / \\bar b` of paired per-shopper terms; delta-method interval."""
    r = a.mean() / b.mean()
    half = Z95 * ((a - r * b) / b.mean()).std(ddof=1) / np.sqrt(a.size)
    return Interval(float(r), float(r - half), float(r + half))


def _log_ratio(a: np.ndarray, b: np.ndarray, scale: float = 1.0) -> Interval:
    """:math:`\\log(\\bar a / \\bar b) / scale` of paired per-shopper terms; delta-method interval."""
    v = np.log(a.mean() / b.mean()) / scale
    half = Z95 * abs((a / a.mean() - b / b.mean()).std(ddof=1) / scale) / np.sqrt(a.size)
    return Interval(float(v), float(v - half), float(v + half))


def _difference_of_shares(x: np.ndarray, y: np.ndarray) -> Interval:
    """Mean of 0/1 ``x`` minus mean of 0/1 ``y`` (independent samples)."""
    p, q = x.mean(), y.mean()
    d = p - q
    half = Z95 * np.sqrt(p * (1 - p) / x.size + q * (1 - q) / y.size)
    return Interval(float(d), float(d - half), float(d + half))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


# ---------------------------------------------------------------- the world


def units_per_purchase(config: WorldConfig, c: np.ndarray | float) -> np.ndarray:
    """:math:`E[units \\mid purchase] = 1 + K \\min(1, \\pi_0 + \\phi c)` at coupon fraction ``c``."""
    extra = np.minimum(config.extra_unit_base + config.extra_unit_discount * np.asarray(c), 1.0)
    return 1.0 + config.max_extra_units * extra


def expected_units(world: GroundTruthWorld, arm: np.ndarray, coupon_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact expected purchases and units of each current shopper shown ``arm`` with coupon ``coupon_index``."""
    p_click, p_buy = world.response_probabilities(world.action_space.encode(arm, coupon_index))
    purchases = p_click * p_buy
    return purchases, purchases * units_per_purchase(world.config, world.config.coupon_levels[coupon_index])


def coupon_elasticity(config: WorldConfig, n: int, seed: int) -> dict[str, dict[float, Interval]]:
    """(a) Arc elasticity of expected units (``"units"``) and of expected purchases
    (``"incidence"``) between no coupon and each coupon level, at a first visit shown a
    uniformly random group."""
    world = GroundTruthWorld(config)
    world.reset(n, seed=seed)
    arm = np.random.default_rng(seed).integers(0, config.n_groups, n)
    buys0, units0 = expected_units(world, arm, 0)
    out: dict[str, dict[float, Interval]] = {"units": {}, "incidence": {}}
    for k, c in enumerate(config.coupon_levels[1:], start=1):
        buys, units = expected_units(world, arm, k)
        out["units"][c] = _log_ratio(units, units0, np.log1p(-c))
        out["incidence"][c] = _log_ratio(buys, buys0, np.log1p(-c))
    return out


def regular_price_elasticity(config: WorldConfig, n: int, seed: int, rise: float = 0.05) -> Interval:
    """(b) Elasticity of expected units to every list price x ``1 + rise`` (no coupon), same
    shoppers and groups: the reference price, the item's own list price less the expected
    discount, rises with it, and so does each group's typical price, so only the group
    price level term (weight nu) moves."""
    base = GroundTruthWorld(config)
    dear = GroundTruthWorld(replace(config, price_median=config.price_median * (1 + rise)))
    base.reset(n, seed=seed)
    dear.reset(n, seed=seed)
    if not np.array_equal(base.state.purchase_logit, dear.state.purchase_logit):
        raise RuntimeError("the two worlds drew different shoppers from one seed: the comparison is not paired")
    arm = np.random.default_rng(seed).integers(0, config.n_groups, n)
    return _log_ratio(expected_units(dear, arm, 0)[1], expected_units(base, arm, 0)[1], np.log1p(rise))


def reference_response(
    config: WorldConfig, n: int, seed: int, points: tuple[float, ...], coupon_index: int
) -> dict[float, dict[str, np.ndarray]]:
    """``{x: {"p": P(buy | click), "e": expected discount}}`` for each of ``points``: the
    item each shopper is shown (first visit, random group, coupon ``coupon_index``; the same
    items for every ``x``: common random numbers), with every shopper's expected discount
    set to :math:`e = 1 - (1 - c) e^x`, so that :math:`x = \\log(R / \\tilde p) =
    \\log\\frac{1 - e}{1 - c}` (:math:`R = p (1 - e)`, the item's own list price less the
    expected discount: the same :math:`x` whatever the item).

    :raises ValueError: a point that no expected discount in [0, 1) reaches at this coupon.
    """
    world = GroundTruthWorld(config)
    world.reset(n, seed=seed)
    arm = np.random.default_rng(seed).integers(0, config.n_groups, n)
    actions = world.action_space.encode(arm, coupon_index)
    world.step(actions)
    item = world.last_item.copy()
    c = config.coupon_levels[coupon_index]
    out = {}
    for x in points:
        e = 1.0 - (1.0 - c) * np.exp(x)  # R / p~ = (1 - e) / (1 - c) = e^x
        if not 0.0 <= e < 1.0:
            raise ValueError(f"x = {x:g} needs an expected discount {e:.3f} outside [0, 1) at a {c:.0%} coupon")
        world.reset(n, seed=seed)
        world._state.expectation[:] = e  # a study of the laws: the latent state set by hand
        world.step(actions)
        if not np.array_equal(world.last_item, item):
            raise RuntimeError("a re-run drew other items: common random numbers are broken")
        out[x] = {"p": world.last_probabilities[1].copy(), "e": np.full(n, e)}
    return out


def deal_term(config: WorldConfig, x: float | np.ndarray) -> np.ndarray:
    """The law's gain / loss :math:`D(x) = z / (1 + z / g) - \\lambda (-x - \\theta)^+`, :math:`z = (x - \\theta)^+`."""
    theta, g = config.price_threshold, config.gain_saturation
    x = np.asarray(x, dtype=float)
    over = np.maximum(x - theta, 0.0)
    return over / (1.0 + over / g) - config.loss_aversion * np.maximum(-x - theta, 0.0)


def loss_aversion(
    config: WorldConfig, n: int, seed: int, deltas: tuple[float, ...] = (0.05, 0.10, 0.20)
) -> dict[float, dict[str, Interval | float]]:
    """(c) For each :math:`\\Delta`: the purchase-logit and probability effects of a gain and
    of a loss of :math:`\\Delta` against the reference, loss / gain of each, and the law's
    loss / gain of the logit, :math:`-D(-\\Delta) / D(\\Delta)` (``"law"``)."""
    if DEAL not in config.coupon_levels:
        raise ValueError(f"coupon_levels {config.coupon_levels} must hold {DEAL}")
    points = (0.0, *deltas, *(-d for d in deltas))
    resp = reference_response(config, n, seed, points, config.coupon_levels.index(DEAL))
    p0 = resp[0.0]["p"]
    out: dict[float, dict[str, Interval | float]] = {}
    for d in deltas:
        pg, pl = resp[d]["p"], resp[-d]["p"]
        gain, loss = _logit(pg) - _logit(p0), _logit(p0) - _logit(pl)
        out[d] = {
            "logit_gain": Interval.of(gain),
            "logit_loss": Interval.of(loss),
            "logit_ratio": _ratio(loss, gain),
            "prob_gain": Interval.of(pg - p0),
            "prob_loss": Interval.of(p0 - pl),
            "prob_ratio": _ratio(p0 - pl, pg - p0),
            "law": float(-deal_term(config, -d) / deal_term(config, d)),
            "expectation_gain": float(resp[d]["e"][0]),
            "expectation_loss": float(resp[-d]["e"][0]),
        }
    return out


def coupon_ladder_asymmetry(
    config: WorldConfig, n: int, seed: int, expectation: float = 0.10
) -> dict[str, Interval | float]:
    """(c') Loss slope over gain slope on the ladder of offers 0, ``expectation`` and
    :data:`DEAL` to shoppers (first visit, random group) who all expect ``expectation``:
    the kink of the reference-price term sits at the middle rung for every item.

    ``"prob"``: of :math:`P(buy \\mid click)` averaged over items (what a test of the
    ladder sees; the absolute price term, symmetric in the log price, is included and
    dilutes the ratio). ``"logit"``: of the purchase logit of the item shown (the same item
    on every rung: common random numbers). ``"reference"``: of that logit plus
    :math:`\\beta \\log(1 - c)` (the absolute term removed with each shopper's own
    :math:`\\beta`), :math:`\\kappa D(x)`; ``"law"``: its value from :func:`deal_term`,
    the same for every shopper."""
    levels = config.coupon_levels
    if expectation not in levels or DEAL not in levels or levels[0] != 0.0:
        raise ValueError(f"coupon_levels {levels} must hold 0, {expectation} and {DEAL} for the ladder")
    rungs = (0.0, expectation, DEAL)
    loss_step, gain_step = -np.log1p(-expectation), np.log1p(-expectation) - np.log1p(-DEAL)

    def slopes(v: dict[float, np.ndarray]) -> Interval:
        return _ratio((v[expectation] - v[0.0]) / loss_step, (v[DEAL] - v[expectation]) / gain_step)

    world = GroundTruthWorld(config)
    arm = np.random.default_rng(seed).integers(0, config.n_groups, n)
    prob, logit, reference, items = {}, {}, {}, []
    for c in rungs:
        world.reset(n, seed=seed)
        world._state.expectation[:] = expectation  # a study of the laws: the latent state set by hand
        actions = world.action_space.encode(arm, levels.index(c))
        prob[c] = world.response_probabilities(actions)[1]
        world.step(actions)
        items.append(world.last_item.copy())
        logit[c] = _logit(world.last_probabilities[1])
        reference[c] = logit[c] + world.state.price_sensitivity * np.log1p(-c)
    if not all(np.array_equal(items[0], i) for i in items[1:]):
        raise RuntimeError("the rungs drew other items: common random numbers are broken")
    x = np.log1p(-expectation) - np.log1p(-np.asarray(rungs))
    d = deal_term(config, x)
    law = float(((d[1] - d[0]) / loss_step) / ((d[2] - d[1]) / gain_step))
    return {"prob": slopes(prob), "logit": slopes(logit), "reference": slopes(reference), "law": law}


@dataclass(frozen=True)
class Followed:
    """Per-shopper results of a by-hand rollout (arrays of shape ``(n,)``).

    :param first: visit 0: ``purchase``, ``units``, ``expected_purchases`` and
        ``expected_units`` (exact), ``profit``, ``gap`` (inf when churned).
    :param after: per window :math:`W`: sums over visits at days :math:`0 < t < W` of
        ``visits``, ``purchases``, ``units``, ``expected_purchases``, ``expected_units``
        (each visit's exact expectation given the path so far), ``profit``.
    """

    first: dict[str, np.ndarray]
    after: dict[int, dict[str, np.ndarray]]


def follow(
    world: GroundTruthWorld, n: int, seed: int, act: Callable[[int, np.ndarray], np.ndarray], windows: tuple[int, ...]
) -> Followed:
    """Reset ``n`` shoppers with ``seed`` and step every one of them (so the uniforms of a
    shopper's k-th visit are the same in every run of one seed) under ``act(k, obs)`` until
    each churns or reaches the largest window."""
    obs = world.reset(n, seed=seed)
    last = max(windows)
    metrics = ("visits", "purchases", "units", "expected_purchases", "expected_units", "profit")
    after = {w: {m: np.zeros(n) for m in metrics} for w in windows}
    alive = np.ones(n, dtype=bool)
    first: dict[str, np.ndarray] = {}
    k = 0
    while alive.any():
        day = world.days.copy()
        actions = act(k, obs)
        obs, out = world.step(actions)
        p_click, p_buy = world.last_probabilities
        c = np.asarray(world.config.coupon_levels)[world.action_space.decode(actions)[1]]
        values = {
            "visits": np.ones(n),
            "purchases": out.purchase.astype(float),
            "units": world.last_units.copy(),
            "expected_purchases": p_click * p_buy,
            "expected_units": p_click * p_buy * units_per_purchase(world.config, c),
            "profit": out.profit,
        }
        if k == 0:
            first = {
                "purchase": values["purchases"],
                "units": values["units"],
                "profit": out.profit,
                "expected_purchases": values["expected_purchases"],
                "expected_units": values["expected_units"],
                "gap": out.gap_days.copy(),
            }
        else:
            for w in windows:
                inside = alive & (day < w)
                for m in metrics:
                    after[w][m] += np.where(inside, values[m], 0.0)
        alive &= ~out.churned & (world.days < last)
        k += 1
    return Followed(first, after)


def best_groups(world: GroundTruthWorld) -> np.ndarray:
    """Each current shopper's group of largest exact expected purchases without coupon."""
    n = world.days.shape[0]
    buys = [expected_units(world, np.full(n, g), 0)[0] for g in range(world.config.n_groups)]
    return np.argmax(np.stack(buys), axis=0)


def promotion(config: WorldConfig, n: int, seed: int, windows: tuple[int, ...] = (30, 90)) -> dict[str, Followed]:
    """(d, e) Arms ``"deal"`` (coupon :data:`DEAL` at visit 0) and ``"none"``: each shopper
    shown their best group at every visit, without coupon after visit 0."""
    world = GroundTruthWorld(config)
    world.reset(n, seed=seed)
    best = best_groups(world)
    space = config.action_space
    runs = {}
    for name, coupon in (("deal", config.coupon_levels.index(DEAL)), ("none", 0)):
        first, later = space.encode(best, coupon), space.encode(best, 0)
        runs[name] = follow(world, n, seed, lambda k, obs, first=first, then=later: first if k == 0 else then, windows)
    return runs


def dip_rows(runs: dict[str, Followed], horizon: int) -> dict[str, Interval]:
    """(d) Bump at visit 0, expected units and purchases after it per window, the offset
    share and the next gap: deal arm minus no-coupon arm, paired over shoppers."""
    deal, none = runs["deal"], runs["none"]
    bump = deal.first["expected_units"] - none.first["expected_units"]
    out = {
        "bump_units": Interval.of(bump),
        "none_units_visit0": Interval.of(none.first["expected_units"]),
        "bump_purchases": Interval.of(deal.first["expected_purchases"] - none.first["expected_purchases"]),
    }
    for w in deal.after:
        dip = deal.after[w]["expected_units"] - none.after[w]["expected_units"]
        out[f"dip_units_{w}"] = Interval.of(dip)
        out[f"none_units_after_{w}"] = Interval.of(none.after[w]["expected_units"])
        relative = _ratio(deal.after[w]["expected_units"], none.after[w]["expected_units"])
        out[f"dip_units_relative_{w}"] = Interval(relative.estimate - 1, relative.low - 1, relative.high - 1)
        buys = deal.after[w]["expected_purchases"] - none.after[w]["expected_purchases"]
        out[f"dip_purchases_{w}"] = Interval.of(buys)
        out[f"dip_visits_{w}"] = Interval.of(deal.after[w]["visits"] - none.after[w]["visits"])
        out[f"offset_share_{w}"] = _ratio(-dip, bump)
    back = (deal.first["gap"] <= horizon) & (none.first["gap"] <= horizon)
    out["gap_none"] = Interval.of(none.first["gap"][back])
    out["gap_change"] = Interval.of(deal.first["gap"][back] - none.first["gap"][back])
    bought = (deal.first["units"] > 0) & back
    out["gap_change_buyers"] = Interval.of(deal.first["gap"][bought] - none.first["gap"][bought])
    return out


def repeat_rows(runs: dict[str, Followed], seed: int, window: int = 90) -> dict[str, Interval]:
    """(e) Repeat purchase within ``window`` days after a deal vs a full-price purchase at visit 0."""
    repeat = {name: run.after[window]["purchases"] > 0 for name, run in runs.items()}
    bought = {name: run.first["purchase"] > 0 for name, run in runs.items()}
    coin = np.random.default_rng([seed, 1]).random(bought["deal"].size) < 0.5  # the randomised coupon
    naive = _difference_of_shares(repeat["deal"][coin & bought["deal"]], repeat["none"][~coin & bought["none"]])
    both = bought["deal"] & bought["none"]
    return {
        "naive": naive,
        "randomised": Interval.of(repeat["deal"][both].astype(float) - repeat["none"][both]),
        "repeat_full_price": Interval.of(repeat["none"][both]),
        "itt": Interval.of(repeat["deal"].astype(float) - repeat["none"]),
    }


def coupon_policies(
    config: WorldConfig, n: int, seed: int, windows: tuple[int, ...] = (90, 365)
) -> dict[str, Interval]:
    """(f) always-coupon vs never-coupon: profit and return visits within each window."""
    world = GroundTruthWorld(config)
    runs = {}
    for name in ("always-coupon", "never-coupon"):
        policy, rng = make_policy(name, config), np.random.default_rng([seed, 2])
        runs[name] = follow(world, n, seed, lambda k, obs, p=policy, r=rng: p.act(obs, r), windows)
    out = {}
    for w in windows:
        profit = {name: run.first["profit"] + run.after[w]["profit"] for name, run in runs.items()}
        visits = {name: run.after[w]["visits"] for name, run in runs.items()}
        for name in runs:
            out[f"profit_{w}_{name}"] = Interval.of(profit[name])
            out[f"visits_{w}_{name}"] = Interval.of(visits[name])
        out[f"profit_{w}_diff"] = Interval.of(profit["always-coupon"] - profit["never-coupon"])
        out[f"visits_{w}_diff"] = Interval.of(visits["always-coupon"] - visits["never-coupon"])
    return out


# ---------------------------------------------------------------- the table


def measure(config: WorldConfig, n: int, seed: int) -> tuple[list[Row], dict[str, object]]:
    """Every measurement of the module docstring: the table's rows and all details."""
    a = coupon_elasticity(config, n, seed)
    b = regular_price_elasticity(config, n, seed)
    c = loss_aversion(config, n, seed)
    c2 = coupon_ladder_asymmetry(config, n, seed)
    runs = promotion(config, n, seed)
    d = dip_rows(runs, config.horizon_days)
    e = repeat_rows(runs, seed)
    f = coupon_policies(config, n, seed)
    bijmolt = "Bijmolt, van Heerde & Pieters 2005"
    rows = [
        Row(f"a. deal elasticity of units, {level:.0%} coupon", v, "-2.62 (mean); -1.5 to -3.5 (issue)", bijmolt)
        for level, v in a["units"].items()
    ]
    rows += [
        Row(f"a. ... of purchases only (units fixed), {level:.0%}", v, "", "") for level, v in a["incidence"].items()
    ]
    rows.append(
        Row("b. regular-price elasticity (+5% list prices, refs follow)", b, "-2.62 (mean, all prices)", bijmolt)
    )
    for delta, v in c.items():
        rows.append(
            Row(
                f"c. loss/gain, purchase logit, |x| = {delta:.2f}",
                v["logit_ratio"],
                f"2.25 (world's lambda {config.loss_aversion:g}: law {v['law']:.2f})",
                "Tversky & Kahneman 1992",
            )
        )
        rows.append(
            Row(
                f"c. loss/gain, P(buy|click), |x| = {delta:.2f}",
                v["prob_ratio"],
                "1.5-2 (as cited in issue)",
                "Neumann & Bockenholt 2014",
            )
        )
    rows.append(
        Row(
            "c'. loss/gain slope, ladder 0/10/20% at e = 10%, P(buy|click)",
            c2["prob"],
            "> 1",
            "Kahneman & Tversky 1979",
        )
    )
    rows.append(Row("c'. ... purchase logit of the item shown", c2["logit"], "> 1", ""))
    rows.append(
        Row(
            "c'. ... its reference-price part (logit + beta log(1-c))",
            c2["reference"],
            f"law {c2['law']:.2f} (lambda {config.loss_aversion:g})",
            "",
        )
    )
    rows += [
        Row("d. purchases at the promotion visit, C-N", d["bump_purchases"], "", ""),
        Row("d. units at the promotion visit (the bump), C-N", d["bump_units"], "", ""),
        Row("d. units after it, days 0<t<30, C-N", d["dip_units_30"], "small dip (< 0)", "van Heerde+ 2000"),
        Row("d. units after it, days 0<t<90, C-N", d["dip_units_90"], "small dip (< 0)", "Mace & Neslin 2004"),
        Row("d. units after it, days 0<t<90, C/N - 1", d["dip_units_relative_90"], "", ""),
        Row("d. purchases after it, days 0<t<30, C-N", d["dip_purchases_30"], "", ""),
        Row("d. purchases after it, days 0<t<90, C-N", d["dip_purchases_90"], "", ""),
        Row("d. visits after it, days 0<t<90, C-N", d["dip_visits_90"], "", ""),
        Row("d. share of the bump offset by the dip, 30 d", d["offset_share_30"], "", ""),
        Row(
            "d. share of the bump offset by the dip, 90 d",
            d["offset_share_90"],
            "~1/3 (as cited in issue)",
            "van Heerde, Gupta & Wittink 2003",
        ),
        Row("d. next gap (days), C-N, back within H in both", d["gap_change"], "> 0", "stockpiling"),
        Row("e. repeat in 90 d: deal - full-price buyers, naive", e["naive"], "< 0", "Dodson+ 1978"),
        Row("e. ... randomised: shoppers buying in both arms", e["randomised"], "< 0", "Gedenk & Neslin 1999"),
        Row("e. ... all shoppers, C-N (intention to treat)", e["itt"], "", ""),
    ]
    for w in (90, 365):
        line = (
            f"always {f[f'profit_{w}_always-coupon'].estimate:.2f} vs never {f[f'profit_{w}_never-coupon'].estimate:.2f}: "
            f"{f[f'profit_{w}_diff']}"
        )
        rows.append(Row(f"f. profit per shopper, {w} d", line, "", ""))
        line = (
            f"always {f[f'visits_{w}_always-coupon'].estimate:.3f} vs never {f[f'visits_{w}_never-coupon'].estimate:.3f}: "
            f"{f[f'visits_{w}_diff']}"
        )
        rows.append(Row(f"f. return visits per shopper, {w} d", line, "", ""))
    details = {
        "coupon_elasticity": {k: {str(c): v for c, v in d_.items()} for k, d_ in a.items()},
        "regular_price_elasticity": b,
        "loss_aversion": {str(k): v for k, v in c.items()},
        "coupon_ladder_asymmetry": c2,
        "promotion_dip": d,
        "repeat_after_deal": e,
        "coupon_policies": f,
    }
    return rows, details


def format_rows(rows: list[Row]) -> str:
    """The rows as one plain-text table: measurement | world | published figure | source."""
    header = ("measurement", "world [95% interval]", "published figure", "source")
    cells = [header, *((r.measurement, str(r.world), r.published, r.source) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(cell, widths)).rstrip() for cell in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def load_config(text: str | None) -> WorldConfig:
    """``WorldConfig()`` with the overrides of a JSON object (or a file holding one) applied.

    :raises ValueError: an unknown field (named), or a ``world_version`` other than this one.
    """
    if text is None:
        return WorldConfig()
    path = Path(text)
    data = json.loads(path.read_text() if not text.lstrip().startswith("{") and path.is_file() else text)
    if not isinstance(data, dict):
        raise ValueError(f"--config-json must be a JSON object, got {type(data).__name__}")
    version = data.pop("world_version", WORLD_VERSION)
    if version != WORLD_VERSION:
        raise ValueError(f"--config-json was written for world v{version}; this code is world v{WORLD_VERSION}")
    names = {f.name for f in fields(WorldConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"--config-json: unknown WorldConfig fields {unknown}")
    return replace(WorldConfig(), **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _jsonable(value: object) -> object:
    if isinstance(value, Interval):
        return asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def parse_args(argv: list[str] | None = None) -> Args:
    """The :class:`Args` of the command line (``--users`` checked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=Args.users, help="shoppers per experiment (>= 100)")
    parser.add_argument("--seed", type=int, default=Args.seed, help="seed of shoppers and uniforms (every arm's)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write rows and details here")
    parser.add_argument(
        "--config-json",
        default=None,
        metavar="JSON",
        help="WorldConfig overrides: a JSON object, or a path to a file holding one",
    )
    args = Args(**vars(parser.parse_args(argv)))
    if args.users < 100:
        parser.error(f"--users must be >= 100, got {args.users}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Measure every law, print the table (and write the JSON)."""
    args = parse_args(argv)
    try:
        config = load_config(args.config_json)
    except ValueError as err:  # unknown field, bad value or another world version: say so, no traceback
        raise SystemExit(f"world_laws.py: {err}") from None
    t0 = time.perf_counter()
    rows, details = measure(config, args.users, args.seed)
    seconds = time.perf_counter() - t0
    print(format_rows(rows))
    print(
        f"\n{args.users} shoppers per experiment, seed {args.seed}; 95% normal intervals over shoppers "
        f"(delta method for ratios); {seconds:.0f} s"
    )
    if args.json is not None:
        payload = {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
            "config": json.loads(config.to_json()),
            "seconds": seconds,
            "rows": [
                {
                    "measurement": r.measurement,
                    "world": _jsonable(r.world),
                    "published": r.published,
                    "source": r.source,
                }
                for r in rows
            ],
            "details": _jsonable(details),
        }
        atomic_write_text(args.json, json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
