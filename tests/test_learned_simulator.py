"""The learned simulator's stepping: O(1) carried state, seeding, reset/replace, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retentionrl.core.actions import ActionSpace
from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.history import history_feature_names
from retentionrl.simulators.learned.exposure import ignored_showings_from_visits
from retentionrl.simulators.learned.model_card import ModelCard
from retentionrl.simulators.learned.sequence_model import ModelSpec, ShopperSequenceModel, VisitInputs
from retentionrl.simulators.learned.simulator import LearnedSimulator, resolve_device
from retentionrl.simulators.learned.visit_data import HEADS

N_ARMS = 3


def toy_simulator(
    positives: dict[str, int] | None = None,
    support: int = 100,
    seed: int = 0,
    margins: tuple[float, ...] = (1.0,) * N_ARMS,
    exposure: bool = False,
) -> LearnedSimulator:
    """A randomly initialised model behind the simulator interface (no fitting needed);
    ``exposure``: the model reads the ignored showings."""
    space = ActionSpace(N_ARMS)
    amap = ActionMap("rec_group", tuple(range(N_ARMS)), space, {"arms_seen": 3.0, "coupon_levels_seen": 4.0})
    spec = ModelSpec(
        n_features=11 + (2 if exposure else 1) * N_ARMS,
        n_arms=N_ARMS,
        horizon_days=30,
        hidden_size=16,
        arm_embedding=4,
        head_hidden=16,
        exposure_input=exposure,
    )
    positives = positives or {"click": 50, "purchase": 50, "redeemed": 50}
    card = ModelCard.describe(
        spec,
        amap,
        50.0,
        history_feature_names(N_ARMS),
        dict.fromkeys(HEADS, support),
        positives,
        fixed_coupon=0.0,
        min_examples=10,
        gross_margins=np.array(margins),
        records_cogs=margins != (1.0,) * N_ARMS,
    )
    torch.manual_seed(seed)
    model = ShopperSequenceModel(spec)
    with torch.no_grad():
        model.hazard_out.bias[:] = -2.0
    return LearnedSimulator(model, card, "cpu")


@pytest.mark.parametrize("exposure", [False, True])
def test_simulator_carries_the_gru_state_of_its_whole_history(exposure):
    sim = toy_simulator(exposure=exposure)
    n, k = 6, 5
    obs = sim.reset(n, seed=1)
    rng = np.random.default_rng(0)
    feats, arms, coupons, outcomes = [], [], [], []
    for _ in range(k):
        actions = rng.integers(0, sim.action_space.n_actions, n)
        arm, coupon_index = sim.action_space.decode(actions)
        feats.append(obs)
        arms.append(arm)
        coupons.append(np.asarray(sim.action_space.coupon_levels)[coupon_index] / 0.2)
        obs, out = sim.step(actions)
        outcomes.append(np.stack([coupons[-1], out.click, out.purchase, out.redeemed, np.log1p(out.spend / 50.0)], 1))
    prev_arm = np.stack([np.full(n, N_ARMS), *arms[:-1]], 1)
    prev_outcome = np.stack([np.zeros((n, 5)), *outcomes[:-1]], 1)
    features = np.stack(feats, 1)
    if exposure:  # the ignored showings as training computes them from the same visits, shopper by shopper
        ignored = np.stack(outcomes, 1)[..., 1:3].sum(-1) == 0
        starts = np.arange(n * k) % k == 0
        block = ignored_showings_from_visits(np.stack(arms, 1).ravel(), ignored.ravel(), starts, N_ARMS)
        assert block.any()
        features = np.concatenate([features, block.reshape(n, k, N_ARMS)], axis=-1)
    inputs = VisitInputs(
        torch.tensor(features),
        torch.tensor(prev_arm),
        torch.tensor(prev_outcome).float(),
        torch.tensor(np.stack(arms, 1)),
        torch.tensor(np.stack(coupons, 1)).float(),
    )
    _, last = sim.model.rnn(inputs)
    torch.testing.assert_close(sim.state, last, rtol=1e-5, atol=1e-5)


def test_the_return_gap_is_drawn_given_the_visits_drawn_purchase():
    toy = toy_simulator()
    model = toy.model
    with torch.no_grad():  # one hazard unit fires on a purchase and makes a return on day 1 certain
        model.hazard_in.weight.zero_()
        model.hazard_in.bias.zero_()
        model.hazard_in.weight[0, model.spec.head_hidden + 1] = 1.0  # outcome column 1: purchase
        model.hazard_out.weight.zero_()
        model.hazard_out.weight[1:, 0] = 80.0
        model.hazard_out.bias[1:] = -40.0  # no purchase: (almost) never returns
        model.hazard_out.bias[0] = -40.0  # and no churn but by the hazard
    sim = LearnedSimulator(model, toy.card, "cpu")  # the simulator folds the weights it is given
    sim.reset(2000, seed=3)
    _, out = sim.step(np.zeros(2000, dtype=np.int64))
    assert 0 < out.purchase.sum() < 2000
    np.testing.assert_array_equal(out.gap_days[out.purchase], 1.0)
    assert np.all(out.churned[~out.purchase])


def run(sim: LearnedSimulator, seed: int, steps: int = 8, n: int = 64) -> np.ndarray:
    sim.reset(n, seed=seed)
    rows = []
    for k in range(steps):
        obs, out = sim.step(np.random.default_rng(k).integers(0, sim.action_space.n_actions, n))
        rows.append(np.stack([out.click, out.purchase, out.redeemed, out.spend, out.gap_days]))
    return np.stack(rows)


def test_same_seed_same_sampled_trajectories():
    sim = toy_simulator()
    np.testing.assert_array_equal(run(sim, 3), run(toy_simulator(), 3))
    assert not np.array_equal(run(sim, 3), run(sim, 4))


def test_outcomes_are_consistent_samples():
    sim = toy_simulator()
    sim.reset(2000, seed=0)
    actions = sim.action_space.encode(np.zeros(2000, int), np.full(2000, 3))  # 20% coupon for everyone
    obs, out = sim.step(actions)
    assert obs.shape == (2000, sim.obs_dim) and obs.dtype == np.float32
    assert 0.05 < out.click.mean() < 0.95  # sampled, not argmax
    assert np.all(out.redeemed <= out.purchase) and np.all((out.spend > 0) == out.purchase)
    np.testing.assert_allclose(out.coupon_cost, np.where(out.redeemed, 0.2 * out.spend, 0.0))
    assert np.array_equal(out.churned, np.isinf(out.gap_days))
    alive = ~out.churned
    assert np.all(out.gap_days[alive] == np.round(out.gap_days[alive])) and np.all(out.gap_days[alive] >= 1)
    np.testing.assert_array_equal(sim.days, np.where(alive, out.gap_days, 0.0))


def test_cost_of_goods_is_spend_times_one_minus_the_recommended_arms_margin():
    sim = toy_simulator(margins=(0.5, 0.25, 1.0))
    arm = np.repeat(np.arange(N_ARMS), 500)
    sim.reset(arm.size, seed=0)
    _, out = sim.step(sim.action_space.encode(arm, np.full(arm.size, 2)))
    assert out.purchase.any()
    np.testing.assert_allclose(out.cogs, np.array([0.5, 0.75, 0.0])[arm] * out.spend)
    np.testing.assert_allclose(out.profit, out.spend - out.coupon_cost - out.cogs)
    with pytest.raises(ValueError, match="2 gross margins for 3 arms"):
        toy_simulator(margins=(0.5, 0.5))


def test_reset_and_replace_start_new_shoppers_from_the_empty_state():
    sim = toy_simulator()
    obs = sim.reset(5, seed=0)
    assert obs.shape == (5, sim.obs_dim) and not obs.any() and not sim.days.any()
    for _ in range(3):
        obs, _ = sim.step(np.ones(5, dtype=np.int64))
    before_obs, before_state = obs.copy(), sim.state
    mask = np.array([True, False, True, False, False])
    obs = sim.replace(mask)
    empty = sim.model.empty_state.detach()
    assert not obs[mask].any() and not sim.days[mask].any()
    np.testing.assert_array_equal(obs[~mask], before_obs[~mask])
    torch.testing.assert_close(sim.state[torch.tensor(mask)], empty.expand(2, -1))
    torch.testing.assert_close(sim.state[torch.tensor(~mask)], before_state[torch.tensor(~mask)])


def test_heads_without_signal_use_the_logs_constant_rate():
    sim = toy_simulator(positives={"click": 0, "purchase": 100, "redeemed": 0})
    assert sim.card.not_learned() == ["click", "purchase", "redeemed"]
    sim.reset(500, seed=0)
    _, out = sim.step(np.zeros(500, dtype=np.int64))
    assert not out.click.any() and out.purchase.all()


@pytest.mark.parametrize(
    ("actions", "match"),
    [(np.zeros(3, dtype=np.int64), r"shape \(4,\)"), (np.zeros(4), "integer"), (np.full(4, 99), "action 99")],
)
def test_bad_actions_are_rejected(actions, match):
    sim = toy_simulator()
    sim.reset(4, seed=0)
    with pytest.raises(ValueError, match=match):
        sim.step(actions)


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_replace_zeroes_new_rows_exactly_as_recomputing_the_features():
    sim = toy_simulator()
    sim.reset(8, seed=0)
    for k in range(3):
        obs, out = sim.step(np.full(8, k, dtype=np.int64))
    held = obs.copy()
    mask = np.arange(8) % 3 == 0
    new_obs = sim.replace(mask)
    np.testing.assert_array_equal(new_obs, sim.history.features())  # the shortcut equals the full recompute
    np.testing.assert_array_equal(obs, held)  # the caller's previous observation is untouched
