"""Gymnasium environments over any shopper simulator; importing this registers the ids.

=============================  =============================================================
id                             simulator
=============================  =============================================================
``retentionrl/WorldShopper-v0``  the ground-truth world
``retentionrl/Shopper-v0``       a fitted learned simulator: ``checkpoint=DIR`` is required
=============================  =============================================================

Both have the same spaces, so one policy runs on both::

    import gymnasium as gym, retentionrl.envs
    env = gym.make("retentionrl/WorldShopper-v0", reward_mode="mixed")
    venv = gym.make_vec("retentionrl/Shopper-v0", num_envs=1024, checkpoint="runs/sim",
                        vectorization_mode="vector_entry_point")

The stable-baselines3 adapter is :class:`retentionrl.envs.sb3.ShopperSB3VecEnv` (imported on its own,
so that importing ``envs`` does not load stable-baselines3 and torch).
"""

from __future__ import annotations

import gymnasium

from retentionrl.envs.reward import REWARD_MODES, RewardConfig
from retentionrl.envs.shopper_env import ShopperEnv
from retentionrl.envs.vector_env import ShopperVectorEnv

WORLD_ENV_ID = "retentionrl/WorldShopper-v0"
LEARNED_ENV_ID = "retentionrl/Shopper-v0"

if WORLD_ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=WORLD_ENV_ID,
        entry_point="retentionrl.envs.factory:make_env",
        vector_entry_point="retentionrl.envs.factory:make_vector_env",
        kwargs={"simulator": "world"},
    )
if LEARNED_ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=LEARNED_ENV_ID,
        entry_point="retentionrl.envs.factory:make_learned_env",
        vector_entry_point="retentionrl.envs.factory:make_learned_vector_env",
    )

__all__ = [
    "LEARNED_ENV_ID",
    "REWARD_MODES",
    "WORLD_ENV_ID",
    "RewardConfig",
    "ShopperEnv",
    "ShopperVectorEnv",
]
