"""The ground-truth world: outcome laws, batching, reset/replace, bad input, trade-offs."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from retentionrl.simulators.policy_registry import make_policy
from retentionrl.simulators.world.config import WorldConfig, WorldVersionError
from retentionrl.simulators.world.simulator import GroundTruthWorld

CONFIG = WorldConfig()


@pytest.fixture(scope="module")
def world() -> GroundTruthWorld:
    return GroundTruthWorld(CONFIG)


def random_actions(world: GroundTruthWorld, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, world.action_space.n_actions, n)


def test_reset_gives_day_zero_and_empty_history(world):
    obs = world.reset(5, seed=1)
    assert obs.shape == (5, world.obs_dim) and obs.dtype == np.float32
    assert not obs.any() and not world.days.any()
    assert world.observation_names == world.history.names


def test_outcomes_obey_their_laws(world):
    n = 4000
    world.reset(n, seed=2)
    actions = random_actions(world, n)
    obs, out = world.step(actions)
    coupon = np.asarray(CONFIG.coupon_levels)[actions % world.action_space.n_coupons]
    assert obs.shape == (n, world.obs_dim)
    assert not np.any(out.purchase & ~out.click)  # buying needs a click
    np.testing.assert_array_equal(out.redeemed, out.purchase & (coupon > 0))
    np.testing.assert_allclose(out.coupon_cost, np.where(out.redeemed, coupon * out.spend, 0.0))
    assert np.all((out.spend > 0) == out.purchase)
    margin = world.catalog.margin[actions // world.action_space.n_coupons]
    np.testing.assert_allclose(out.cogs, (1.0 - margin) * out.spend)
    np.testing.assert_allclose(out.profit, out.spend - out.coupon_cost - out.cogs)
    units = world.last_units
    assert np.all(units[out.purchase] >= 1) and np.all(units[out.purchase] <= 1 + CONFIG.max_extra_units)
    assert not units[~out.purchase].any()
    np.testing.assert_allclose(out.spend, world.catalog.item_price[world.last_item] * units)
    assert np.array_equal(np.isinf(out.gap_days), out.churned)
    gaps = out.gap_days[~out.churned]
    assert np.all(gaps >= 1) and np.all(gaps == np.round(gaps))
    np.testing.assert_array_equal(world.days, np.where(out.churned, 0.0, out.gap_days))
    item = world.last_item
    np.testing.assert_array_equal(world.catalog.item_group[item], actions // world.action_space.n_coupons)


def test_default_world_is_realistic(world):
    """Return gaps of 1-4 weeks, purchase rates of 10-40% per visit, sizeable churn."""
    n = 3000
    world.reset(n, seed=3)
    obs, gaps, purchases = world.history.features(), [], []
    alive, churned = np.ones(n, bool), np.zeros(n, bool)
    policy, rng = make_policy("softmax", CONFIG), np.random.default_rng(0)
    while alive.any():
        obs, out = world.step(policy.act(obs, rng))
        gaps.append(out.gap_days[alive & ~out.churned])
        purchases.append(out.purchase[alive])
        churned |= alive & out.churned
        alive &= ~out.churned & (world.days < CONFIG.horizon_days)
    assert 5 <= np.median(np.concatenate(gaps)) <= 28
    assert 0.10 <= np.concatenate(purchases).mean() <= 0.40
    assert 0.25 <= churned.mean() <= 0.75


def test_same_seed_same_trajectory_and_batches_of_any_size():
    a, b = GroundTruthWorld(CONFIG), GroundTruthWorld(CONFIG)
    for n in (0, 1, 7):
        oa, ob = a.reset(n, seed=11), b.reset(n, seed=11)
        for step in range(3):
            oa, out_a = a.step(random_actions(a, n, step))
            ob, out_b = b.step(random_actions(b, n, step))
            np.testing.assert_array_equal(oa, ob)
            np.testing.assert_array_equal(out_a.gap_days, out_b.gap_days)


class FixedUniforms:
    """Stands in for a world's generator in ``step``: hands out the given uniforms."""

    def __init__(self, u: np.ndarray) -> None:
        self.u = u

    def random(self, shape: tuple[int, int], dtype: type) -> np.ndarray:
        assert self.u.shape == shape and self.u.dtype == dtype
        return self.u


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def test_a_batch_of_one_steps_bit_for_bit_as_in_a_batch():
    """One shopper goes through the laws as numpy scalars, a batch as arrays: same numbers."""
    batch, n = GroundTruthWorld(CONFIG), 8
    batch.reset(n, seed=6)
    rows = np.eye(n, dtype=bool)
    alone = []
    for mask in rows:
        one = copy.deepcopy(batch)
        one.keep_rows(mask)
        alone.append(one)
    rng = np.random.default_rng(6)
    for step in range(12):
        draws = 5 + CONFIG.max_extra_units
        actions, u = random_actions(batch, n, step), rng.random((draws, n), dtype=np.float32)
        batch._rng = FixedUniforms(u)
        obs, out = batch.step(actions)
        for i, one in enumerate(alone):
            one._rng = FixedUniforms(u[:, i : i + 1])
            obs_one, out_one = one.step(actions[i : i + 1])
            assert same_bits(obs_one, obs[i : i + 1])
            assert all(same_bits(v, getattr(out, k)[i : i + 1]) for k, v in out_one.as_dict().items())
            assert all(same_bits(v, getattr(batch.state, k)[i : i + 1]) for k, v in vars(one.state).items())
            assert same_bits(one.days, batch.days[i : i + 1]) and same_bits(one.last_item, batch.last_item[i : i + 1])


