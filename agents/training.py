"""Training PPO and DQN on the batched shopper env: build, train, checkpoint, resume, load.

A run folder ``OUT`` holds:

=======================  ==============================================================
``config.json``          the :class:`~retentionrl.agents.config.TrainConfig` (readable, reloadable)
``policy.safetensors``   the final policy's tensors
``policy.json``          what is needed to rebuild the policy: algo, spaces, epsilon,
                         deploy (greedy or stochastic); and its observation contract:
                         ``observation`` (:math:`H`, :math:`S` and the feature names of
                         :class:`~retentionrl.interactions.history.HistoryFeatures`),
                         ``arm_column`` and ``arm_type`` (what an arm label is in the logs),
                         so that a service or an export rebuilds its inputs from events
``tensorboard/``         SB3's scalars plus :mod:`retentionrl.agents.callbacks` retention metrics;
                         a resumed run continues the same TensorBoard run
``checkpoints/``         resumable checkpoints (:mod:`retentionrl.agents.checkpoint`)
``warm_start.json``      with a warm start: the teacher's name and how well it was cloned
=======================  ==============================================================

Resuming restores the model, optimizer, replay buffer, step count and random generators;
the env's shoppers in flight are not saved: the env is reseeded with ``seed + steps`` and
fresh shoppers start.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gymnasium import spaces
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecMonitor
from stable_baselines3.dqn.policies import DQNPolicy

from retentionrl.agents.callbacks import RetentionMetricsCallback
from retentionrl.agents.checkpoint import latest_checkpoint, load_training_state, save_training_state
from retentionrl.agents.config import ALGOS, DEPLOY_MODES, TrainConfig
from retentionrl.agents.policies import SB3Policy
from retentionrl.agents.warm_start import behaviour_clone
from retentionrl.core.actions import ActionSpace
from retentionrl.core.atomic import atomic_path, atomic_write_text
from retentionrl.core.errors import InputError
from retentionrl.core.policy import Policy
from retentionrl.envs.factory import make_vector_env
from retentionrl.envs.sb3 import ShopperSB3VecEnv
from retentionrl.simulators.interface import ShopperSimulator
from retentionrl.simulators.learned.simulator import resolve_device

CONFIG_FILE, POLICY_TENSORS, POLICY_META = "config.json", "policy.safetensors", "policy.json"
WARM_START_FILE = "warm_start.json"


class PeriodicCheckpoint(BaseCallback):
    """Save a resumable checkpoint every ``every`` environment steps."""

    def __init__(self, folder: Path, every: int) -> None:
        super().__init__()
        self.folder, self.every = folder, every
        self._next = every

    def _on_training_start(self) -> None:
        self._next = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self._next:
            save_training_state(self.model, self.folder)
            self._next += self.every
        return True


def make_training_env(config: TrainConfig, seed: int) -> ShopperSB3VecEnv:
    """The batched env of ``config`` as an SB3 ``VecEnv`` (same-step autoreset), seeded; with a
    ``disagreement_penalty`` > 0, over the simulator ensemble in shared mode, rewards penalised.

    :raises ValueError: a ``disagreement_penalty`` > 0 with a simulator that is not an
        ensemble of at least 2 learned members (the message names the field)."""
    env = ShopperSB3VecEnv(
        make_vector_env(
            config.num_envs,
            simulator=config.simulator,
            reward_mode=config.reward_mode,
            revenue_scale=config.revenue_scale,
            retention_weight=config.retention_weight,
            action_type=config.action_type,
            autoreset_mode="SameStep",
            device=config.device,
            disagreement_penalty=config.disagreement_penalty,
        )
    )
    env.seed(seed)
    return env


def build_model(config: TrainConfig, env: VecMonitor, tensorboard_log: str | None) -> BaseAlgorithm:
    """PPO or DQN with the config's hyperparameters."""
    algo_class: type[PPO | DQN] = PPO if config.algo == "ppo" else DQN
    return algo_class(
        "MlpPolicy",
        env,
        learning_rate=config.learning_rate,
        gamma=config.gamma,
        seed=config.seed,
        device=resolve_device(config.device),
        tensorboard_log=tensorboard_log,
        policy_kwargs={"net_arch": list(config.net_arch)},
        verbose=0,
        **config.algo_kwargs(),
    )


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    teacher: Policy | None = None,
) -> BaseAlgorithm:
    """Train (or, with ``resume``, continue) a run in ``out_dir``; returns the model.

    On resume the saved ``config.json`` rules, except ``total_steps`` (a run may be extended).

    :param teacher: the policy named by ``config.warm_start``, cloned into PPO before its
        first rollout (:mod:`retentionrl.agents.warm_start`; not again on resume). Required exactly when
        ``config.warm_start`` is set.
    """
    if bool(config.warm_start) != (teacher is not None):
        raise ValueError(
            "give a teacher policy exactly when config.warm_start names one "
            f"(warm_start={config.warm_start!r}, teacher={'given' if teacher else 'none'})"
        )
    out = Path(out_dir)
    checkpoint = latest_checkpoint(out) if resume else None
    if resume:
        if checkpoint is None:
            raise ValueError(f"{out}: no checkpoint to resume from (checkpoints/latest.json is missing)")
        saved = TrainConfig.from_json_file(out / CONFIG_FILE)
        config = TrainConfig(
            **{**json.loads(saved.to_json()), "total_steps": config.total_steps, "net_arch": saved.net_arch}
        )
    set_random_seed(config.seed)
    env = make_training_env(config, config.seed)
    model = build_model(config, VecMonitor(env), str(out / "tensorboard"))
    if checkpoint is not None:
        load_training_state(model, checkpoint)
        env.seed(config.seed + model.num_timesteps)
    else:
        out.mkdir(parents=True, exist_ok=True)
        if teacher is not None:
            assert isinstance(model, PPO)  # TrainConfig allows a warm start for PPO only
            fit = behaviour_clone(
                model, teacher, config.warm_start_visits, smoothing=config.warm_start_smoothing, seed=config.seed
            )
            atomic_write_text(out / WARM_START_FILE, json.dumps({"teacher": config.warm_start, **fit}, indent=2))
    atomic_write_text(out / CONFIG_FILE, config.to_json())
    remaining = config.total_steps - model.num_timesteps
    if remaining > 0:
        callbacks = CallbackList([RetentionMetricsCallback(env), PeriodicCheckpoint(out, config.checkpoint_every)])
        model.learn(
            remaining,
            callback=callbacks,
            progress_bar=progress,
            reset_num_timesteps=not resume,
            tb_log_name=config.algo,
        )
        save_training_state(model, out)
    save_policy(model, config, env.env.simulator, out)
    env.close()
    return model


