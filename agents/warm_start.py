"""Warm start by behaviour cloning: a PPO agent that starts where its teacher stands.

Before PPO's first rollout the teacher (any :class:`retentionrl.core.policy.Policy`, typically the
best baseline in the training simulator) acts on the training env for ``visits``
shopper-visits; on the states :math:`s_t` it visits, with its action distribution
:math:`\\pi_T(\\cdot \\mid s_t)`, the env's rewards :math:`r_t` and episode ends :math:`d_t`,
the actor-critic is fit by Adam on

.. math::

    \\mathcal{L}(\\theta) = -\\frac1N \\sum_t \\sum_a \\pi_T(a \\mid s_t) \\log \\pi_\\theta(a \\mid s_t)
      + \\frac{c_v}{N} \\sum_t (V_\\theta(s_t) - G_t)^2, \\qquad
    G_t = r_t + \\gamma (1 - d_t) G_{t+1},

the cross-entropy to the teacher's actions, smoothed towards uniform by
:math:`\\epsilon` (``smoothing``: the target is :math:`(1 - \\epsilon) \\pi_T +
\\epsilon / A`; with :math:`\\epsilon = 0` the usual behaviour-cloning loss for a
one-hot teacher; with :math:`\\epsilon > 0` the clone keeps the teacher's argmax but is not
so peaked that PPO's clipped updates can never move it) and the Monte-Carlo value of the
teacher's returns-to-go (a shopper still active when the collection stops is cut there:
its :math:`G_t` is a lower bound, a few visits' worth on the last ones). PPO then starts
from a policy as good as the teacher in the simulator and a critic that already knows
what the teacher's states are worth, so its first advantages measure deviations from the
teacher rather than noise.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs

from retentionrl.core.policy import Policy


def collect_teacher_rollout(
    env: VecEnv, teacher: Policy, visits: int, gamma: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """States, teacher action distributions and returns-to-go of ``visits`` steps of ``teacher``.

    :returns: ``obs (N, d)`` float32, ``probs (N, A)``, ``returns (N,)`` with :math:`G_t` of
        the module docstring, :math:`N \\ge` ``visits`` (whole batched steps).
    """
    rng = np.random.default_rng(seed)
    obs = _array_obs(env.reset())
    steps = max(1, -(-int(visits) // env.num_envs))
    all_obs, all_probs, rewards, dones = [], [], [], []
    for _ in range(steps):
        probs = teacher.action_probs(obs)
        actions = teacher.act(obs, rng)
        all_obs.append(obs.astype(np.float32))
        all_probs.append(probs)
        next_obs, reward, done, _ = env.step(actions)
        obs = _array_obs(next_obs)
        rewards.append(np.asarray(reward, dtype=np.float64))
        dones.append(np.asarray(done, dtype=bool))
    returns = np.zeros((steps, env.num_envs))
    running = np.zeros(env.num_envs)
    for t in range(steps - 1, -1, -1):
        running = rewards[t] + gamma * np.where(dones[t], 0.0, running)
        returns[t] = running
    return np.concatenate(all_obs), np.concatenate(all_probs), returns.reshape(-1)


def _array_obs(obs: VecEnvObs) -> np.ndarray:
    """The batch of observations as one array (the teacher acts on flat feature vectors)."""
    if not isinstance(obs, np.ndarray):
        raise TypeError(f"the teacher needs array observations, the env gives {type(obs).__name__}")
    return obs


def _log_probs(policy: ActorCriticPolicy, obs: torch.Tensor) -> torch.Tensor:
    """The policy's normalised log-probabilities of the actions at ``obs`` ``(n, A)``."""
    distribution = policy.get_distribution(obs).distribution
    if not isinstance(distribution, torch.distributions.Categorical):
        raise TypeError(f"expected a categorical action distribution, got {type(distribution).__name__}")
    return distribution.logits


def behaviour_clone(
    model: PPO,
    teacher: Policy,
    visits: int,
    *,
    smoothing: float = 0.0,
    epochs: int = 10,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    value_coef: float = 0.5,
    seed: int = 0,
) -> dict[str, float]:
    """Fit ``model``'s actor-critic to ``teacher`` on its own rollout (module docstring).

    :param model: a PPO model whose env is the training env (it is stepped, then left for
        ``learn`` to reset).
    :param teacher: the policy to imitate; it must act in the model's action space.
    :param visits: shopper-visits of teacher rollout, >= 1.
    :param smoothing: :math:`\\epsilon \\in [0, 1)`, the uniform share mixed into the target.
    :returns: the final cross-entropy, the share of states where the policy's argmax is the
        teacher's, and the value loss.
    """
    if not isinstance(model, PPO):
        raise ValueError("behaviour-cloning warm start is for PPO (an actor-critic); DQN has no actor to clone into")
    action_space = model.action_space
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(f"behaviour-cloning warm start needs discrete actions, the agent has {action_space}")
    if action_space.n != teacher.action_space.n_actions:
        raise ValueError(f"teacher acts in {teacher.action_space.n_actions} actions, the agent in {action_space.n}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    env = model.get_env()
    if env is None:
        raise ValueError("the model has no env to roll the teacher out in")
    obs, probs, returns = collect_teacher_rollout(env, teacher, visits, model.gamma, seed)
    probs = (1.0 - smoothing) * probs + smoothing / probs.shape[1]
    policy = model.policy
    device = policy.device
    obs_t = torch.as_tensor(obs, device=device)
    probs_t = torch.as_tensor(probs, dtype=torch.float32, device=device)
    returns_t = torch.as_tensor(returns, dtype=torch.float32, device=device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    policy.set_training_mode(True)
    for _ in range(epochs):
        for idx in torch.randperm(len(obs_t), generator=generator).split(batch_size):
            log_pi = _log_probs(policy, obs_t[idx])
            cross_entropy = -(probs_t[idx] * log_pi).sum(dim=1).mean()
            value_loss = ((policy.predict_values(obs_t[idx]).squeeze(-1) - returns_t[idx]) ** 2).mean()
            optimizer.zero_grad()
            (cross_entropy + value_coef * value_loss).backward()
            optimizer.step()
    policy.set_training_mode(False)
    with torch.no_grad():
        log_pi = _log_probs(policy, obs_t)
        value = policy.predict_values(obs_t).squeeze(-1)
    return {
        "cross_entropy": float(-(probs_t * log_pi).sum(dim=1).mean()),
        "agreement": float((log_pi.argmax(dim=1) == probs_t.argmax(dim=1)).float().mean()),
        "value_mse": float(((value - returns_t) ** 2).mean()),
    }
