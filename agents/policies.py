"""stable-baselines3 models behind the :class:`retentionrl.core.policy.Policy` interface.

Off-policy evaluation needs :math:`\\pi(a \\mid s)` of every policy on logged states, and it
is exact for the policy as deployed:

* PPO (and any actor-critic with a categorical policy): the softmax of the policy logits
  (``greedy=False``, the policy it was trained as), or 1 on their argmax (``greedy=True``,
  the deployment policy: a stochastic policy over many actions spends visits on actions it
  rates poorly); with the factorised head (``MultiDiscrete([n_arms, n_coupons])``) the
  group and the coupon are independent given the state, so
  :math:`\\pi(g, c \\mid s) = \\pi(g \\mid s)\\, \\pi(c \\mid s)` at flat index
  :math:`g \\cdot n_{coupons} + c`, and its argmax is the pair of the factors' argmaxes;
* DQN: its epsilon-greedy distribution over the greedy action of the Q network,
  :math:`\\pi(a \\mid s) = \\varepsilon / A + (1 - \\varepsilon)[a = \\arg\\max_b Q(s, b)]`
  (``greedy=True`` deploys with :math:`\\varepsilon = 0`).
"""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.dqn.policies import DQNPolicy

from retentionrl.core.actions import ActionSpace
from retentionrl.core.policy import Policy


class SB3Policy(Policy):
    """A trained PPO or DQN policy as a :class:`Policy` over the flat action space.

    :param policy: the stable-baselines3 policy network (``model.policy``): an
        ``ActorCriticPolicy`` (PPO) or a ``DQNPolicy``.
    :param action_space: the flat action space it was trained on (PPO may act in its
        ``MultiDiscrete([n_arms, n_coupons])`` form).
    :param epsilon: DQN's exploration share at evaluation, in [0, 1]; ignored for PPO.
    :param name: label used in reports.
    :param greedy: act on the argmax (module docstring); ``action_probs`` is then one-hot.
    """

    def __init__(
        self,
        policy: BasePolicy,
        action_space: ActionSpace,
        epsilon: float = 0.0,
        name: str = "agent",
        *,
        greedy: bool = False,
    ) -> None:
        super().__init__(action_space)
        space = policy.action_space
        factors = [int(n) for n in getattr(space, "nvec", [])]
        if getattr(space, "n", None) != action_space.n_actions and factors != [
            action_space.n_arms,
            action_space.n_coupons,
        ]:
            raise ValueError(
                f"policy acts in {space}, expected Discrete({action_space.n_actions}) or "
                f"MultiDiscrete([{action_space.n_arms} {action_space.n_coupons}])"
            )
        self._factorised = bool(factors)
        self._factors = factors
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.policy = policy.eval()
        self._device = policy.device  # SB3 finds it by walking the parameters: once, not per call
        self.greedy = bool(greedy)
        self.epsilon = 0.0 if self.greedy else float(epsilon)
        self.name = name

    @property
    def factorised(self) -> bool:
        """The policy acts in ``MultiDiscrete([n_arms, n_coupons])``: group and coupon drawn independently."""
        return self._factorised

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self._device)
        with torch.no_grad():
            if isinstance(self.policy, DQNPolicy):
                greedy = self.policy.q_net(obs_t).argmax(dim=1).cpu().numpy()
                probs = np.full((len(greedy), self.action_space.n_actions), self.epsilon / self.action_space.n_actions)
                probs[np.arange(len(greedy)), greedy] += 1.0 - self.epsilon
                return probs
            if not isinstance(self.policy, ActorCriticPolicy):
                raise TypeError(f"expected an ActorCriticPolicy or a DQNPolicy, got {type(self.policy).__name__}")
            logits = self._logits(obs_t)
            if self._factorised:  # Categorical(groups) x Categorical(coupons): the joint is their product
                arm, coupon = (_softmax(part) for part in torch.split(logits, self._factors, dim=1))
                probs = (arm[:, :, None] * coupon[:, None, :]).reshape(len(arm), -1)
            else:
                probs = _softmax(logits)
        if not self.greedy:
            return probs
        one_hot = np.zeros_like(probs)
        one_hot[np.arange(len(probs)), probs.argmax(axis=1)] = 1.0
        return one_hot

    def _logits(self, obs: torch.Tensor) -> torch.Tensor:
        """The actor's action logits: ``get_distribution``'s path through the network (features,
        actor MLP, action head) without building distribution objects."""
        policy = self.policy
        assert isinstance(policy, ActorCriticPolicy)
        features = policy.extract_features(obs, policy.pi_features_extractor)
        assert isinstance(features, torch.Tensor)  # one extractor given: one features tensor
        return policy.action_net(policy.mlp_extractor.forward_actor(features))


def _softmax(logits: torch.Tensor) -> np.ndarray:
    """The probabilities ``(n, k)`` (float64) of categorical ``logits``, as
    ``torch.distributions.Categorical(logits=...).probs`` computes them (softmax of the
    logits normalised by their log-sum-exp): the same bits, without the distribution object."""
    normalised = logits - logits.logsumexp(dim=-1, keepdim=True)
    return torch.softmax(normalised, dim=-1).cpu().numpy().astype(np.float64)
