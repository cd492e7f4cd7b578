"""Resuming a run restores every piece of its state, each observably (issue 14).

For PPO and DQN on a tiny world config, a run is trained to ``HALF`` steps and
checkpointed; then

* **load**: a fresh process-state (generators reseeded, model rebuilt) restored from the
  checkpoint by ``train(..., resume=True)`` with nothing left to train must hold exactly
  what the run held when it saved: weights, optimizer state, replay buffer (DQN), step and
  update counters, and the torch / numpy / Python / action-space generators, down to the
  next numbers they draw;
* **resume**: training on from the checkpoint to ``FULL`` steps must give exactly what the
  uninterrupted run gives when it carries on in the same process to ``FULL`` -- with the
  one difference a resume makes by design (agents/training.py): the env is reseeded with
  ``seed + steps`` and starts fresh shoppers (the shoppers in flight are not saved), so the
  uninterrupted run does the same at ``HALF``.

Before saving, every generator is advanced by a few draws, so that its state is not the
one ``set_random_seed`` gives a fresh process: a generator that is not restored shows.
Removing any single restore from agents/checkpoint.py fails at least one test here.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm

from retentionrl.agents.checkpoint import latest_checkpoint, save_training_state
from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import train

HALF, FULL = 256, 512
TINY = dict(
    simulator="world",
    num_envs=8,
    device="cpu",
    net_arch=(32, 32),
    checkpoint_every=HALF,
    ppo_n_steps=32,
    ppo_batch_size=64,
    ppo_epochs=2,
    dqn_learning_starts=64,
    dqn_buffer_size=2_000,
    dqn_batch_size=32,
    dqn_gradient_steps=1,
    dqn_target_update=200,
)  # a target update every 25 calls: HALF / 8 = 32 calls is not a multiple
REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def config(algo: str, steps: int) -> TrainConfig:
    return TrainConfig(algo=algo, total_steps=steps, **TINY)


def advance_generators(model: BaseAlgorithm) -> None:
    """Draw from every generator a run may use, as an env or a user's code might."""
    torch.rand(7)
    np.random.rand(7)
    random.random()
    model.action_space.sample()


def next_draws(model: BaseAlgorithm) -> dict[str, object]:
    """The next numbers each generator draws; the generators are left as they were."""
    generator = model.action_space.np_random.bit_generator
    states = torch.get_rng_state(), np.random.get_state(), random.getstate(), generator.state
    draws = {
        "torch": torch.rand(3),
        "numpy": np.random.rand(3),
        "python": [random.random() for _ in range(3)],
        "action_space": [model.action_space.sample() for _ in range(3)],
    }
    torch.set_rng_state(states[0])
    np.random.set_state(states[1])
    random.setstate(states[2])
    generator.state = states[3]
    return draws


