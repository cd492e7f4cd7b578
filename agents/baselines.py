"""Baseline policies fitted from logs, behind the :class:`retentionrl.core.policy.Policy` interface.

====================  ===================================================================
policy                :math:`\\pi(a \\mid x)`
====================  ===================================================================
``random``            :math:`1/A` (:class:`retentionrl.simulators.world.logging_policies.UniformPolicy`)
``popularity``        1 on (the arm with the most logged purchases, no coupon)
``logging``           a clone of the shop's logging policy: multinomial logistic
                      regression :math:`\\mathrm{softmax}(W x + b)` fitted by maximum
                      likelihood on the logged (observation, action) pairs, mixed with
                      :math:`\\varepsilon_{floor}/A` so every action keeps some probability
``myopic-greedy``     1 on :math:`\\arg\\max_a \\hat r(x, a)`: the action with the largest
                      expected immediate profit under a reward model fitted on logs
                      (:class:`ImmediateRewardModel`)
``uplift``            1 on (the popularity arm, the coupon whose estimated uplift on the
                      30-day return, valued at a visit's profit, most exceeds its cost;
                      none if no coupon's does): :mod:`retentionrl.agents.uplift` (causalml, an
                      optional extra)
====================  ===================================================================

The clone is what off-policy evaluation uses for propensities when a log has none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from retentionrl.core.actions import ActionSpace
from retentionrl.core.atomic import atomic_path
from retentionrl.core.policy import Policy
from retentionrl.interactions.decisions import LoggedDecisions


def _one_hot(index: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(index), n), dtype=np.float32)
    out[np.arange(len(index)), index] = 1.0
    return out


def _fit(model: nn.Module, loss_fn, steps: int, lr: float) -> None:
    """Full-batch Adam on ``loss_fn(model)`` for ``steps`` steps."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model)
        loss.backward()
        optimizer.step()


def _logged_rows(decisions: LoggedDecisions, what: str) -> LoggedDecisions:
    rows = decisions.take(decisions.logged)
    if rows.n == 0:
        raise ValueError(f"the log has no logged actions (impressions) to fit the {what} policy on")
    return rows


class PopularityPolicy(Policy):
    """Always the arm with the most logged purchases, without a coupon."""

    name = "popularity"

    def __init__(self, action_space: ActionSpace, arm: int) -> None:
        super().__init__(action_space)
        self.action = int(action_space.encode(arm, 0))

    @classmethod
    def fit(cls, decisions: LoggedDecisions) -> PopularityPolicy:
        """The most purchased arm among logged visits."""
        rows = _logged_rows(decisions, "popularity")
        arm, _ = rows.action_map.space.decode(rows.action)
        purchases = np.bincount(arm, weights=rows.purchase, minlength=rows.action_map.space.n_arms)
        return cls(rows.action_map.space, int(purchases.argmax()))

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        probs = np.zeros((len(obs), self.action_space.n_actions))
        probs[:, self.action] = 1.0
        return probs


class LoggingPolicyClone(Policy):
    """Multinomial logistic regression of the logged action on the observation.

    :param action_space: the action space.
    :param linear: the fitted ``Linear(d, A)``.
    :param floor: :math:`\\varepsilon_{floor} \\in [0, 1)`, uniform share mixed in.
    """

    name = "logging-clone"

    def __init__(self, action_space: ActionSpace, linear: nn.Linear, floor: float = 1e-3) -> None:
        super().__init__(action_space)
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {floor}")
        self.linear = linear.eval()
        self.floor = floor

    @classmethod
    def fit(
        cls, decisions: LoggedDecisions, *, l2: float = 1e-3, steps: int = 100, floor: float = 1e-3, seed: int = 0
    ) -> LoggingPolicyClone:
        """Maximum likelihood with an L2 penalty ``l2`` on the weights.

        The objective is convex, so full-batch L-BFGS (``steps`` iterations at most, strong
        Wolfe line search) from zero weights converges fast and needs no seed; ``seed`` only
        fixes torch's generator for symmetry with the other fits.
        """
        rows = _logged_rows(decisions, "logging-clone")
        x = torch.as_tensor(np.ascontiguousarray(rows.obs))
        y = torch.as_tensor(rows.action)
        torch.manual_seed(seed)
        linear = nn.Linear(x.shape[1], rows.action_map.space.n_actions)
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)
        optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(linear(x), y) + l2 * linear.weight.square().sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return cls(rows.action_map.space, linear, floor)

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            probs = torch.softmax(self.linear(torch.as_tensor(np.asarray(obs, dtype=np.float32))), dim=1).numpy()
        return (1.0 - self.floor) * probs.astype(np.float64) + self.floor / self.action_space.n_actions

    def save(self, path: str | Path) -> None:
        """Write the fitted weights and floor to a safetensors file, atomically."""
        tensors = {
            "weight": self.linear.weight.detach().contiguous(),
            "bias": self.linear.bias.detach().contiguous(),
            "floor": torch.tensor([self.floor], dtype=torch.float64),
        }
        with atomic_path(path) as tmp:
            save_file(tensors, tmp)

    @classmethod
    def load(cls, path: str | Path, action_space: ActionSpace) -> LoggingPolicyClone:
        """A clone written by :meth:`save`, acting in ``action_space``."""
        tensors = load_file(path)
        weight = tensors["weight"]
        if weight.shape[0] != action_space.n_actions:
            raise ValueError(f"{path}: a clone over {weight.shape[0]} actions, expected {action_space.n_actions}")
        linear = nn.Linear(weight.shape[1], weight.shape[0])
        linear.load_state_dict({"weight": weight, "bias": tensors["bias"]})
        return cls(action_space, linear, float(tensors["floor"][0]))


