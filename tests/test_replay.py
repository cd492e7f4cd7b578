"""Replayed history features: equal to the world's online observations, and hand-computed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retentionrl.core.policy import Policy
from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.io import read_events
from retentionrl.interactions.replay import history_features_from_visits
from retentionrl.interactions.trajectories import visits_with_trajectories
from retentionrl.simulators.policy_registry import make_policy
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs


class Recorder(Policy):
    """Delegates to ``inner`` and keeps every observation batch it acts on."""

    def __init__(self, inner: Policy) -> None:
        super().__init__(inner.action_space)
        self.inner, self.name, self.seen = inner, inner.name, []

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        return self.inner.action_probs(obs)

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.seen.append(obs.copy())
        return self.inner.act(obs, rng)


def test_replay_equals_the_worlds_online_observations(tmp_path):
    config = WorldConfig()
    recorder = Recorder(make_policy("softmax", config))
    write_world_logs(config, 600, 120, 5, tmp_path / "w.parquet", logging_policy=recorder)
    visits = visits_with_trajectories(read_events(tmp_path / "w.parquet"), horizon_days=config.horizon_days)
    replayed = history_features_from_visits(visits, ActionMap.fit(visits), config.horizon_days)
    # the world steps all shoppers of a lifetime visit k together, in user order
    lifetime_k = visits.groupby("user_id").cumcount().to_numpy()
    online = np.empty_like(replayed)
    online[np.lexsort((visits["user_id"].to_numpy(), lifetime_k))] = np.concatenate(recorder.seen)
    # a return after more than H days starts a new trajectory (empty history); the world goes on
    one_lifetime = (visits.groupby("user_id")["trajectory_id"].transform("nunique") == 1).to_numpy()
    assert one_lifetime.mean() > 0.95
    np.testing.assert_array_equal(replayed[one_lifetime], online[one_lifetime])


def test_replay_of_the_small_log_by_hand(small_log_path):
    visits = visits_with_trajectories(read_events(small_log_path), horizon_days=90)
    amap = ActionMap.fit(visits)  # arms i1, i2, i3 by item; ladder 0 / 5 / 10 / 20%
    x = history_features_from_visits(visits, amap, 90, spend_scale=50.0)
    assert x.shape == (3, 11 + 3)
    np.testing.assert_array_equal(x[0], 0.0)  # a's first visit: empty history
    np.testing.assert_array_equal(x[2], 0.0)  # b's only visit
    # a's second visit, 2 h after the first (arm i1, 10% coupon, clicked, bought 40, redeemed)
    gap = 2 / 24
    expected = [np.log(2), gap / 90, gap / 90, np.log1p(40 / 50), 1, 1, 1, 0.1 / 0.2, 1, 1, 0.1 / 0.2, 1, 0, 0]
    np.testing.assert_allclose(x[1], expected, rtol=1e-6)


def test_bad_visit_tables_are_rejected():
    visits = pd.DataFrame({"trajectory_id": [0, 0], "visit_index": [1, 0]})
    amap = ActionMap.fit(pd.DataFrame({"rec_item": [None, None]}))
    with pytest.raises(ValueError, match="lack the columns"):
        history_features_from_visits(visits, amap, 90)
    full = visits.assign(clicked=False, purchased=False, redeemed=False, spend=0.0, gap_days=np.nan, rec_item=None)
    with pytest.raises(ValueError, match="not sorted"):
        history_features_from_visits(full, amap, 90)