def test_rates_do_not_depend_on_batch_size():
    """First-visit click rate of one batch of 4,000 vs 250 batches of 16 (same law)."""
    world, n = GroundTruthWorld(CONFIG), 4000
    action = np.full(n, 5 * CONFIG.action_space.n_coupons)  # arm 5, no coupon
    world.reset(n, seed=5)
    big = world.step(action)[1].click.mean()
    small = []
    for k in range(250):
        world.reset(16, seed=1000 + k)
        small.append(world.step(action[:16])[1].click)
    p = np.concatenate(small).mean()
    assert abs(big - p) < 4 * np.sqrt(p * (1 - p) * 2 / n)


def test_replace_draws_fresh_shoppers_only_in_masked_slots(world):
    world.reset(6, seed=4)
    for _ in range(3):
        world.step(random_actions(world, 6))
    before_obs, before_days = world.history.features().copy(), world.days.copy()
    before_rel = world.state.relevance.copy()
    mask = np.array([True, False, False, True, False, False])
    obs = world.replace(mask)
    assert not obs[mask].any() and not world.days[mask].any()
    np.testing.assert_array_equal(obs[~mask], before_obs[~mask])
    np.testing.assert_array_equal(world.days[~mask], before_days[~mask])
    np.testing.assert_array_equal(world.state.relevance[~mask], before_rel[~mask])
    assert not world.state.satisfaction[mask].any() and not world.state.satiety[mask].any()
    assert (world.state.satiety_group[mask] == -1).all()


def test_latent_state_and_days_are_read_only(world):
    world.reset(3, seed=0)
    with pytest.raises(ValueError):
        world.state.satisfaction[0] = 5.0
    with pytest.raises(ValueError):
        world.days[0] = 1.0


