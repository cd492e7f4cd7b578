"""Building environments by name: the entry points behind the registered ids.

``simulator`` is ``"world"`` for the ground-truth world (:class:`GroundTruthWorld` with
the default :class:`WorldConfig`) or the directory of a fitted learned simulator (its
``model.safetensors`` and ``config.json``, from ``retentionrl simulator fit``) or of an
ensemble of them (split mode; shared mode with a ``disagreement_penalty`` > 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from gymnasium.vector import AutoresetMode

from retentionrl.envs.reward import RewardConfig
from retentionrl.envs.shopper_env import ShopperEnv
from retentionrl.envs.vector_env import ShopperVectorEnv
from retentionrl.simulators.interface import ShopperSimulator

if TYPE_CHECKING:  # typing.Unpack is Python >= 3.11; it is only used in annotations, never evaluated
    from typing import Unpack

WORLD = "world"


class EnvOptions(TypedDict, total=False):
    """The keyword options of :func:`make_env` besides ``simulator``."""

    reward_mode: str
    revenue_scale: float
    retention_weight: float
    action_type: str
    device: str
    disagreement_penalty: float


class VectorEnvOptions(EnvOptions, total=False):
    """The keyword options of :func:`make_vector_env` besides ``num_envs`` and ``simulator``."""

    autoreset_mode: AutoresetMode | str


def load_simulator(
    simulator: str | Path | ShopperSimulator, device: str = "auto", ensemble_mode: str = "split"
) -> ShopperSimulator:
    """A simulator from ``"world"``, a learned-simulator directory (or an ensemble's, in
    ``ensemble_mode``: :mod:`retentionrl.simulators.learned.ensemble`), or an instance (as is)."""
    if isinstance(simulator, ShopperSimulator):
        return simulator
    if str(simulator) == WORLD:
        from retentionrl.simulators.world.simulator import GroundTruthWorld

        return GroundTruthWorld()
    from retentionrl.simulators.learned.ensemble import load_ensemble

    return load_ensemble(Path(simulator), device=device, mode=ensemble_mode)


def make_env(
    simulator: str | Path | ShopperSimulator = WORLD,
    reward_mode: str = "retention",
    revenue_scale: float = 50.0,
    retention_weight: float = 0.5,
    action_type: str = "discrete",
    device: str = "auto",
    disagreement_penalty: float = 0.0,
) -> ShopperEnv:
    """A single-shopper env (arguments as in :class:`ShopperEnv` and :class:`RewardConfig`; an
    ensemble's folder loads in shared mode when ``disagreement_penalty`` > 0)."""
    reward = RewardConfig(reward_mode, revenue_scale, retention_weight)
    sim = load_simulator(simulator, device, _ensemble_mode(disagreement_penalty))
    return ShopperEnv(sim, reward, action_type, disagreement_penalty)


def make_vector_env(
    num_envs: int,
    simulator: str | Path | ShopperSimulator = WORLD,
    reward_mode: str = "retention",
    revenue_scale: float = 50.0,
    retention_weight: float = 0.5,
    action_type: str = "discrete",
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    device: str = "auto",
    disagreement_penalty: float = 0.0,
) -> ShopperVectorEnv:
    """A batched env of ``num_envs`` shoppers stepped in one simulator call (an ensemble's
    folder loads in shared mode when ``disagreement_penalty`` > 0)."""
    reward = RewardConfig(reward_mode, revenue_scale, retention_weight)
    sim = load_simulator(simulator, device, _ensemble_mode(disagreement_penalty))
    return ShopperVectorEnv(sim, num_envs, reward, action_type, autoreset_mode, disagreement_penalty)


def _ensemble_mode(disagreement_penalty: float) -> str:
    """How an ensemble's folder loads: shared (every member holds every shopper, so they
    disagree about the same visits) for a penalty > 0, else split."""
    return "shared" if disagreement_penalty > 0 else "split"


def make_learned_env(checkpoint: str | Path, **options: Unpack[EnvOptions]) -> ShopperEnv:
    """Entry point of ``retentionrl/Shopper-v0``: :func:`make_env` over a fitted simulator."""
    return make_env(simulator=Path(checkpoint), **options)


def make_learned_vector_env(
    num_envs: int, checkpoint: str | Path, **options: Unpack[VectorEnvOptions]
) -> ShopperVectorEnv:
    """Vector entry point of ``retentionrl/Shopper-v0``."""
    return make_vector_env(num_envs, simulator=Path(checkpoint), **options)
