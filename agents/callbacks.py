"""TensorBoard metrics of retention, aggregated over the shoppers whose episodes ended.

stable-baselines3 logs its own scalars (losses, ``rollout/ep_rew_mean``, ...). This
callback adds, at the end of each rollout with enough finished shoppers (``min_episodes``),
per-shopper means over the episodes that ended since the last record:

=======================================  ==========================================
key                                      meaning
=======================================  ==========================================
``retention/active_at_horizon``          share of episodes ended by the horizon, not churn
``retention/visits_per_shopper``         visits in the episode
``retention/mean_days_between_visits``   mean gap of the returns within the horizon
``retention/profit_per_shopper``         spend - coupon cost - cost of goods
``retention/coupon_spend_per_shopper``   coupon cost
``retention/coupon_rate``                share of actions with a coupon
``actions/histogram``                    histogram of the flat actions taken
=======================================  ==========================================

Over a simulator ensemble in shared mode (a ``disagreement_penalty``), it also records at the
end of every rollout ``ensemble/disagreement``: the mean of the members' disagreement over
the rollout's visits (:attr:`~retentionrl.simulators.learned.ensemble.SimulatorEnsemble.disagreement`,
averaged over the rollouts between two logger dumps).

All of it is computed on arrays over the batch (no loop over shoppers).
"""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from retentionrl.envs.sb3 import ShopperSB3VecEnv


class RetentionMetricsCallback(BaseCallback):
    """Per-episode retention metrics to the SB3 logger (see the module docstring).

    :param env: the batched SB3 env the model trains on (read after each step).
    :param min_episodes: finished episodes needed before a record, >= 1.
    """

    def __init__(self, env: ShopperSB3VecEnv, min_episodes: int = 100) -> None:
        super().__init__()
        self.env = env
        self.min_episodes = min_episodes
        n = env.num_envs
        self._visits, self._profit, self._cost = np.zeros(n), np.zeros(n), np.zeros(n)
        self._gap_sum, self._gaps = np.zeros(n), np.zeros(n)
        self._ended: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._disagreement: list[float] = []
        self._coupon_index = (
            np.arange(env.env.simulator.action_space.n_actions) % env.env.simulator.action_space.n_coupons
        )

    def _on_step(self) -> bool:
        info, done = self.env.last_info, self.env.last_done
        self._visits += 1.0
        self._profit += info["spend"] - info["coupon_cost"] - info["cogs"]
        self._cost += info["coupon_cost"]
        returned = np.isfinite(info["gap_days"]) & ~done
        self._gap_sum += np.where(returned, info["gap_days"], 0.0)
        self._gaps += returned
        self._actions.append(np.asarray(self.env.last_actions).copy())
        if "disagreement" in info:
            self._disagreement.append(float(info["disagreement"].mean()))
        if done.any():
            active = done & ~info["churned"]
            self._ended.append(
                np.stack(
                    [
                        active[done],
                        self._visits[done],
                        self._profit[done],
                        self._cost[done],
                        self._gap_sum[done],
                        self._gaps[done],
                    ],
                    axis=1,
                )
            )
            for acc in (self._visits, self._profit, self._cost, self._gap_sum, self._gaps):
                acc[done] = 0.0
        return True

    def _on_rollout_end(self) -> None:
        if self._disagreement:  # every step has num_envs visits: the mean of the means
            self.logger.record_mean("ensemble/disagreement", float(np.mean(self._disagreement)))
            self._disagreement = []
        if not self._ended or sum(len(e) for e in self._ended) < self.min_episodes:
            return
        ended = np.concatenate(self._ended)
        actions = np.concatenate(self._actions)
        self.logger.record("retention/active_at_horizon", float(ended[:, 0].mean()))
        self.logger.record("retention/visits_per_shopper", float(ended[:, 1].mean()))
        gaps = ended[:, 5].sum()
        if gaps > 0:
            self.logger.record("retention/mean_days_between_visits", float(ended[:, 4].sum() / gaps))
        self.logger.record("retention/profit_per_shopper", float(ended[:, 2].mean()))
        self.logger.record("retention/coupon_spend_per_shopper", float(ended[:, 3].mean()))
        self.logger.record("retention/coupon_rate", float((self._coupon_index[actions] > 0).mean()))
        self.logger.record("actions/histogram", torch.as_tensor(actions), exclude=("stdout", "log", "json", "csv"))
        self._ended, self._actions = [], []
