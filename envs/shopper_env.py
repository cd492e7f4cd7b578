"""One shopper, one visit per step: a ``gymnasium.Env`` over any shopper simulator."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded

from retentionrl.envs.reward import RewardConfig
from retentionrl.envs.transition import (
    check_disagreement_penalty,
    flat_actions,
    single_action_space,
    single_observation_space,
    visit_step,
)
from retentionrl.simulators.interface import ShopperSimulator


class ShopperEnv(gym.Env):
    """A shop deciding, at each visit of one shopper, what to recommend and which coupon to offer.

    ## Description
    Each episode is one shopper's lifetime from their first visit. At every visit the
    agent picks an arm (an item group) and a coupon level; the simulator (the ground-truth
    world or the learned sequence simulator, the env cannot tell) returns how the shopper
    responded and when, if ever, they come back. The goal is to keep shoppers coming back
    (and, in the revenue modes, buying) without giving away margin in coupons.

    ## Action Space
    ``Discrete(n_arms * n_coupons)``; ``action = arm * n_coupons + coupon_index``. With
    ``action_type="multidiscrete"``: ``MultiDiscrete([n_arms, n_coupons])``.

    | Num | Part          | Values (default world)                     |
    |-----|---------------|--------------------------------------------|
    | 0   | arm           | item group, 0 .. n_arms - 1 (20)           |
    | 1   | coupon index  | 0 = none, 1 = 5%, 2 = 10%, 3 = 20%         |

    ## Observation Space
    ``Box(0, high, (11 + n_arms,), float32)``, ``high`` 1 for shares and rates, the largest
    float32 for counts and times: what a shop can observe of the shopper's own
    history (:class:`retentionrl.interactions.history.HistoryFeatures`), never latent state.

    | Num | Observation         | Min | Max |
    |-----|---------------------|-----|-----|
    | 0   | log(1 + visits)     | 0   | Inf |
    | 1   | days since first / H| 0   | Inf |
    | 2   | days since last / H | 0   | Inf |
    | 3   | log(1 + spend / S)  | 0   | Inf |
    | 4   | purchase rate       | 0   | 1   |
    | 5   | click rate          | 0   | 1   |
    | 6   | share of visits with a coupon | 0 | 1 |
    | 7   | mean coupon level / max level | 0 | 1 |
    | 8   | last visit purchased| 0   | 1   |
    | 9   | last visit redeemed | 0   | 1   |
    | 10  | last coupon / max   | 0   | 1   |
    | 11+g| share of engagement with arm g | 0 | 1 |

    ## Rewards
    See :mod:`retentionrl.envs.reward`: ``retention`` (1 per return visit within the horizon),
    ``profit`` ((spend - coupon cost - cost of goods) / revenue_scale) or ``mixed``; with a
    ``disagreement_penalty`` > 0 (a shared-mode simulator ensemble), minus that times the
    members' disagreement about the visit (:mod:`retentionrl.envs.transition`).

    ## Starting State
    A fresh shopper drawn by the simulator, at the first visit (day 0, empty history).

    ## Episode End
    * **Termination**: the shopper churns (will never come back).
    * **Truncation**: the next visit would fall on or after day H, the horizon (default 90
      days), outside the window [0, H) (:mod:`retentionrl.interactions.horizon`):
      the shopper is still active, so a learner should bootstrap, not treat it as churn.

    ## Info
    Per step: ``click``, ``purchase``, ``redeemed``, ``spend``, ``coupon_cost``, ``cogs``,
    ``gap_days`` (``inf`` on churn), ``churned`` and ``day`` (day of the next visit); over a
    shared-mode ensemble, ``disagreement`` too.

    ## Arguments
    * ``simulator``: a :class:`retentionrl.simulators.interface.ShopperSimulator`; the env owns it and
      steps it with a batch of one.
    * ``reward``: a :class:`retentionrl.envs.reward.RewardConfig` (default: ``retention``).
    * ``action_type``: ``"discrete"`` (default) or ``"multidiscrete"``.
    * ``disagreement_penalty``: :math:`\\lambda \\ge 0` (default 0), see Rewards.

    Make it with ``gymnasium.make("retentionrl/WorldShopper-v0")`` or
    ``gymnasium.make("retentionrl/Shopper-v0", checkpoint=DIR)`` after ``import retentionrl.envs``.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        simulator: ShopperSimulator,
        reward: RewardConfig | None = None,
        action_type: str = "discrete",
        disagreement_penalty: float = 0.0,
    ) -> None:
        self.simulator = simulator
        self.disagreement_penalty = check_disagreement_penalty(simulator, disagreement_penalty)
        self.reward = reward if reward is not None else RewardConfig()
        self.action_type = action_type
        self.action_space = single_action_space(simulator, action_type)
        self.observation_space = single_observation_space(simulator)
        self._done = True
        self._started = False
        self._one = np.ones(1, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start a new shopper.

        With a ``seed`` (or on the first reset) the simulator is reseeded from it; later
        resets draw the next shopper from the simulator's running generator, as the vector
        env's auto-reset does, so one seed fixes every following lifetime.
        """
        super().reset(seed=seed)
        if seed is not None or not self._started:
            obs = self.simulator.reset(1, seed=int(self.np_random.integers(2**63 - 1)))
            self._started = True
        else:
            obs = self.simulator.replace(self._one)
        self._done = False
        return obs[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One visit under ``action`` (an int, or ``[arm, coupon]`` for multidiscrete)."""
        if self._done:
            raise ResetNeeded("step() called after the shopper's episode ended (churn or horizon); call reset()")
        flat = flat_actions(self.simulator, np.asarray(action)[None], self.action_type, 1)
        obs, reward, terminated, truncated, info = visit_step(
            self.simulator, flat, self.reward, self.disagreement_penalty
        )
        done, cut = terminated.item(), truncated.item()  # Python bools of the batch of one
        self._done = done or cut
        return obs[0], reward.item(), done, cut, {key: value.item() for key, value in info.items()}
