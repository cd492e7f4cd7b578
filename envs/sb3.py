"""stable-baselines3 on the batched env: a ``VecEnv`` over one :class:`ShopperVectorEnv`.

stable-baselines3 expects the *same-step* autoreset convention: when a shopper's episode
ends, ``step_wait`` returns the next shopper's first observation, ``done = True``, and in
that shopper's info the ended episode's last observation as ``terminal_observation`` and
``TimeLimit.truncated = True`` when the horizon, not churn, ended it (so that PPO and DQN
bootstrap the value of a shopper who is still active). The adapter runs the vector env in
``SAME_STEP`` mode and translates; no per-shopper env objects exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from retentionrl.envs.transition import flat_actions
from retentionrl.envs.vector_env import ShopperVectorEnv

INFO_KEYS: tuple[str, ...] = (
    "click",
    "purchase",
    "redeemed",
    "spend",
    "coupon_cost",
    "cogs",
    "gap_days",
    "churned",
    "day",
)
"""Per-visit outcomes copied into each shopper's info dict (for custom TensorBoard metrics)."""


class ShopperSB3VecEnv(VecEnv):
    """A stable-baselines3 ``VecEnv`` backed by one batched :class:`ShopperVectorEnv`.

    :param env: a vector env in ``SAME_STEP`` autoreset mode.

    After each step, ``last_actions`` (flat action indices, whatever the action type),
    ``last_info`` (the vector env's dict of arrays) and ``last_done`` hold that step, for
    callbacks that aggregate without per-shopper loops.
    """

    def __init__(self, env: ShopperVectorEnv) -> None:
        if env.metadata["autoreset_mode"] != AutoresetMode.SAME_STEP:
            raise ValueError("ShopperSB3VecEnv needs a ShopperVectorEnv made with autoreset_mode=SAME_STEP")
        self.env = env
        self._actions: np.ndarray | None = None
        self.last_actions = np.zeros(env.num_envs, dtype=np.int64)
        self.last_info: dict[str, np.ndarray] = {}
        self.last_done = np.zeros(env.num_envs, dtype=bool)
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def reset(self) -> np.ndarray:
        """Fresh shoppers in every slot; uses the seed given to :meth:`seed`, if any."""
        obs, _ = self.env.reset(seed=self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        self.last_actions = flat_actions(self.env.simulator, self._actions, self.env.action_type, self.num_envs)
        self._actions = None
        done = terminated | truncated
        self.last_info, self.last_done = info, done
        columns = {key: info[key].tolist() for key in INFO_KEYS}
        infos: list[dict[str, Any]] = [dict(zip(INFO_KEYS, row)) for row in zip(*columns.values())]
        for i in np.flatnonzero(done):
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, reward, done, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute, once per selected slot (all slots share one env)."""
        return [getattr(self.env, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    def _get_indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)
