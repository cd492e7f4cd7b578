"""Stochastic logging policies with exact propensities.

Each computes :math:`\\pi(a \\mid x)` in closed form, so a log records the exact probability
of the logged (group, coupon) action and off-policy estimators can recompute it. With
:math:`A` flat actions, :math:`share_g` the shopper's arm shares (see
:mod:`retentionrl.interactions.history`):

==================  ================================================================
policy              :math:`\\pi(a \\mid x)`
==================  ================================================================
uniform             :math:`1 / A`
epsilon-greedy      :math:`\\varepsilon / A + (1 - \\varepsilon)[a = a^*(x)]`, with
                    :math:`a^* = (\\arg\\max_g\\, pop_g + w \\cdot share_g,\\ c^*)`
softmax             :math:`\\exp(z_a / T) / \\sum_b \\exp(z_b / T)`, :math:`z = x W + b`
==================  ================================================================
"""

from __future__ import annotations

import numpy as np

from retentionrl.core.actions import ActionSpace
from retentionrl.core.policy import Policy
from retentionrl.interactions.history import SCALAR_FEATURES, history_feature_names
from retentionrl.simulators.observation import check_observation, greedy_arm


class UniformPolicy(Policy):
    """Every flat action with probability :math:`1/A`."""

    name = "uniform"

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        obs = check_observation(obs, self.action_space)
        return np.full((obs.shape[0], self.action_space.n_actions), 1.0 / self.action_space.n_actions)


class EpsilonGreedyPolicy(Policy):
    """Greedy on group popularity plus the shopper's affinity, uniform with chance epsilon.

    :param action_space: the action space.
    :param popularity: score :math:`pop_g` of each arm (e.g. purchase rates), shape ``(n_arms,)``.
    :param epsilon: exploration share in (0, 1] (> 0 keeps every action in the support).
    :param affinity_weight: :math:`w \\ge 0`, weight of the shopper's arm shares.
    :param greedy_coupon: coupon index :math:`c^*` of the greedy action.
    """

    name = "epsilon-greedy"

    def __init__(
        self,
        action_space: ActionSpace,
        popularity: np.ndarray,
        epsilon: float = 0.3,
        affinity_weight: float = 1.0,
        greedy_coupon: int = 0,
    ) -> None:
        super().__init__(action_space)
        self.popularity = _arm_vector(popularity, action_space, "popularity")
        if not 0 < epsilon <= 1:
            raise ValueError(f"epsilon must be in (0, 1], got {epsilon!r}")
        if not affinity_weight >= 0:
            raise ValueError(f"affinity_weight must be >= 0, got {affinity_weight!r}")
        action_space.coupon_fraction(greedy_coupon)  # range check
        self.epsilon, self.affinity_weight, self.greedy_coupon = (
            float(epsilon),
            float(affinity_weight),
            int(greedy_coupon),
        )

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        obs = check_observation(obs, self.action_space)
        n, a = obs.shape[0], self.action_space.n_actions
        probs = np.full((n, a), self.epsilon / a)
        best = self.action_space.encode(greedy_arm(obs, self.popularity, self.affinity_weight), self.greedy_coupon)
        probs[np.arange(n), best] += 1.0 - self.epsilon
        return probs


class SoftmaxPolicy(Policy):
    """Softmax over a linear score of the observation: :math:`z = x W + b`.

    :param action_space: the action space.
    :param weights: :math:`W`, shape ``(n_features, n_actions)``, finite.
    :param bias: :math:`b`, shape ``(n_actions,)``, finite.
    :param temperature: :math:`T > 0`; larger is closer to uniform.
    """

    name = "softmax"

    def __init__(
        self, action_space: ActionSpace, weights: np.ndarray, bias: np.ndarray, temperature: float = 1.0
    ) -> None:
        super().__init__(action_space)
        d = len(history_feature_names(action_space.n_arms))
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        if self.weights.shape != (d, action_space.n_actions) or not np.isfinite(self.weights).all():
            raise ValueError(
                f"weights must be finite with shape ({d}, {action_space.n_actions}), got {self.weights.shape}"
            )
        if self.bias.shape != (action_space.n_actions,) or not np.isfinite(self.bias).all():
            raise ValueError(f"bias must be finite with shape ({action_space.n_actions},), got {self.bias.shape}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    @classmethod
    def over_popularity(
        cls,
        action_space: ActionSpace,
        popularity: np.ndarray,
        affinity_weight: float = 2.0,
        coupon_scores: tuple[float, ...] = (0.0, -1.0, -1.0, -1.5),
        temperature: float = 1.0,
    ) -> SoftmaxPolicy:
        """Score :math:`z_{(g, c)} = \\log pop_g + w \\cdot share_g + coupon\\_scores_c`.

        :param popularity: positive score of each arm, shape ``(n_arms,)``.
        :param affinity_weight: :math:`w \\ge 0`, weight of the shopper's arm shares.
        :param coupon_scores: additive score of each coupon level (one per level).
        """
        pop = _arm_vector(popularity, action_space, "popularity")
        if np.any(pop <= 0):
            raise ValueError(f"popularity must be > 0 for a log score, got {pop.tolist()}")
        if len(coupon_scores) != action_space.n_coupons:
            raise ValueError(f"coupon_scores needs {action_space.n_coupons} values, got {coupon_scores!r}")
        arm, coupon = action_space.decode(np.arange(action_space.n_actions))
        weights = np.zeros((len(history_feature_names(action_space.n_arms)), action_space.n_actions))
        weights[len(SCALAR_FEATURES) + arm, np.arange(action_space.n_actions)] = affinity_weight
        bias = np.log(pop)[arm] + np.asarray(coupon_scores, dtype=np.float64)[coupon]
        return cls(action_space, weights, bias, temperature)

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        z = (check_observation(obs, self.action_space) @ self.weights + self.bias) / self.temperature
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


def _arm_vector(values: np.ndarray, action_space: ActionSpace, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (action_space.n_arms,) or not np.isfinite(values).all():
        raise ValueError(f"{name} must be {action_space.n_arms} finite values (one per arm), got shape {values.shape}")
    return values