@pytest.mark.parametrize(
    ("actions", "match"),
    [
        (np.array([0, 80, 1]), "action 80"),
        (np.array([-1, 0, 0]), "action -1"),
        (np.array([0, 1]), r"shape \(3,\)"),
        (np.array([0.0, 1.0, 2.0]), "integer"),
    ],
)
def test_invalid_actions_raise_naming_the_action(world, actions, match):
    world.reset(3, seed=0)
    with pytest.raises(ValueError, match=match):
        world.step(actions)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_groups": 1}, "n_groups"),
        ({"n_clickbait": 20}, "n_clickbait"),
        ({"segment_mix": (0.5, 0.5, 0.5)}, "segment_mix"),
        ({"segment_gap_days": (1.0, 2.0)}, "segment_gap_days"),
        ({"coupon_levels": (0.1, 0.2)}, "0.0"),
        ({"satisfaction_persistence": 1.0}, "satisfaction_persistence"),
    ],
)
def test_invalid_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WorldConfig(**kwargs)


@pytest.fixture(scope="module")
def values() -> dict:
    world = GroundTruthWorld(CONFIG)
    names = ("always-coupon", "never-coupon", "targeted-coupon", "myopic", "satisfaction-aware", "premium")
    return {name: world.evaluate(make_policy(name, CONFIG), 5000, seed=123) for name in names}


def test_always_coupon_wins_now_and_loses_profit(values):
    always, never, targeted = values["always-coupon"], values["never-coupon"], values["targeted-coupon"]
    assert always.first_visit_purchase.low > never.first_visit_purchase.high
    assert always.profit.high < never.profit.low
    assert always.profit.high < targeted.profit.low
    assert always.coupon_cost.low > 5 * targeted.coupon_cost.high  # coupons at every visit vs new and lapsing shoppers


def test_showing_the_dearest_group_does_not_pay(values):
    """Price enters the purchase law: the premium heuristic sells too little to out-earn popularity."""
    premium, never = values["premium"], values["never-coupon"]
    assert premium.purchases.high < never.purchases.low
    assert premium.profit.high < never.profit.low


def test_world_config_round_trips_and_refuses_other_versions():
    assert WorldConfig.from_json(CONFIG.to_json()) == CONFIG
    v1 = __import__("json").loads(CONFIG.to_json())
    del v1["world_version"]
    with pytest.raises(WorldVersionError, match="world v1"):
        WorldConfig.from_json(__import__("json").dumps(v1), source="old.parquet")


def test_myopic_retains_fewer_than_satisfaction_aware(values):
    myopic, aware = values["myopic"], values["satisfaction-aware"]
    assert myopic.first_visit_purchase.estimate > 0  # it does win clicks and sales now
    assert myopic.active_at_horizon.high < aware.active_at_horizon.low
    assert myopic.return_visits.high < aware.return_visits.low


def test_evaluate_is_seeded_and_reports_intervals(values):
    again = GroundTruthWorld(CONFIG).evaluate(make_policy("never-coupon", CONFIG), 5000, seed=123)
    assert again == values["never-coupon"]
    d = again.to_dict()
    assert d["n_users"] == 5000 and set(d["profit"]) == {"estimate", "low", "high", "n", "lower_bound", "alpha"}
    assert again.profit.low < again.profit.estimate < again.profit.high


def test_items_are_drawn_by_their_zipf_weight_inside_the_shown_group(world):
    """Walker's alias draw against the catalog's weights: a chi-square over every item."""
    cat, n = world.catalog, 1_000_000
    rng = np.random.default_rng(8)
    arm = rng.integers(0, CONFIG.n_groups, n)
    item = cat.draw_items(arm, rng.random(n, dtype=np.float32))
    np.testing.assert_array_equal(cat.item_group[item], arm)
    weight = cat.item_weight
    expected = np.bincount(arm, minlength=CONFIG.n_groups)[cat.item_group] * weight
    chi2 = (((np.bincount(item, minlength=CONFIG.n_items) - expected) ** 2) / expected).sum()
    dof = CONFIG.n_items - CONFIG.n_groups
    assert chi2 < dof + 5 * np.sqrt(2 * dof)  # five standard deviations of a chi-square
    top = np.maximum.reduceat(weight, cat.offsets[:-1])
    assert top.min() > 3 * weight.mean()  # each group has a head of popular items
