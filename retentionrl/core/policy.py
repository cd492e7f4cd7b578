"""The interface of everything that acts: world rollouts, environments, agents and OPE.

A policy maps observations (what a shop can observe about each shopper, one row per
shopper) to a distribution over the flat actions of an
:class:`retentionrl.core.actions.ActionSpace`:

    action_probs(obs)[i, a] = pi(a | obs_i),   each row sums to 1.

``act`` samples from that distribution with the caller's generator, so a rollout is
reproducible from one seed. Off-policy evaluation needs ``action_probs`` on logged states,
which is why every policy, deterministic ones included, exposes it.

A policy that reads a simulator's latent state is an *oracle*: it sets ``is_oracle = True``
and is labelled so wherever it is reported; it can never be deployed.

A policy that knows which arm each index means (a trained agent knows its simulator's
action map) holds the labels in ``arms``, in index order; ``None`` where the indices are
all it knows (a baseline fit on the very logs it is evaluated on).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from retentionrl.core.actions import ActionSpace


class Policy(ABC):
    """Base class of policies over a flat (arm, coupon) action space.

    :param action_space: the action space the policy acts in.
    """

    name: str = "policy"
    is_oracle: bool = False
    arms: tuple[str, ...] | None = None

    def __init__(self, action_space: ActionSpace) -> None:
        self.action_space = action_space

    @abstractmethod
    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        """pi(a | obs) for each row of ``obs``: shape ``(n, n_actions)``, rows sum to 1."""

    def taken_probs(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """pi(action_i | obs_i) for each row: the probability of actions already taken (a logged
        step's target probability in off-policy evaluation), shape ``(n,)``."""
        action = np.asarray(action)
        return self.action_probs(obs)[np.arange(action.size), action]

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sample one action per row of ``obs`` by inverse-CDF on ``rng`` uniforms."""
        probs = self.action_probs(obs)
        cdf = np.cumsum(probs, axis=1)
        u = rng.random((probs.shape[0], 1)) * cdf[:, -1:]
        return np.minimum((u > cdf).sum(axis=1), probs.shape[1] - 1).astype(np.int64)
