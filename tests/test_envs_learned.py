"""``retentionrl/Shopper-v0``: the same env contract over a fitted learned simulator."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from retentionrl import envs
from retentionrl.envs.factory import make_vector_env
from retentionrl.envs.sb3 import ShopperSB3VecEnv
from retentionrl.interactions.io import read_events
from retentionrl.simulators.learned.fit import FitConfig, fit_simulator
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sim")
    write_world_logs(WorldConfig(), 400, 120, 0, folder / "logs.parquet")
    fit_simulator(read_events(folder / "logs.parquet", "events"), FitConfig(epochs=1, device="cpu"), folder / "model")
    return folder / "model"


def test_learned_env_passes_both_checkers_with_the_worlds_spaces(checkpoint: Path) -> None:
    env = gym.make(envs.LEARNED_ENV_ID, checkpoint=checkpoint)
    world = gym.make(envs.WORLD_ENV_ID)
    assert env.observation_space == world.observation_space and env.action_space == world.action_space
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped)
    sb3_check_env(gym.make(envs.LEARNED_ENV_ID, checkpoint=checkpoint).unwrapped, warn=True)


def test_learned_vector_env_is_seeded_and_ends_shoppers_on_their_own(checkpoint: Path) -> None:
    def run(seed: int) -> list[np.ndarray]:
        venv = gym.make_vec(
            envs.LEARNED_ENV_ID, num_envs=32, checkpoint=checkpoint, vectorization_mode="vector_entry_point"
        )
        out = [venv.reset(seed=seed)[0]]
        rng = np.random.default_rng(seed)
        for _ in range(30):
            obs, reward, term, trunc, _ = venv.step(rng.integers(0, 80, 32))
            out += [obs, reward, term, trunc]
        return out

    a, b = run(1), run(1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    ended = np.stack(a[3::4]) | np.stack(a[4::4])  # terminated | truncated per step
    assert ended.any() and not ended.all(axis=1).any()  # shoppers end at different steps


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_sb3_trains_in_the_learned_simulator(checkpoint: Path, algo: str) -> None:
    venv = ShopperSB3VecEnv(make_vector_env(8, simulator=checkpoint, autoreset_mode="SameStep", device="cpu"))
    if algo == "ppo":
        model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu")
    else:
        model = DQN("MlpPolicy", venv, learning_starts=64, buffer_size=1_000, seed=0, device="cpu")
    model.learn(total_timesteps=400)
    assert model.num_timesteps >= 400
