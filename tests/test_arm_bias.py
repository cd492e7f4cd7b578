"""Per-arm intercepts: their start at the logged rates, shrunk by an empirical-Bayes prior
weight, and a fit that keeps a rare arm's own purchase rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retentionrl.interactions.io import read_events
from retentionrl.simulators.learned.arm_bias import MAX_PSEUDO_VISITS, initial_arm_bias, pseudo_visits
from retentionrl.simulators.learned.fit import FitConfig, fit_simulator
from retentionrl.simulators.learned.sequence_model import HEAD_LAYOUT
from retentionrl.simulators.learned.simulator import LearnedSimulator

COL = {name: i for i, name in enumerate(HEAD_LAYOUT)}


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def visits(rates: list[float], n: list[int], seed: int = 0) -> dict[str, np.ndarray]:
    """Clicked visits of arms with the given purchase-after-click rates (exactly that many
    buyers), spend 10 x e^arm, arm ``len(rates)`` unlogged."""
    arm = np.repeat(np.arange(len(rates)), n)
    purchase = np.concatenate([np.arange(k) < round(r * k) for r, k in zip(rates, n)]).astype(float)
    ones = np.ones(arm.size)
    return {
        "arm": arm,
        "click": ones,
        "purchase": purchase,
        "redeemed": np.zeros(arm.size),
        "log_spend": np.log(10.0) + arm.astype(float),
        "click_mask": ones > 0,
        "redeemed_mask": ones < 0,
        "spend_mask": purchase > 0,
    }


def test_each_arm_starts_at_its_logged_rate_shrunk_by_the_method_of_moments_weight():
    rates, n = [0.1, 0.5, 0.8], [1000, 1000, 20]
    v = visits(rates, n)
    bias = initial_arm_bias(**v, n_arms=3)
    assert bias.shape == (3, len(HEAD_LAYOUT))
    pooled = v["purchase"].mean()
    total, count = np.array([100.0, 500.0, 16.0]), np.array(n, float)
    m = pseudo_visits(total, count, pooled * (1 - pooled))
    assert 1 <= m < 10  # arms far apart: a weak prior
    expected = [logit((t + m * pooled) / (c + m)) - logit(pooled) for t, c in zip(total, count)]
    np.testing.assert_allclose(bias[:3, COL["purchase_click"]], expected, rtol=1e-5)
    assert bias[2, COL["purchase_click"]] < logit(0.8) - logit(pooled)  # the rare arm leans to the pool
    assert not bias[:, COL["purchase_noclick"]].any()  # every visit clicked: no data, 0
    assert not bias[:, COL["redeemed"]].any() and not bias[:, COL["spend_log_sigma"]].any()
    spend = bias[:3, COL["spend_mu"]]
    assert spend[0] < 0 < spend[2] and np.all(np.diff(spend) > 0)  # dearer arms spend more


def test_arms_alike_get_the_largest_prior_weight():
    v = visits([0.3, 0.3, 0.3], [500, 500, 500])
    assert pseudo_visits(np.array([150.0, 150, 150]), np.array([500.0, 500, 500]), 0.21) == MAX_PSEUDO_VISITS
    np.testing.assert_allclose(initial_arm_bias(**v, n_arms=3)[:, COL["purchase_click"]], 0.0, atol=1e-6)


def test_an_arm_never_shown_starts_at_the_pool():
    v = visits([0.2, 0.6], [400, 400])
    bias = initial_arm_bias(**v, n_arms=3)  # arm 2 exists but never appears
    assert bias[2, COL["purchase_click"]] == pytest.approx(0.0, abs=1e-6)


def rare_arm_log(n_users: int, seed: int) -> pd.DataFrame:
    """Two daily visits per shopper, each shown one of five common groups (buy after the
    click 0.6) or, at 1 visit in 40, the rare group ``r`` (buy after the click 0.05); every
    visit clicked, price log-normal around 10, no coupon."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2024-01-01 10:00")
    rows = []
    for u in range(n_users):
        for day in range(2):
            group = "r" if rng.random() < 1 / 40 else f"g{rng.integers(5)}"
            t = t0 + pd.Timedelta(hours=u % 24, days=day + u // 24)
            item = (f"u{u}", t, "impression", f"{group}-i", group, np.nan, np.nan, 0.0, 0.5)
            rows += [item, (f"u{u}", t + pd.Timedelta("1min"), "click", f"{group}-i", group, *[np.nan] * 4)]
            if rng.random() < (0.05 if group == "r" else 0.6):
                price = float(np.exp(2.3 + 0.5 * rng.standard_normal()))
                rows.append(
                    (f"u{u}", t + pd.Timedelta("2min"), "purchase", f"{group}-i", group, price, 1.0, 0.0, np.nan)
                )
    columns = ["user_id", "timestamp", "event", "item_id", "item_group", "price", "quantity", "coupon", "propensity"]
    return pd.DataFrame(rows, columns=columns)


def test_with_arm_bias_a_fit_keeps_a_rare_arms_own_purchase_rate(tmp_path):
    rare_arm_log(3000, seed=0).to_parquet(tmp_path / "r.parquet", index=False)
    config = FitConfig(epochs=3, hidden_size=16, head_hidden=16, arm_embedding=4, device="cpu", arm_bias=True)
    result = fit_simulator(read_events(tmp_path / "r.parquet"), config, tmp_path / "sim")
    sim = LearnedSimulator.load(tmp_path / "sim", "cpu")  # the intercepts survive a save
    assert sim.card.spec.arm_bias
    arms = sim.card.action_map.arms
    actions = np.array([int(sim.action_space.encode(arms.index(g), 0)) for g in ("r", "g0")])
    sim.reset(2, seed=0)
    p = sim.predict(actions)[:, 0]  # P(purchase) of a new shopper shown r, or g0
    # truth 0.05 and 0.6; the same fit without the intercepts puts r at 0.58 (its 150 visits
    # barely move the shared layers in 3 epochs)
    assert p[0] < 0.15 and p[1] > 0.45, p
    assert result.card.spec.arm_bias