def save_policy(model: BaseAlgorithm, config: TrainConfig, simulator: ShopperSimulator, out: Path) -> None:
    """Write the final policy (tensors + rebuild metadata with the simulator's action map:
    its arm labels in index order and coupon levels), atomically."""
    action_space = simulator.action_space
    card = getattr(simulator, "card", None)  # a learned simulator's arms are its logs' labels
    arms = card.arms if card is not None else range(action_space.n_arms)  # the world's groups are 0 .. n - 1
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.policy.state_dict().items()}
    with atomic_path(out / POLICY_TENSORS) as tmp:
        save_file(tensors, tmp)
    shape = model.observation_space.shape
    assert shape is not None  # a Box of observation vectors
    meta = {
        "algo": config.algo,
        "n_features": int(shape[0]),
        "n_arms": action_space.n_arms,
        "coupon_levels": list(action_space.coupon_levels),
        "arms": [str(a) for a in arms],
        "net_arch": list(config.net_arch),
        "epsilon": config.dqn_final_eps if config.algo == "dqn" else 0.0,
        "num_timesteps": int(model.num_timesteps),
        "deploy": config.deploy,
        "action_type": config.action_type,
        "arm_column": card.arm_column if card is not None else "rec_group",  # the world's arms are item groups
        "arm_type": "int" if all(isinstance(a, int | np.integer) for a in arms) else "str",
        "observation": {
            "horizon_days": float(simulator.horizon_days),
            "spend_scale": float(simulator.history.spend_scale),
            "features": list(simulator.history.names),
        },
    }
    atomic_write_text(out / POLICY_META, json.dumps(meta, indent=2))


