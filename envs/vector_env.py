"""N shoppers stepped together in ONE simulator call: a native ``gymnasium.vector.VectorEnv``."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from retentionrl.core.checks import require_int
from retentionrl.envs.reward import RewardConfig
from retentionrl.envs.transition import (
    check_disagreement_penalty,
    flat_actions,
    single_action_space,
    single_observation_space,
    visit_step,
)
from retentionrl.simulators.interface import ShopperSimulator


class ShopperVectorEnv(VectorEnv):
    """``num_envs`` shoppers, each its own episode, stepped in one batched simulator call.

    Spaces, rewards, termination (churn) and truncation (horizon) are those of
    :class:`retentionrl.envs.shopper_env.ShopperEnv`, batched with ``batch_space``. Shoppers end on
    their own steps and are auto-reset (a fresh shopper drawn into the slot) by
    ``autoreset_mode``:

    * ``NEXT_STEP`` (Gymnasium's default): the step *after* a shopper's episode ends
      returns the new shopper's first observation with reward 0 and both flags false; the
      action given for that slot is ignored.
    * ``SAME_STEP``: the step that ends an episode already returns the new shopper's first
      observation; the last observation of the ended episode is in ``info["final_obs"]``
      (an object array, set where ``info["_final_obs"]``).

    ``info`` is a dict of arrays (one entry per shopper, with a ``_key`` mask), holding the
    per-visit outcomes of :class:`~retentionrl.envs.shopper_env.ShopperEnv`.

    :param simulator: the shopper simulator; the env steps it with a batch of ``num_envs``.
    :param num_envs: number of shoppers, >= 1.
    :param reward: reward mode and scale (default ``retention``).
    :param action_type: ``"discrete"`` or ``"multidiscrete"``.
    :param autoreset_mode: ``AutoresetMode.NEXT_STEP`` or ``AutoresetMode.SAME_STEP``.
    :param disagreement_penalty: :math:`\\lambda \\ge 0`: each reward is lowered by
        :math:`\\lambda` x the ensemble's disagreement (:mod:`retentionrl.envs.transition`); > 0
        needs a shared-mode ensemble of at least 2 members.
    """

    def __init__(
        self,
        simulator: ShopperSimulator,
        num_envs: int,
        reward: RewardConfig | None = None,
        action_type: str = "discrete",
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        disagreement_penalty: float = 0.0,
    ) -> None:
        require_int("num_envs", num_envs, 1)
        self.disagreement_penalty = check_disagreement_penalty(simulator, disagreement_penalty)
        mode = AutoresetMode(autoreset_mode)
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"autoreset_mode must be NEXT_STEP or SAME_STEP, got {mode}")
        self.metadata = {"autoreset_mode": mode}
        self.simulator = simulator
        self.num_envs = int(num_envs)
        self.reward = reward if reward is not None else RewardConfig()
        self.action_type = action_type
        self.single_action_space = single_action_space(simulator, action_type)
        self.single_observation_space = single_observation_space(simulator)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._prev_done = np.zeros(self.num_envs, dtype=bool)
        self._all = np.ones(self.num_envs, dtype=bool)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw ``num_envs`` fresh shoppers; a ``seed`` reseeds the simulator."""
        super().reset(seed=seed)
        obs = self.simulator.reset(self.num_envs, seed=int(self.np_random.integers(2**63 - 1)))
        self._prev_done[:] = False
        return obs, {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One visit of every shopper; auto-resets as ``metadata["autoreset_mode"]`` says."""
        flat = flat_actions(self.simulator, actions, self.action_type, self.num_envs)
        out = visit_step(self.simulator, flat, self.reward, self.disagreement_penalty)
        obs, reward, terminated, truncated = out.obs, out.reward, out.terminated, out.truncated
        info: dict[str, Any] = {}
        for key, value in out.info.items():
            info[key], info[f"_{key}"] = value, self._all
        if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
            if self._prev_done.any():
                obs = self.simulator.replace(self._prev_done)
                reward[self._prev_done] = 0.0
                terminated = terminated & ~self._prev_done
                truncated = truncated & ~self._prev_done
                for key in out.info:
                    info[f"_{key}"] = ~self._prev_done
            self._prev_done = terminated | truncated
        else:
            done = terminated | truncated
            if done.any():
                final_obs = np.empty(self.num_envs, dtype=object)
                for i in np.flatnonzero(done):
                    final_obs[i] = obs[i]
                info["final_obs"], info["_final_obs"] = final_obs, done
                obs = self.simulator.replace(done)
        return obs, reward, terminated, truncated, info
