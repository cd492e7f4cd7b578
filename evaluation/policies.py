"""Target policies built for off-policy evaluation from other policies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retentionrl.core.policy import Policy


class MixturePolicy(Policy):
    """:math:`\\pi(a \\mid x) = \\sum_j m_j \\pi_j(a \\mid x)`: e.g. the logging policy with a
    little of another one mixed in (a target close to the logging policy).

    :param policies: component policies over one action space.
    :param weights: mixture weights :math:`m_j \\ge 0`, summing to 1.
    :param name: the name shown in reports.
    """

    def __init__(self, policies: Sequence[Policy], weights: Sequence[float], name: str) -> None:
        if not policies or len(policies) != len(weights):
            raise ValueError(f"need one weight per policy, got {len(policies)} policies and {len(weights)} weights")
        w = np.asarray(weights, dtype=np.float64)
        if (w < 0).any() or abs(w.sum() - 1.0) > 1e-9:
            raise ValueError(f"weights must be >= 0 and sum to 1, got {w.tolist()}")
        space = policies[0].action_space
        if any(p.action_space != space for p in policies):
            raise ValueError("all policies must share one action space")
        super().__init__(space)
        self.policies, self.weights, self.name = list(policies), w, name
        self.is_oracle = any(p.is_oracle for p in policies)

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        return sum(m * p.action_probs(obs) for m, p in zip(self.weights, self.policies))
