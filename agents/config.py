"""Hyperparameters of a training run, one documented dataclass saved as ``config.json``.

The defaults are starting points for the shopper envs: episodes are short (a shopper's
visits within the horizon, typically 2-20 steps), so the discount is 0.95 (a visit ~20
visits ahead weighs about a third) and rollouts gather many shoppers at once from the
batched env.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from retentionrl.core.checks import require_int, require_positive_ints
from retentionrl.core.errors import InputError
from retentionrl.core.records import from_plain
from retentionrl.envs.reward import check_reward_mode

ALGOS: tuple[str, ...] = ("ppo", "dqn")
PPO_HEADS: tuple[str, ...] = ("flat", "factorised")
DEPLOY_MODES: tuple[str, ...] = ("greedy", "stochastic")
_SB3_NAMES = {
    "ppo_epochs": "n_epochs",
    "dqn_target_update": "target_update_interval",
    "dqn_final_eps": "exploration_final_eps",
}
"""Algorithm fields whose stable-baselines3 name is not the field's name without its prefix."""


@dataclass(frozen=True)
class TrainConfig:
    """A training run (CleanRL's ``Args``, saved beside every run)."""

    algo: str = "ppo"
    """ppo or dqn"""
    simulator: str = "world"
    """'world' (ground truth) or the folder of a fitted learned simulator"""
    total_steps: int = 200_000
    """environment steps (shopper-visits) to train for"""
    num_envs: int = 64
    """shoppers stepped together in the batched env"""
    seed: int = 0
    """seeds the env, the networks and every random generator"""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda"""
    reward_mode: str = "retention"
    """retention, profit or mixed (see retentionrl.envs.reward)"""
    revenue_scale: float = 50.0
    """currency per reward unit in the profit and mixed modes"""
    retention_weight: float = 0.5
    """weight of retention in the mixed mode"""
    disagreement_penalty: float = 0.0
    """lambda >= 0: the reward of each visit is reduced by lambda x the ensemble's disagreement (MOPO,
    Yu et al. 2020), the spread of its members' predicted purchase and return probabilities
    (retentionrl.simulators.learned.ensemble); needs a simulator ensemble of >= 2 members, run in
    shared mode; 0: off"""
    gamma: float = 0.95
    """discount per visit"""
    learning_rate: float = 3e-4
    """Adam step size"""
    net_arch: tuple[int, ...] = (64, 64)
    """hidden layers of the policy / Q network"""
    deploy: str = "greedy"
    """greedy (the argmax action; DQN without epsilon) or stochastic (the policy as trained):
    how the saved policy acts, exactly as its action_probs say"""
    warm_start: str = ""
    """PPO: name of the policy cloned before training (retentionrl.agents.warm_start), '' for none;
    the policy itself is handed to retentionrl.agents.training.train"""
    warm_start_visits: int = 50_000
    """PPO: shopper-visits of the teacher's rollout that the warm start clones"""
    warm_start_smoothing: float = 0.0
    """PPO: uniform share mixed into the cloned target, in [0, 1) (retentionrl.agents.warm_start)"""
    checkpoint_every: int = 50_000
    """environment steps between resumable checkpoints"""
    ppo_n_steps: int = 64
    """PPO: steps per env per rollout (rollout = n_steps x num_envs visits)"""
    ppo_batch_size: int = 512
    """PPO: minibatch size"""
    ppo_epochs: int = 4
    """PPO: passes over each rollout"""
    ppo_gae_lambda: float = 0.9
    """PPO: GAE lambda"""
    ppo_ent_coef: float = 0.01
    """PPO: entropy bonus, keeps coupons and arms explored"""
    ppo_head: str = "flat"
    """PPO: 'flat' (one softmax over the n_arms x n_coupons actions) or 'factorised' (a softmax
    over groups and one over coupons, independent given the state: the env's MultiDiscrete
    actions, so that the coupon is learned apart from the group)"""
    dqn_buffer_size: int = 100_000
    """DQN: replay buffer transitions"""
    dqn_learning_starts: int = 2_000
    """DQN: transitions collected before learning"""
    dqn_batch_size: int = 256
    """DQN: minibatch size"""
    dqn_train_freq: int = 1
    """DQN: batched env steps between gradient phases"""
    dqn_gradient_steps: int = 4
    """DQN: gradient steps per phase"""
    dqn_target_update: int = 2_000
    """DQN: environment steps between target-network updates"""
    dqn_exploration_fraction: float = 0.3
    """DQN: share of training over which epsilon decays"""
    dqn_final_eps: float = 0.05
    """DQN: final epsilon (also the epsilon of its action_probs)"""

    def algo_kwargs(self) -> dict[str, Any]:
        """The ``<algo>_*`` fields of the config's algorithm as keyword arguments of its
        stable-baselines3 class (``ppo_epochs`` is PPO's ``n_epochs``, ...); ``ppo_head`` shapes the
        env's action space instead, so it is not among them."""
        prefix = f"{self.algo}_"
        return {
            _SB3_NAMES.get(f.name, f.name.removeprefix(prefix)): getattr(self, f.name)
            for f in fields(self)
            if f.name.startswith(prefix) and f.name != "ppo_head"
        }

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {list(ALGOS)}, got {self.algo!r}")
        check_reward_mode(self.reward_mode)
        if self.warm_start and self.algo != "ppo":
            raise ValueError(f"warm_start clones into PPO's actor; algo is {self.algo!r}")
        if self.ppo_head not in PPO_HEADS:
            raise ValueError(f"ppo_head must be one of {list(PPO_HEADS)}, got {self.ppo_head!r}")
        if self.ppo_head == "factorised" and (self.algo != "ppo" or self.warm_start):
            raise ValueError("ppo_head 'factorised' is for PPO without a warm start (the clone targets the flat head)")
        if self.deploy not in DEPLOY_MODES:
            raise ValueError(f"deploy must be one of {list(DEPLOY_MODES)}, got {self.deploy!r}")
        require_positive_ints(
            **{
                name: getattr(self, name)
                for name in (
                    "total_steps",
                    "num_envs",
                    "checkpoint_every",
                    "warm_start_visits",
                    "ppo_n_steps",
                    "ppo_batch_size",
                    "ppo_epochs",
                    "dqn_buffer_size",
                    "dqn_batch_size",
                    "dqn_train_freq",
                    "dqn_gradient_steps",
                    "dqn_target_update",
                )
            }
        )
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not (math.isfinite(self.disagreement_penalty) and self.disagreement_penalty >= 0):
            raise ValueError(f"disagreement_penalty must be a finite number >= 0, got {self.disagreement_penalty!r}")
        require_int("dqn_learning_starts", self.dqn_learning_starts, 0)
        for name in ("gamma", "ppo_gae_lambda", "dqn_exploration_fraction", "dqn_final_eps", "warm_start_smoothing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        object.__setattr__(self, "net_arch", tuple(int(h) for h in self.net_arch))

    @property
    def action_type(self) -> str:
        """The env's action type: ``multidiscrete`` for the factorised PPO head, else ``discrete``."""
        return "multidiscrete" if self.algo == "ppo" and self.ppo_head == "factorised" else "discrete"

    def to_json(self) -> str:
        """Readable JSON of every field."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json_file(cls, path: str | Path) -> TrainConfig:
        """Read a saved config; unreadable JSON, unknown keys and values of the wrong kind or
        range are refused naming the file and the key (:func:`retentionrl.core.records.from_plain`)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(path, f"unreadable training config ({exc})") from None
        try:
            return from_plain(cls, data)
        except ValueError as exc:  # RecordError names the key; __post_init__ the value out of range
            raise InputError(path, str(exc)) from None