def snapshot(model: BaseAlgorithm) -> dict[str, object]:
    """Everything a resumed run must get back, copied out of the live model and process."""
    state = {
        "weights": {k: v.detach().clone() for k, v in model.policy.state_dict().items()},
        "optimizer": copy.deepcopy(model.policy.optimizer.state_dict()),
        "num_timesteps": model.num_timesteps,
        "n_updates": model._n_updates,
        "episode_num": model._episode_num,
        "torch_rng": torch.get_rng_state().clone(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "action_space_rng": copy.deepcopy(model.action_space.np_random.bit_generator.state),
        "next_draws": next_draws(model),
    }
    if isinstance(model, DQN):
        buffer = model.replay_buffer
        state["replay"] = {name: getattr(buffer, name).copy() for name in REPLAY_ARRAYS}
        state["replay_pos"], state["replay_full"] = buffer.pos, buffer.full
        state["n_calls"] = model._n_calls
    return state


def assert_same(a: object, b: object, where: str) -> None:
    """``a == b`` exactly, through dicts, lists, tuples, tensors and arrays; names the path."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"{where}: tensors differ"
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), f"{where}: arrays differ"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def carry_on(model: BaseAlgorithm, steps: int, seed: int) -> BaseAlgorithm:
    """The uninterrupted run: the same model, in the same process, trained on to ``steps``;
    at the switch the env is reseeded with ``seed + steps so far`` and fresh shoppers start,
    as a resume does (agents/training.py)."""
    model.get_env().seed(seed + model.num_timesteps)
    model._last_obs = None  # the next learn() resets the env: fresh shoppers
    model.learn(steps - model.num_timesteps, reset_num_timesteps=False, progress_bar=False)
    return model


@pytest.fixture(scope="module", params=["ppo", "dqn"])
def runs(request, tmp_path_factory) -> dict[str, dict[str, object]]:
    """Snapshots: at the save, after a bare load, at the end of the uninterrupted and of the
    resumed run."""
    algo = request.param
    out = Path(tmp_path_factory.mktemp(algo))
    model = train(config(algo, HALF), out, progress=False)
    advance_generators(model)
    save_training_state(model, out)  # replaces the checkpoint at HALF: now every generator is its own
    assert latest_checkpoint(out).name == f"step_{HALF:012d}"
    saved = snapshot(model)
    uninterrupted = snapshot(carry_on(model, FULL, config(algo, FULL).seed))
    random.seed(12_345)  # a new process's generators, whatever they are
    np.random.seed(12_345)
    torch.manual_seed(12_345)
    loaded = snapshot(train(config(algo, HALF), out, resume=True, progress=False))  # restores, trains 0 steps
    resumed = snapshot(train(config(algo, FULL), out, resume=True, progress=False))
    return {"saved": saved, "loaded": loaded, "uninterrupted": uninterrupted, "resumed": resumed}


def test_the_run_learned_before_its_checkpoint(runs) -> None:
    """A check of the test itself: HALF steps changed the weights and the optimizer state, so
    a fresh model (or optimizer) is not mistaken for a restored one."""
    assert runs["saved"]["num_timesteps"] == HALF and runs["saved"]["n_updates"] > 0
    assert runs["saved"]["optimizer"]["state"], "the optimizer took no step before the checkpoint"


@pytest.mark.parametrize("part", ["weights", "optimizer"])
def test_load_restores_weights_and_optimizer(runs, part: str) -> None:
    assert_same(runs["saved"][part], runs["loaded"][part], part)


def test_load_restores_step_and_update_counters(runs) -> None:
    for part in ("num_timesteps", "n_updates", "episode_num", "n_calls"):
        if part in runs["saved"]:
            assert_same(runs["saved"][part], runs["loaded"][part], part)


def test_load_restores_the_replay_buffer(runs) -> None:
    if "replay" not in runs["saved"]:
        pytest.skip("PPO keeps no replay buffer")
    for part in ("replay", "replay_pos", "replay_full"):
        assert_same(runs["saved"][part], runs["loaded"][part], part)
    assert runs["saved"]["replay_pos"] > 0


@pytest.mark.parametrize("part", ["torch_rng", "numpy_rng", "python_rng", "action_space_rng", "next_draws"])
def test_load_restores_every_generator(runs, part: str) -> None:
    assert_same(runs["saved"][part], runs["loaded"][part], part)


@pytest.mark.parametrize("part", ["weights", "optimizer", "num_timesteps", "replay", "rng"])
def test_resumed_run_equals_the_uninterrupted_run(runs, part: str) -> None:
    a, b = runs["uninterrupted"], runs["resumed"]
    assert a["num_timesteps"] == FULL
    names = {
        "rng": ["torch_rng", "numpy_rng", "python_rng", "action_space_rng", "next_draws"],
        "replay": ["replay", "replay_pos", "replay_full", "n_calls"],
    }.get(part, [part])
    if part == "replay" and "replay" not in a:
        pytest.skip("PPO keeps no replay buffer")
    for name in names:
        assert_same(a[name], b[name], name)
