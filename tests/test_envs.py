"""Gymnasium environments over the world: spaces, episode ends, autoreset, SB3, seeding."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from retentionrl import envs
from retentionrl.envs.factory import make_env, make_vector_env
from retentionrl.envs.reward import RewardConfig, logged_revenue_scale
from retentionrl.envs.sb3 import ShopperSB3VecEnv
from retentionrl.simulators.interface import VisitOutcome


def rollout_single(env: gym.Env, seed: int, n_steps: int) -> list[tuple]:
    """(obs, reward, terminated, truncated) of n_steps random actions, resetting on ends."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = []
    for _ in range(n_steps):
        obs, reward, term, trunc, _ = env.step(env.action_space.sample())
        out.append((obs.copy(), reward, term, trunc))
        if term or trunc:
            obs, _ = env.reset()
    return out


@pytest.mark.parametrize("kwargs", [{}, {"action_type": "multidiscrete", "reward_mode": "mixed"}])
def test_world_env_passes_gymnasium_and_sb3_checkers(kwargs) -> None:
    env = gym.make(envs.WORLD_ENV_ID, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        gym_check_env(env.unwrapped)
    sb3_check_env(gym.make(envs.WORLD_ENV_ID, **kwargs).unwrapped, warn=True)


def test_same_seed_same_trajectories_single() -> None:
    a = rollout_single(make_env(), seed=7, n_steps=300)
    b = rollout_single(make_env(), seed=7, n_steps=300)
    c = rollout_single(make_env(), seed=8, n_steps=300)
    assert all(np.array_equal(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a, b))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_same_seed_same_trajectories_vector() -> None:
    def run(seed: int) -> list[np.ndarray]:
        venv = make_vector_env(16)
        obs, _ = venv.reset(seed=seed)
        rng = np.random.default_rng(seed)
        out = [obs]
        for _ in range(60):
            obs, reward, term, trunc, _ = venv.step(rng.integers(0, 80, 16))
            out += [obs, reward, term, trunc]
        return out

    assert all(np.array_equal(x, y) for x, y in zip(run(3), run(3)))
    assert not all(np.array_equal(x, y) for x, y in zip(run(3), run(4)))


def test_vector_env_of_one_matches_single_env_first_episode() -> None:
    single, venv = make_env(), make_vector_env(1)
    obs_s, _ = single.reset(seed=11)
    obs_v, _ = venv.reset(seed=11)
    assert np.array_equal(obs_s, obs_v[0])
    rng = np.random.default_rng(0)
    done = False
    while not done:
        action = int(rng.integers(80))
        obs_s, r_s, te_s, tr_s, _ = single.step(action)
        obs_v, r_v, te_v, tr_v, _ = venv.step(np.array([action]))
        assert np.array_equal(obs_s, obs_v[0]) and r_s == r_v[0] and (te_s, tr_s) == (te_v[0], tr_v[0])
        done = te_s or tr_s


def test_termination_is_churn_and_truncation_is_the_horizon() -> None:
    venv = make_vector_env(256)
    venv.reset(seed=1)
    rng = np.random.default_rng(1)
    seen_term = seen_trunc = 0
    for _ in range(40):
        _, reward, term, trunc, info = venv.step(rng.integers(0, 80, 256))
        valid = info["_churned"]
        assert np.array_equal(term[valid], info["churned"][valid])
        assert np.all(info["day"][trunc] >= 90) and not np.any(term & trunc)  # the window is [0, H)
        returned = valid & ~term & ~trunc
        assert np.all(info["day"][returned] < 90)
        np.testing.assert_array_equal(reward[valid], returned[valid].astype(np.float32))  # retention mode
        seen_term, seen_trunc = seen_term + term.sum(), seen_trunc + trunc.sum()
    assert seen_term > 0 and seen_trunc > 0


def test_next_step_autoreset_step_by_step() -> None:
    venv = make_vector_env(64, autoreset_mode=AutoresetMode.NEXT_STEP)
    venv.reset(seed=2)
    rng = np.random.default_rng(2)
    prev_done = np.zeros(64, dtype=bool)
    for _ in range(30):
        obs, reward, term, trunc, info = venv.step(rng.integers(0, 80, 64))
        # slots that ended last step now hold a fresh shopper: empty history, reward 0, no flags
        assert np.all(obs[prev_done, 0] == 0.0)
        assert np.all(reward[prev_done] == 0.0) and not np.any(term[prev_done] | trunc[prev_done])
        assert np.array_equal(info["_click"], ~prev_done)
        assert np.all(obs[~prev_done, 0] > 0.0)  # everyone else has at least one visit now
        prev_done = term | trunc


def test_same_step_autoreset_returns_final_obs() -> None:
    venv = make_vector_env(64, autoreset_mode="SameStep")
    venv.reset(seed=4)
    rng = np.random.default_rng(4)
    ended = 0
    for _ in range(30):
        obs, _, term, trunc, info = venv.step(rng.integers(0, 80, 64))
        done = term | trunc
        if done.any():
            ended += done.sum()
            assert np.array_equal(info["_final_obs"], done)
            assert np.all(obs[done, 0] == 0.0)  # already the next shopper
            assert all(info["final_obs"][i][0] > 0.0 for i in np.flatnonzero(done))
    assert ended > 0


def test_sb3_adapter_fills_terminal_observation_and_truncation_flag() -> None:
    venv = ShopperSB3VecEnv(make_vector_env(128, autoreset_mode="SameStep"))
    venv.seed(5)
    venv.reset()
    rng = np.random.default_rng(5)
    saw_truncated = saw_churned = False
    for _ in range(40):
        venv.step_async(rng.integers(0, 80, 128))
        obs, reward, done, infos = venv.step_wait()
        assert obs.shape == (128, 31) and reward.shape == (128,) and len(infos) == 128
        for i in np.flatnonzero(done):
            assert infos[i]["terminal_observation"].shape == (31,)
            assert infos[i]["TimeLimit.truncated"] == (not infos[i]["churned"])
            saw_truncated |= infos[i]["TimeLimit.truncated"]
            saw_churned |= infos[i]["churned"]
        assert all("terminal_observation" not in infos[i] for i in np.flatnonzero(~done))
    assert saw_truncated and saw_churned
    with pytest.raises(ValueError, match="autoreset_mode=SAME_STEP"):
        ShopperSB3VecEnv(make_vector_env(2))


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        (80, ValueError, r"action 80 is not in Discrete\(80\)"),
        (-1, ValueError, r"action -1 is not in Discrete\(80\)"),
        (1.5, ValueError, r"actions must be integers, got dtype float64"),
        ([1, 2], ValueError, r"actions must have shape \(1,\)"),
    ],
)
def test_invalid_actions_raise(action, error, message) -> None:
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(error, match=message):
        env.step(action)