class ImmediateRewardModel(nn.Module):
    """:math:`\\hat r(x, a)`: an MLP on the observation and one-hot arm and coupon.

    Fitted by least squares on the logged profit of each visit (spend - coupon cost - cost
    of goods, in units of ``revenue_scale``): the direct-method reward model of the bandit view.
    """

    def __init__(self, n_features: int, action_space: ActionSpace, hidden: int = 64) -> None:
        super().__init__()
        self.action_space = action_space
        self.net = nn.Sequential(
            nn.Linear(n_features + action_space.n_arms + action_space.n_coupons, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def inputs(self, obs: np.ndarray, action: np.ndarray) -> torch.Tensor:
        """The network input of (observation, flat action) pairs."""
        arm, coupon = self.action_space.decode(action)
        return torch.as_tensor(
            np.hstack(
                [
                    np.asarray(obs, dtype=np.float32),
                    _one_hot(arm, self.action_space.n_arms),
                    _one_hot(coupon, self.action_space.n_coupons),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def predict_all(self, obs: np.ndarray) -> np.ndarray:
        """:math:`\\hat r(x, a)` for every action: ``(n, A)``.

        The first layer is linear in the concatenated input, so its pre-activation splits as
        :math:`W_x x + W_g e_g + W_c e_c + b`: the observation's part is computed once per row
        and each action's one-hot part once per action, then broadcast over ``(n, A)``, instead
        of building the ``n A`` concatenated inputs (the same values up to float rounding).
        """
        first, last = self.net[0], self.net[2]
        assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)  # the layers __init__ builds
        x = np.asarray(obs, dtype=np.float32)
        actions = np.arange(self.action_space.n_actions)
        with torch.no_grad():
            # W_g e_g + W_c e_c of every action, through the same input layout as the fit's
            per_action = first(self.inputs(np.zeros((actions.size, x.shape[1])), actions)) - first.bias
            per_row = torch.as_tensor(x) @ first.weight[:, : x.shape[1]].T + first.bias
            hidden = (per_row[:, None, :] + per_action[None, :, :]).relu_()
            return (hidden @ last.weight[0] + last.bias).numpy()

    @classmethod
    def fit(
        cls, decisions: LoggedDecisions, *, revenue_scale: float = 50.0, steps: int = 400, seed: int = 0
    ) -> ImmediateRewardModel:
        """Least squares on the logged visits' profit / ``revenue_scale``."""
        rows = _logged_rows(decisions, "myopic-greedy")
        torch.manual_seed(seed)
        model = cls(rows.obs.shape[1], rows.action_map.space)
        x = model.inputs(rows.obs, rows.action)
        y = torch.as_tensor(rows.profit / revenue_scale, dtype=torch.float32)
        _fit(model, lambda m: nn.functional.mse_loss(m(x), y), steps, 0.01)
        return model.eval()


class MyopicGreedyPolicy(Policy):
    """The action with the largest expected immediate profit (ignores the future)."""

    name = "myopic-greedy"

    def __init__(self, reward_model: ImmediateRewardModel) -> None:
        super().__init__(reward_model.action_space)
        self.reward_model = reward_model

    @classmethod
    def fit(cls, decisions: LoggedDecisions, *, revenue_scale: float = 50.0, seed: int = 0) -> MyopicGreedyPolicy:
        return cls(ImmediateRewardModel.fit(decisions, revenue_scale=revenue_scale, seed=seed))

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        best = self.reward_model.predict_all(obs).argmax(axis=1)
        probs = np.zeros((len(obs), self.action_space.n_actions))
        probs[np.arange(len(obs)), best] = 1.0
        return probs
