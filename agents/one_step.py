"""One pessimistic step of policy improvement over a base policy, in a learned simulator ensemble.

PPO and DQN trained in the learned simulators iterate policy improvement for hundreds of
thousands of visits, and each iteration moves the agent further from the logged behaviour,
towards the visit sequences the logs hardly contain ("group 12 at every visit"), where the
simulators are wrong in the agent's favour (``docs/agent_ablation.md``). One step of
improvement from a policy the simulators model well stays near it: Brandfonbrener et al.
(2021, "Offline RL without off-policy evaluation") found one step from the behaviour policy
often beats iterated offline RL for this reason; the step is Bertsekas' rollout algorithm
and the first iteration of conservative policy iteration (Kakade & Langford 2002).

**The step.** For a base policy :math:`\\pi_0` that shows one action :math:`a_0` (the
``popularity`` baseline: the most purchased group, no coupon) and each simulator member
:math:`k`, the Q-function of :math:`\\pi_0` on two outcomes, the return visits still to come
and the profit from this visit on,

.. math::

    Q_k(s, a) = E_k\\Big[\\big(\\textstyle\\sum_{t' > t} [\\text{visit } t' \\text{ in the window}],\\;
    \\sum_{t' \\ge t} \\text{profit}_{t'}\\big) \\,\\Big|\\, s_t = s, a_t = a, \\text{then } \\pi_0\\Big]

is fitted by least squares (Monte-Carlo regression, one network with an output per action
and outcome) on rollouts of :math:`\\pi_0` in member :math:`k` that take a uniformly random
action at a share :math:`\\varepsilon` of visits (so every action is tried in the states
:math:`\\pi_0` reaches; the targets then follow :math:`\\pi_0` with the same share of random
actions, a bias common to every action of a state). Two networks per member, each on one
half of its rollouts, give :math:`J = 2K` estimates. The deployed policy, for a retention
weight :math:`w` and a currency scale :math:`S` (:mod:`retentionrl.envs.reward`), is

.. math::

    A_j(s, a) = Q_j(s, a) - Q_j(s, a_0), \\qquad
    \\pi_w(s) = \\arg\\max_a \\min_j \\big[w A_j^{ret}(s, a) + (1 - w) A_j^{profit}(s, a) / S\\big],

and :math:`a_0` wherever no action's least estimate is above 0. **Pessimism**: it deviates
from :math:`\\pi_0` only where every member, and both halves of every member's rollouts,
agree the deviation gains; where the members disagree (the logs do not pin the answer down)
or a gain is within the estimates' noise, it keeps the base action. By the performance
difference lemma, where every estimate is right :math:`\\pi_w` is at least as good as
:math:`\\pi_0` on the weighted objective in every member. One fit serves every :math:`w`:
the weight enters only at decision time, so a whole frontier costs one fit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from retentionrl.core.actions import ActionSpace
from retentionrl.core.atomic import atomic_path, atomic_write_text
from retentionrl.core.checks import require_int, require_positive_ints
from retentionrl.core.errors import InputError
from retentionrl.core.policy import Policy
from retentionrl.envs.reward import RewardConfig
from retentionrl.interactions.horizon import in_window
from retentionrl.simulators.interface import ShopperSimulator

ONE_STEP_META, ONE_STEP_TENSORS = "one_step.json", "one_step.safetensors"
FORMAT = "retentionrl-one-step"


@dataclass(frozen=True)
class OneStepConfig:
    """How the Q-functions of the base policy are estimated (module docstring)."""

    users: int = 200_000
    """fresh shoppers rolled out per simulator member"""
    epsilon: float = 0.3
    """share of visits at which the rollouts take a uniformly random action"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden layers of each Q network (ReLU)"""
    epochs: int = 8
    """passes over each half of a member's rollouts"""
    batch_size: int = 2048
    """minibatch size of the least-squares fit"""
    learning_rate: float = 1e-3
    """Adam step size"""
    seed: int = 0
    """seeds the rollouts, the halves and the networks"""

    def __post_init__(self) -> None:
        require_positive_ints(users=self.users, epochs=self.epochs, batch_size=self.batch_size)
        require_int("users", self.users, 2)
        if not 0.0 < self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in (0, 1], got {self.epsilon!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must be one or more positive layer sizes, got {self.hidden!r}")


@dataclass(frozen=True)
class Rollouts:
    """Visits of rollouts in one simulator: the state, the action taken, and what followed."""

    obs: np.ndarray
    """``(n, d)`` float32 observations"""
    action: np.ndarray
    """``(n,)`` flat actions taken"""
    targets: np.ndarray
    """``(n, 2)`` return visits after this one within the window, profit from this visit on"""


def collect_rollouts(simulator: ShopperSimulator, base_action: int, users: int, epsilon: float, seed: int) -> Rollouts:
    """Roll the base policy (``base_action`` at every visit, a uniformly random action at a
    share ``epsilon`` of visits) out on ``users`` fresh shoppers of ``simulator``, until
    every shopper has churned or left the window; every visit with its two targets."""
    space = simulator.action_space
    rng = np.random.default_rng(seed)
    obs = simulator.reset(users, seed=int(rng.integers(2**31)))
    alive = np.ones(users, dtype=bool)
    states, actions, alive_at, profits = [], [], [], []
    while alive.any():
        action = np.where(rng.random(users) < epsilon, rng.integers(0, space.n_actions, users), base_action)
        states.append(obs[alive].astype(np.float32))
        actions.append(action[alive])
        alive_at.append(alive.copy())
        obs, out = simulator.step(action)
        profits.append(np.where(alive, out.profit, 0.0))
        alive = alive & ~out.churned & in_window(simulator.days, simulator.horizon_days)
    here = np.array(alive_at)  # (T, users): the shopper visits at step t
    later = np.vstack([here[1:], np.zeros((1, users), dtype=bool)]).astype(np.float64)
    returns_to_come = np.flip(np.cumsum(np.flip(later, 0), 0), 0)
    profit_from_here = np.flip(np.cumsum(np.flip(np.array(profits), 0), 0), 0)
    # rows in the order of `states` (step by step, the shoppers still visiting)
    targets = np.stack([returns_to_come[here], profit_from_here[here]], axis=1)
    return Rollouts(np.concatenate(states), np.concatenate(actions).astype(np.int64), targets)


class QEnsemble(nn.Module):
    """``J`` Q networks of the base policy; :meth:`forward` gives ``(J, n, A, 2)`` in the
    targets' units (return visits, currency)."""

    scales: torch.Tensor

    def __init__(self, n_estimates: int, obs_dim: int, n_actions: int, hidden: Sequence[int], scales: np.ndarray):
        super().__init__()
        self.n_actions, self.obs_dim = n_actions, obs_dim
        self.nets = nn.ModuleList(_mlp(obs_dim, hidden, 2 * n_actions) for _ in range(n_estimates))
        self.register_buffer("scales", torch.as_tensor(np.asarray(scales, dtype=np.float32)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = torch.stack([net(obs) for net in self.nets])
        return out.view(len(self.nets), len(obs), self.n_actions, 2) * self.scales


def _mlp(n_in: int, hidden: Sequence[int], n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        n_in = h
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


def fit_q(
    members: Sequence[ShopperSimulator],
    base_action: int,
    config: OneStepConfig = OneStepConfig(),
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> QEnsemble:
    """The ``2 K`` Q networks of the base policy, two per member of ``members`` (module docstring)."""
    if not members:
        raise ValueError("fit_q needs at least one simulator")
    space = members[0].action_space
    if any(m.action_space != space for m in members):
        raise ValueError("every simulator must have the same action space")
    if not 0 <= base_action < space.n_actions:
        raise ValueError(f"base_action must be a flat action in [0, {space.n_actions}), got {base_action!r}")
    rng = np.random.default_rng(config.seed)
    halves: list[Rollouts] = []
    for k, member in enumerate(tqdm(members, desc="one-step: rollouts", disable=not progress)):
        data = collect_rollouts(member, base_action, config.users, config.epsilon, config.seed + 7919 * k)
        first = rng.random(len(data.action)) < 0.5
        halves += [Rollouts(data.obs[m], data.action[m], data.targets[m]) for m in (first, ~first)]
    targets = np.concatenate([h.targets for h in halves])
    scales = np.maximum(targets.std(axis=0), 1e-6)
    torch.manual_seed(config.seed)
    q = QEnsemble(len(halves), halves[0].obs.shape[1], space.n_actions, config.hidden, scales).to(device)
    for net, half in zip(q.nets, tqdm(halves, desc="one-step: Q fits", disable=not progress)):
        _regress(net, half, scales, config, device)
    return q.eval()


def _regress(
    net: nn.Module, data: Rollouts, scales: np.ndarray, config: OneStepConfig, device: str | torch.device
) -> None:
    """Least squares of the taken action's two outputs on the scaled targets, minibatch Adam."""
    x = torch.as_tensor(data.obs, device=device)
    a = torch.as_tensor(data.action, device=device)
    y = torch.as_tensor(data.targets / scales, dtype=torch.float32, device=device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    for _ in range(config.epochs):
        for batch in torch.randperm(len(x), generator=generator).to(device).split(config.batch_size):
            pred = net(x[batch]).view(len(batch), -1, 2)[torch.arange(len(batch), device=device), a[batch]]
            loss = ((pred - y[batch]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


class OneStepPolicy(Policy):
    """:math:`\\pi_w` of the module docstring: deterministic, ``action_probs`` one-hot.

    :param q: the base policy's Q networks.
    :param base_action: :math:`a_0`, the base policy's flat action.
    :param action_space: the flat action space of ``q``.
    :param reward: the weight :math:`w` and scale :math:`S` (:meth:`RewardConfig.weighted`).
    """

    def __init__(self, q: QEnsemble, base_action: int, action_space: ActionSpace, reward: RewardConfig) -> None:
        super().__init__(action_space)
        self.q, self.base_action, self.reward = q.eval(), int(base_action), reward
        self.name = f"one-step ({reward.label})"
        self._device = next(q.parameters()).device

    def with_reward(self, reward: RewardConfig) -> OneStepPolicy:
        """The same networks deployed for another weight (no refit: the weight acts at decision time)."""
        policy = OneStepPolicy(self.q, self.base_action, self.action_space, reward)
        policy.arms = self.arms
        return policy

    def gains(self, obs: np.ndarray) -> np.ndarray:
        """:math:`\\min_j [w A_j^{ret} + (1 - w) A_j^{profit} / S]` per row and action, ``(n, A)``;
        0 at the base action."""
        r = self.reward
        w = 1.0 if r.mode == "retention" else 0.0 if r.mode == "profit" else r.retention_weight
        weights = torch.tensor([w, (1.0 - w) / r.revenue_scale], device=self._device)
        with torch.no_grad():
            # the weighted sum is linear, so it is taken before the advantage (half the work)
            value = self.q(torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self._device)) @ weights
            return (value - value[:, :, self.base_action : self.base_action + 1]).amin(dim=0).cpu().numpy()

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        gains = self.gains(obs)
        best = gains.argmax(axis=1)
        choice = np.where(gains[np.arange(len(gains)), best] > 0.0, best, self.base_action)
        probs = np.zeros((len(choice), self.action_space.n_actions))
        probs[np.arange(len(choice)), choice] = 1.0
        return probs


def save_one_step(
    folder: str | Path,
    q: QEnsemble,
    base_action: int,
    simulator: ShopperSimulator,
    reward: RewardConfig,
    config: OneStepConfig,
) -> None:
    """Write ``one_step.safetensors`` and ``one_step.json`` (the networks, the base action, the
    deployed reward, the action map and how it was fitted) into ``folder``, atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    space = simulator.action_space
    card = getattr(simulator, "card", None)
    arms = card.arms if card is not None else range(space.n_arms)
    with atomic_path(folder / ONE_STEP_TENSORS) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in q.state_dict().items()}, tmp)
    meta = {
        "format": FORMAT,
        "version": 1,
        "base_action": int(base_action),
        "n_estimates": len(q.nets),
        "obs_dim": q.obs_dim,
        "n_arms": space.n_arms,
        "coupon_levels": list(space.coupon_levels),
        "arms": [str(a) for a in arms],
        "reward": {"mode": reward.mode, "revenue_scale": reward.revenue_scale, "weight": reward.retention_weight},
        "config": asdict(config),
    }
    atomic_write_text(folder / ONE_STEP_META, json.dumps(meta, indent=2))


def is_one_step_folder(folder: str | Path) -> bool:
    """``folder`` holds a one-step policy (:func:`save_one_step`)."""
    return (Path(folder) / ONE_STEP_META).is_file()


def load_one_step(folder: str | Path, device: str = "cpu") -> OneStepPolicy:
    """The policy saved in ``folder`` by :func:`save_one_step` (safetensors: nothing is unpickled).

    :raises InputError: naming the file: unreadable, a key missing or of the wrong kind, or
        tensors that are missing, corrupt or do not match the metadata.
    """
    path = Path(folder) / ONE_STEP_META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable one-step policy metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(path, f"not a one-step policy (expected format {FORMAT!r})")
    try:
        space = ActionSpace(int(meta["n_arms"]), tuple(meta["coupon_levels"]))
        reward = RewardConfig(meta["reward"]["mode"], float(meta["reward"]["revenue_scale"]), meta["reward"]["weight"])
        config = OneStepConfig(**meta["config"])  # __post_init__ turns JSON's list of layers into a tuple
        base, n_estimates, obs_dim = int(meta["base_action"]), int(meta["n_estimates"]), int(meta["obs_dim"])
        arms = tuple(str(a) for a in meta["arms"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            path, f"incomplete or invalid one-step policy metadata ({type(exc).__name__}: {exc})"
        ) from None
    tensors_path = Path(folder) / ONE_STEP_TENSORS
    try:
        tensors = load_file(tensors_path)
    except (OSError, SafetensorError) as exc:
        raise InputError(tensors_path, f"missing or unreadable one-step tensors ({exc})") from None
    q = QEnsemble(n_estimates, obs_dim, space.n_actions, config.hidden, np.ones(2))
    try:
        q.load_state_dict(tensors)
    except RuntimeError as exc:
        raise InputError(tensors_path, f"does not match {ONE_STEP_META} ({exc})") from None
    policy = OneStepPolicy(q.to(device), base, space, reward)
    policy.arms = arms
    return policy