def test_an_invalid_action_changes_nothing() -> None:
    env, fresh = make_env(), make_env()
    env.reset(seed=3)
    fresh.reset(seed=3)
    with pytest.raises(ValueError, match="not in Discrete"):
        env.step(80)
    (obs, *rest), (obs_fresh, *rest_fresh) = env.step(5), fresh.step(5)
    assert np.array_equal(obs, obs_fresh) and rest == rest_fresh


def test_invalid_vector_and_multidiscrete_actions_raise() -> None:
    venv = make_vector_env(4)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must be integers, got dtype float"):
        venv.step(np.zeros(4))
    with pytest.raises(ValueError, match=r"actions must have shape \(4,\)"):
        venv.step(np.zeros(3, dtype=int))
    env = make_env(action_type="multidiscrete")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action \[20, 0\] is not in MultiDiscrete\(\[20 4\]\)"):
        env.step(np.array([20, 0]))


def test_stepping_after_the_end_needs_a_reset() -> None:
    env = make_env()
    with pytest.raises(ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, term, trunc, _ = env.step(0)
        done = term or trunc
    with pytest.raises(ResetNeeded, match="call reset"):
        env.step(0)


def test_reward_modes_follow_their_formulas() -> None:
    cfg = RewardConfig("mixed", revenue_scale=40.0, retention_weight=0.25)
    venv = make_vector_env(256, reward_mode="mixed", revenue_scale=40.0, retention_weight=0.25)
    venv.reset(seed=9)
    rng = np.random.default_rng(9)
    for _ in range(10):
        _, reward, term, trunc, info = venv.step(rng.integers(0, 80, 256))
        ok = info["_spend"]
        returned = (~term & ~trunc).astype(np.float32)
        expected = 0.25 * returned + 0.75 * (info["spend"] - info["coupon_cost"] - info["cogs"]) / 40.0
        np.testing.assert_allclose(reward[ok], expected[ok], rtol=1e-5)
    assert cfg.mode == "mixed"
    with pytest.raises(ValueError, match="reward mode 'clicks' is not one of"):
        RewardConfig("clicks")
    with pytest.raises(ValueError, match="retention_weight must be in"):
        RewardConfig("mixed", retention_weight=2.0)


def test_profit_reward_on_a_hand_made_outcome() -> None:
    """Spend 100, coupon cost 10, cost of goods 55: profit 35, i.e. 0.875 baskets of 40."""
    outcome = VisitOutcome(
        click=np.array([True, False]),
        purchase=np.array([True, False]),
        redeemed=np.array([True, False]),
        spend=np.array([100.0, 0.0]),
        coupon_cost=np.array([10.0, 0.0]),
        cogs=np.array([55.0, 0.0]),
        gap_days=np.array([5.0, np.inf]),
        churned=np.array([False, True]),
    )
    returned = np.array([True, False])
    np.testing.assert_allclose(RewardConfig("profit", revenue_scale=40.0)(outcome, returned), [0.875, 0.0])
    np.testing.assert_allclose(
        RewardConfig("mixed", revenue_scale=40.0, retention_weight=0.2)(outcome, returned),
        [0.2 + 0.8 * 0.875, 0.0],
        rtol=1e-6,
    )
    assert RewardConfig("profit")(outcome, returned).dtype == np.float32


def test_the_logs_scale_makes_profit_weigh_as_much_as_retention_on_the_logs() -> None:
    """S = mean profit / return share, so that the logged visits' mean profit / S equals their return share."""
    rng = np.random.default_rng(0)
    profit, returned = rng.gamma(2.0, 1.5, 500) * (rng.random(500) < 0.3), rng.random(500) < 0.7
    scale = logged_revenue_scale(profit, returned)
    assert scale == pytest.approx(profit.mean() / returned.mean())
    assert np.mean(profit / scale) == pytest.approx(returned.mean())
    # the mixed reward at w = 0.5 then gives both terms the same mean on the logs
    assert logged_revenue_scale(np.array([2.0, 0.0, 4.0, -1.0]), np.array([1, 0, 1, 1])) == pytest.approx(1.25 / 0.75)


@pytest.mark.parametrize(
    ("profit", "returned", "match"),
    [
        ([], [], "no logged visits whose return within the horizon is known"),
        ([1.0, -2.0], [1, 1], r"mean profit is -0\.5, not > 0"),
        ([1.0, 2.0], [0, 0], "none of the 2 logged visits is followed by a return"),
        ([1.0, 2.0], [1], "1-d of one length"),
    ],
)
def test_the_logs_scale_refuses_logs_that_give_none(profit, returned, match) -> None:
    with pytest.raises(ValueError, match=match) as info:
        logged_revenue_scale(np.array(profit), np.array(returned))
    assert "1-d" in match or "set revenue_scale to a currency amount instead" in str(info.value)


def test_the_world_v1_reward_name_says_it_was_renamed() -> None:
    from retentionrl.agents.config import TrainConfig

    with pytest.raises(ValueError, match=r"reward mode 'net_revenue' was renamed to 'profit' \(world v2\)"):
        RewardConfig("net_revenue")
    with pytest.raises(ValueError, match="renamed to 'profit'"):
        make_vector_env(4, reward_mode="net_revenue")
    with pytest.raises(ValueError, match="renamed to 'profit'"):
        TrainConfig(reward_mode="net_revenue")


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_sb3_trains_on_the_batched_world_env(algo: str, tmp_path) -> None:
    from stable_baselines3 import DQN, PPO

    venv = ShopperSB3VecEnv(make_vector_env(8, autoreset_mode="SameStep"))
    if algo == "ppo":
        model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu")
    else:
        model = DQN("MlpPolicy", venv, learning_starts=64, buffer_size=1_000, train_freq=4, seed=0, device="cpu")
    model.learn(total_timesteps=400)
    assert model.num_timesteps >= 400
    obs = venv.reset()
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (8,) and np.all((actions >= 0) & (actions < 80))


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_sb3_trains_on_the_registered_single_env(algo: str) -> None:
    from stable_baselines3 import DQN, PPO

    env = gym.make(envs.WORLD_ENV_ID)
    cls = PPO if algo == "ppo" else DQN
    extra = {"n_steps": 64, "batch_size": 32} if algo == "ppo" else {"learning_starts": 50}
    model = cls("MlpPolicy", env, seed=0, device="cpu", **extra)
    model.learn(total_timesteps=300)
    assert model.num_timesteps >= 300
