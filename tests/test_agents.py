"""Agents: training writes retention metrics, resumes exactly where it stopped, loads safely."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from retentionrl.agents.checkpoint import AgentCheckpointError, latest_checkpoint
from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import load_policy, train

SMALL = dict(
    num_envs=16,
    device="cpu",
    ppo_n_steps=32,
    ppo_batch_size=128,
    ppo_epochs=2,
    dqn_learning_starts=200,
    dqn_buffer_size=5_000,
    dqn_gradient_steps=1,
)


def scalars(run: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for folder in sorted((run / "tensorboard").iterdir()):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0}).Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return out


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ppo")
    train(TrainConfig(algo="ppo", total_steps=2_048, checkpoint_every=1_024, **SMALL), out, progress=False)
    return out


def test_tensorboard_has_sb3_and_retention_scalars(ppo_run: Path) -> None:
    tags = scalars(ppo_run)
    for tag in (
        "retention/active_at_horizon",
        "retention/visits_per_shopper",
        "retention/profit_per_shopper",
        "retention/coupon_spend_per_shopper",
        "retention/mean_days_between_visits",
        "retention/coupon_rate",
        "train/value_loss",
        "rollout/ep_rew_mean",
    ):
        assert tag in tags, sorted(tags)
    assert all(0.0 <= v <= 1.0 for v in tags["retention/active_at_horizon"])
    assert all(v >= 1.0 for v in tags["retention/visits_per_shopper"])


def test_run_folder_has_readable_config_and_loadable_policy(ppo_run: Path) -> None:
    config = TrainConfig.from_json_file(ppo_run / "config.json")
    assert config.algo == "ppo" and config.total_steps == 2_048
    obs = np.random.default_rng(0).random((5, 31), dtype=np.float32)
    probs = load_policy(ppo_run, deploy="stochastic").action_probs(obs)
    assert probs.shape == (5, 80) and np.allclose(probs.sum(axis=1), 1.0) and np.all(probs > 0)
    greedy = load_policy(ppo_run).action_probs(obs)  # the run's own deployment: greedy by default
    np.testing.assert_array_equal(greedy, np.eye(80)[probs.argmax(axis=1)])


def test_factorised_ppo_head_gives_the_product_of_its_group_and_coupon_probabilities(tmp_path: Path) -> None:
    import torch

    model = train(
        TrainConfig(algo="ppo", ppo_head="factorised", total_steps=1_024, checkpoint_every=1_024, **SMALL),
        tmp_path,
        progress=False,
    )
    obs = np.random.default_rng(1).random((6, 31), dtype=np.float32)
    policy = load_policy(tmp_path, deploy="stochastic")
    probs = policy.action_probs(obs)
    assert probs.shape == (6, 80) and np.allclose(probs.sum(axis=1), 1.0)
    # SB3's own log-probability of (group, coupon) pairs, from the trained model itself
    pairs = np.stack([np.arange(6) % 20, np.arange(6) % 4], axis=1)
    with torch.no_grad():
        dist = model.policy.get_distribution(torch.as_tensor(obs))
        expected = dist.log_prob(torch.as_tensor(pairs)).exp().numpy()
    np.testing.assert_allclose(probs[np.arange(6), pairs[:, 0] * 4 + pairs[:, 1]], expected, rtol=1e-5)
    greedy = load_policy(tmp_path).action_probs(obs)
    np.testing.assert_array_equal(greedy.argmax(axis=1), probs.argmax(axis=1))
    with pytest.raises(ValueError, match="factorised' is for PPO without a warm start"):
        TrainConfig(algo="dqn", ppo_head="factorised")


def test_dqn_interrupted_and_resumed_continues_the_step_count(tmp_path: Path) -> None:
    out = tmp_path / "dqn"
    train(TrainConfig(algo="dqn", total_steps=1_024, checkpoint_every=512, **SMALL), out, progress=False)
    state = json.loads((latest_checkpoint(out) / "state.json").read_text())
    assert state["num_timesteps"] == 1_024
    model = train(TrainConfig(algo="dqn", total_steps=2_048, **SMALL), out, resume=True, progress=False)
    assert model.num_timesteps == 2_048
    assert model.replay_buffer.size() == min(2_048 // 16, 5_000 // 16)  # rows of 16 shoppers each
    assert [p.name for p in (out / "tensorboard").iterdir()] == ["dqn_1"]  # the same TensorBoard run
    steps = sorted(int(p.name.split("_")[1]) for p in (out / "checkpoints").glob("step_*"))
    assert steps == [512, 1_024, 1_536, 2_048]
    obs = np.zeros((3, 31), dtype=np.float32)
    probs = load_policy(out, deploy="stochastic").action_probs(obs)  # epsilon-greedy, as trained
    assert np.allclose(probs.sum(axis=1), 1.0) and np.allclose(probs.max(axis=1), 0.95 + 0.05 / 80)
    np.testing.assert_array_equal(load_policy(out).action_probs(obs), np.eye(80)[probs.argmax(axis=1)])


def test_resume_restores_weights_and_generators_exactly(tmp_path: Path) -> None:
    """Two resumes from the same checkpoint give identical models: nothing random leaks in."""
    base = tmp_path / "base"
    train(TrainConfig(algo="ppo", total_steps=1_024, checkpoint_every=1_024, **SMALL), base, progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(base, copy)
    a = train(TrainConfig(algo="ppo", total_steps=1_536, **SMALL), base, resume=True, progress=False)
    b = train(TrainConfig(algo="ppo", total_steps=1_536, **SMALL), copy, resume=True, progress=False)
    for (ka, va), (kb, vb) in zip(a.policy.state_dict().items(), b.policy.state_dict().items()):
        assert ka == kb and np.array_equal(va.numpy(), vb.numpy())


def test_corrupt_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(TrainConfig(algo="ppo", total_steps=512, checkpoint_every=512, **SMALL), out, progress=False)
    policy_file = latest_checkpoint(out) / "policy.safetensors"
    policy_file.write_bytes(policy_file.read_bytes()[:-100])
    with pytest.raises(AgentCheckpointError, match=r"policy.safetensors: missing, truncated or corrupt"):
        train(TrainConfig(algo="ppo", total_steps=1_024, **SMALL), out, resume=True, progress=False)


def test_resume_without_checkpoint_and_bad_config_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no checkpoint to resume from"):
        train(TrainConfig(**SMALL), tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="algo must be one of"):
        TrainConfig(algo="a2c")
    (tmp_path / "config.json").write_text(json.dumps({"algo": "ppo", "learning_rte": 0.1}))
    with pytest.raises(ValueError, match=r"config.json: \$: unknown field 'learning_rte' for TrainConfig"):
        TrainConfig.from_json_file(tmp_path / "config.json")


@pytest.mark.parametrize(
    ("algo", "fields", "attributes"),
    [
        ("ppo", {"ppo_n_steps": 24, "ppo_epochs": 3, "ppo_gae_lambda": 0.8}, {"n_steps": 24, "n_epochs": 3}),
        (
            "dqn",
            {"dqn_target_update": 123, "dqn_final_eps": 0.07, "dqn_learning_starts": 11},
            {"target_update_interval": 123, "exploration_final_eps": 0.07, "learning_starts": 11},
        ),
    ],
)
def test_algorithm_fields_reach_stable_baselines3(algo, fields, attributes) -> None:
    """Each ``<algo>_*`` field lands on the SB3 attribute it names (some under another name)."""
    from retentionrl.agents.training import build_model, make_training_env

    config = TrainConfig(algo=algo, simulator="world", num_envs=4, device="cpu", **fields)
    assert set(config.algo_kwargs()) >= set(attributes)
    model = build_model(config, make_training_env(config, 0), None)
    for name, value in attributes.items():
        assert getattr(model, name) == value, name
    if algo == "ppo":
        assert model.gae_lambda == 0.8
