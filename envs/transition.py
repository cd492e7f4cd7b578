"""One visit of every shopper in a batch: the mechanism both environments share.

:func:`visit_step` is the whole environment dynamics on top of a simulator: it steps the
simulator once for the batch (the simulator checks the actions) and derives the reward,
termination and truncation of each shopper:

* ``terminated`` = the shopper churned (will never come back);
* ``truncated`` = the shopper did not churn, but the next visit falls at or after day
  :math:`H` (the horizon), outside the window :math:`[0, H)`: the shopper is still active
  and a learner must bootstrap;
* ``returned`` = neither: the shopper's next visit lies in the window, day :math:`t < H`
  (:func:`retentionrl.interactions.horizon.returned_in_window`), so an episode's retention return is
  its return visits at days :math:`0 < t < H`, as :func:`retentionrl.simulators.rollout.evaluate_policy`
  and the off-policy trajectories count them (:mod:`retentionrl.interactions.horizon`).

Over an ensemble in shared mode (:class:`~retentionrl.simulators.learned.ensemble.SimulatorEnsemble`),
``info["disagreement"]`` holds the members' disagreement :math:`u` about each visit, and a
``disagreement_penalty`` :math:`\\lambda > 0` lowers each reward to :math:`r - \\lambda u`
(MOPO, Yu et al. 2020: the reward of a model-based offline RL agent penalised by the models'
uncertainty, so that it keeps to where the logs pin the models down).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from gymnasium import spaces

from retentionrl.envs.reward import RewardConfig
from retentionrl.interactions.horizon import in_window
from retentionrl.simulators.interface import ShopperSimulator
from retentionrl.simulators.learned.ensemble import SimulatorEnsemble

ACTION_TYPES: tuple[str, ...] = ("discrete", "multidiscrete")


class VisitStep(NamedTuple):
    """A batch step's results, each ``(n,)`` except ``obs`` ``(n, obs_dim)`` (a named tuple:
    built once per step, cheaply)."""

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict[str, np.ndarray]


def single_action_space(simulator: ShopperSimulator, action_type: str) -> spaces.Space:
    """``Discrete(n_arms * n_coupons)`` or ``MultiDiscrete([n_arms, n_coupons])``."""
    if action_type not in ACTION_TYPES:
        raise ValueError(f"action_type {action_type!r} is not one of {list(ACTION_TYPES)}")
    a = simulator.action_space
    if action_type == "discrete":
        return spaces.Discrete(a.n_actions)
    return spaces.MultiDiscrete([a.n_arms, a.n_coupons])


UNBOUNDED_FEATURES: frozenset[str] = frozenset({"log_visits", "days_since_first", "days_since_last", "log_spend"})
"""Observation features with no upper bound (counts and times); all others lie in [0, 1]."""


def single_observation_space(simulator: ShopperSimulator) -> spaces.Box:
    """A float32 ``Box`` of the simulator's observable features, each >= 0.

    Shares and rates are bounded by 1; counts and times are unbounded (the largest float32).
    """
    unbounded = np.array([name in UNBOUNDED_FEATURES for name in simulator.observation_names])
    high = np.where(unbounded, np.finfo(np.float32).max, 1.0).astype(np.float32)
    return spaces.Box(low=np.zeros_like(high), high=high, dtype=np.float32)


def flat_actions(simulator: ShopperSimulator, actions: np.ndarray, action_type: str, n: int) -> np.ndarray:
    """Flat action indices ``(n,)`` of a batch of actions of ``action_type``.

    Discrete actions are flat already and go to the simulator as they are: its ``step``
    checks every action it is given (:meth:`retentionrl.core.actions.ActionSpace.check`), the
    one check on the way. A multidiscrete batch is checked here, where an out-of-range
    pair can still be named, and encoded.

    :raises ValueError: a multidiscrete batch of the wrong shape, a non-integer dtype, or a
        pair outside the space; the message names the action and the space.
    """
    if action_type == "discrete":
        return actions
    a = simulator.action_space
    actions = np.asarray(actions)
    if actions.shape != (n, 2):
        raise ValueError(f"actions must have shape {(n, 2)}, got {actions.shape}")
    if actions.dtype.kind not in "iu":
        raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
    bad = (actions < 0).any(axis=1) | (actions[:, 0] >= a.n_arms) | (actions[:, 1] >= a.n_coupons)
    if bad.any():
        raise ValueError(f"action {actions[bad][0].tolist()} is not in MultiDiscrete([{a.n_arms} {a.n_coupons}])")
    return a.encode(actions[:, 0], actions[:, 1], check=False)


def check_disagreement_penalty(simulator: ShopperSimulator, penalty: float) -> float:
    """``penalty`` :math:`\\lambda` as a float, if it is finite and >= 0 and, when > 0, the
    simulator an ensemble of at least two members in shared mode; else a ``ValueError`` naming
    ``disagreement_penalty``."""
    penalty = float(penalty)
    if not (math.isfinite(penalty) and penalty >= 0.0):
        raise ValueError(f"disagreement_penalty must be a finite number >= 0, got {penalty!r}")
    if penalty == 0.0:
        return penalty
    if not isinstance(simulator, SimulatorEnsemble):
        got = type(simulator).__name__
    elif simulator.mode != "shared" or len(simulator.members) < 2:
        got = f"an ensemble of {len(simulator.members)} in {simulator.mode} mode"
    else:
        return penalty
    raise ValueError(
        f"disagreement_penalty {penalty:g} needs a simulator ensemble of at least 2 learned members in "
        f"shared mode (the folder of `retentionrl simulator fit --seeds ...`); got {got}"
    )


def visit_step(
    simulator: ShopperSimulator, flat: np.ndarray, reward: RewardConfig, disagreement_penalty: float = 0.0
) -> VisitStep:
    """Step every shopper once under ``flat`` actions (see the module docstring).

    :param disagreement_penalty: :math:`\\lambda`, checked by :func:`check_disagreement_penalty`.
    :raises ValueError: from the simulator's ``step``, on actions of the wrong shape or
        dtype or outside the action space; nothing has changed then.
    """
    obs, outcome = simulator.step(flat)
    days = simulator.days
    terminated = outcome.churned
    # the next visit in the window and no churn: returned_in_window, sharing its two masks
    active, inside = ~terminated, in_window(days, simulator.horizon_days)
    rewards = reward(outcome, active & inside)
    info = outcome.as_dict()
    info["day"] = days.copy()
    if isinstance(simulator, SimulatorEnsemble) and simulator.mode == "shared":
        info["disagreement"] = simulator.disagreement
        if disagreement_penalty:
            rewards = (rewards - disagreement_penalty * simulator.disagreement).astype(np.float32)
    return VisitStep(obs, rewards, terminated, active & ~inside, info)