def load_policy(run_dir: str | Path, device: str = "cpu", *, deploy: str | None = None) -> SB3Policy:
    """The trained policy of a run folder as a :class:`SB3Policy` (no pickle, no env needed).

    :param deploy: ``greedy`` or ``stochastic``; default the run's own (``policy.json``;
        folders written before it was recorded act stochastically, as they were trained).
    :raises InputError: naming the folder or file: not a policy folder, unreadable or
        incomplete ``policy.json``, tensors that are missing, corrupt or do not match it.
    """
    if deploy is not None and deploy not in DEPLOY_MODES:
        raise ValueError(f"deploy must be one of {list(DEPLOY_MODES)}, got {deploy!r}")
    run_dir = Path(run_dir)
    meta, action_space = read_policy_meta(run_dir)
    tensors_path = run_dir / POLICY_TENSORS
    try:
        tensors = load_file(tensors_path)
    except (OSError, SafetensorError) as exc:
        raise InputError(tensors_path, f"missing or unreadable policy tensors ({exc})") from None
    obs_space = spaces.Box(0.0, np.inf, (meta["n_features"],), np.float32)
    flat = spaces.Discrete(action_space.n_actions)
    policy: BasePolicy
    if meta["algo"] == "ppo":
        factorised = meta.get("action_type", "discrete") == "multidiscrete"
        act_space = spaces.MultiDiscrete([action_space.n_arms, action_space.n_coupons]) if factorised else flat
        policy = ActorCriticPolicy(obs_space, act_space, lambda _: 0.0, net_arch=list(meta["net_arch"]))
    else:
        policy = DQNPolicy(obs_space, flat, lambda _: 0.0, net_arch=list(meta["net_arch"]))
    try:
        policy.load_state_dict(tensors)
    except RuntimeError as exc:
        raise InputError(tensors_path, f"does not match {POLICY_META} ({exc})") from None
    mode = deploy if deploy is not None else meta.get("deploy", "stochastic")
    agent = SB3Policy(
        policy.to(resolve_device(device)), action_space, meta["epsilon"], name=meta["algo"], greedy=mode == "greedy"
    )
    agent.arms = tuple(meta["arms"]) if "arms" in meta else None  # folders written before it was recorded
    return agent


def _is_count(value: object) -> bool:
    """A JSON integer >= 1 (``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_positive_number(value: object) -> bool:
    """A finite JSON number > 0 (``true`` is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf")


_META_KEYS: dict[str, tuple[Callable[[object], bool], str]] = {
    "algo": (lambda v: v in ALGOS, f"one of {list(ALGOS)}"),
    "n_features": (_is_count, "a positive integer"),
    "n_arms": (_is_count, "a positive integer"),
    "coupon_levels": (lambda v: isinstance(v, list), "a list of discounts"),
    "net_arch": (lambda v: isinstance(v, list) and all(map(_is_count, v)), "a list of positive integers"),
    "epsilon": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0.0 <= v <= 1.0,
        "a number in [0, 1]",
    ),
}
"""The keys of ``policy.json`` that :func:`load_policy` reads, with what each must be."""
_OPTIONAL_META_KEYS: dict[str, tuple[str | None, ...]] = {
    "deploy": DEPLOY_MODES,
    "action_type": ("discrete", "multidiscrete"),
    "arm_column": ("rec_group", "rec_item", None),
    "arm_type": ("int", "str"),
}
"""Keys that older run folders lack, with their allowed values (``arms`` too: checked below)."""


def read_policy_meta(run_dir: str | Path) -> tuple[dict, ActionSpace]:
    """The checked ``policy.json`` of a run folder and the action space it names.

    :raises InputError: naming the folder (no ``policy.json``) or the file (not JSON, not an
        object, a key missing or of the wrong kind).
    """
    run_dir = Path(run_dir)
    path = run_dir / POLICY_META
    if not path.is_file():
        raise InputError(run_dir, f"not a trained policy folder (no {POLICY_META})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable policy metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise InputError(path, f"expected a JSON object, got {type(meta).__name__}")
    missing = [key for key in _META_KEYS if key not in meta]
    if missing:
        raise InputError(path, f"missing key(s) {missing}: not the {POLICY_META} of a retentionrl train run")
    for key, (valid, expected) in _META_KEYS.items():
        if not valid(meta[key]):
            raise InputError(path, f"key {key!r}: expected {expected}, got {meta[key]!r}")
    for key, allowed in _OPTIONAL_META_KEYS.items():
        if key in meta and meta[key] not in allowed:
            raise InputError(path, f"key {key!r}: expected one of {list(allowed)}, got {meta[key]!r}")
    try:
        space = ActionSpace(meta["n_arms"], tuple(meta["coupon_levels"]))
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"key 'coupon_levels': {exc}") from None
    observation = meta.get("observation", {})
    if not (
        isinstance(observation, dict)
        and all(_is_positive_number(observation.get(k, 1.0)) for k in ("horizon_days", "spend_scale"))
    ):
        raise InputError(
            path, f"key 'observation': expected positive horizon_days and spend_scale, got {observation!r}"
        )
    arms = meta.get("arms", [])
    if "arms" in meta and not (
        isinstance(arms, list) and len(arms) == space.n_arms and all(isinstance(a, str) for a in arms)
    ):
        raise InputError(path, f"key 'arms': expected {space.n_arms} arm labels (strings), got {arms!r}")
    return meta, space
