"""A trained PPO or DQN policy evaluated in float64 numpy, for serving one shopper at a time.

Torch spends most of a one-row forward pass dispatching operators (about 0.2 ms for a
64-64 MLP on one CPU core); the same network as numpy matrix products takes a few
microseconds. :class:`NumpyPolicy` copies the weights of an
:class:`~retentionrl.agents.policies.SB3Policy` once and computes the same distribution:

* PPO: the actor MLP and action head, then :math:`\\mathrm{softmax}` of the logits (per factor
  for the factorised head, :math:`\\pi(g, c \\mid s) = \\pi(g \\mid s) \\pi(c \\mid s)`);
* DQN: the Q network, then :math:`\\varepsilon / A + (1 - \\varepsilon)[a = \\arg\\max_b Q(s, b)]`;
* greedy deployment: 1 on the argmax of those probabilities.

In float64 the result differs from the float32 torch policy by rounding only (about
:math:`10^{-7}`; an argmax can differ only where two actions tie within it), and a row's
probabilities do not depend on the batch it is computed in beyond :math:`10^{-15}`: what a
service serves one row at a time, a later replay of its log recomputes in bulk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.dqn.policies import DQNPolicy

from retentionrl.agents.policies import SB3Policy
from retentionrl.core.policy import Policy

Layer = Callable[[np.ndarray], np.ndarray]


class NumpyPolicy(Policy):
    """``source``'s policy (module docstring) as float64 numpy; ``source`` is not modified.

    :raises TypeError: a network layer other than Linear, Tanh, ReLU, Flatten or a container of them.
    """

    def __init__(self, source: SB3Policy) -> None:
        super().__init__(source.action_space)
        self.name, self.arms, self.greedy, self.epsilon = source.name, source.arms, source.greedy, source.epsilon
        net = source.policy
        self._q = isinstance(net, DQNPolicy)
        modules: list[torch.nn.Module]
        if isinstance(net, DQNPolicy):
            modules = [net.q_net]
        elif isinstance(net, ActorCriticPolicy):
            modules = [net.pi_features_extractor, net.mlp_extractor.policy_net, net.action_net]
        else:
            raise TypeError(f"expected an ActorCriticPolicy or a DQNPolicy, got {type(net).__name__}")
        self._layers = [layer for module in modules for layer in _layers(module)]
        space = source.action_space
        self._factors = [space.n_arms, space.n_coupons] if source.factorised else [space.n_actions]

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        out = np.asarray(obs, dtype=np.float64)
        if out.ndim == 1:
            out = out[None, :]
        for layer in self._layers:
            out = layer(out)
        n = len(out)
        if self._q:
            probs = np.full((n, self.action_space.n_actions), self.epsilon / self.action_space.n_actions)
            probs[np.arange(n), out.argmax(axis=1)] += 1.0 - self.epsilon
        elif len(self._factors) == 2:
            arm, coupon = (_softmax(part) for part in np.split(out, [self._factors[0]], axis=1))
            probs = (arm[:, :, None] * coupon[:, None, :]).reshape(n, -1)
        else:
            probs = _softmax(out)
        if not self.greedy:
            return probs
        one_hot = np.zeros_like(probs)
        one_hot[np.arange(n), probs.argmax(axis=1)] = 1.0
        return one_hot


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _layers(module: torch.nn.Module) -> Iterable[Layer]:
    """``module`` as numpy functions, in order (containers are walked, their children in order)."""
    if isinstance(module, torch.nn.Linear):
        weight = module.weight.detach().cpu().numpy().astype(np.float64).T.copy()
        bias = module.bias.detach().cpu().numpy().astype(np.float64) if module.bias is not None else 0.0
        return [lambda x: x @ weight + bias]
    if isinstance(module, torch.nn.Tanh):
        return [np.tanh]
    if isinstance(module, torch.nn.ReLU):
        return [lambda x: np.maximum(x, 0.0)]
    if isinstance(module, torch.nn.Flatten):
        return [lambda x: x.reshape(len(x), -1)]
    children = list(module.children())
    if not children:
        raise TypeError(f"cannot evaluate a {type(module).__name__} layer in numpy (Linear, Tanh, ReLU, Flatten only)")
    return [layer for child in children for layer in _layers(child)]
