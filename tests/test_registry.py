"""One policy factory (retentionrl.agents.registry): every name builds the policy it says, bad
names and missing logs are refused naming what is known, and a policy is refused on logs
whose action map gives its action indices another meaning."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from retentionrl.agents.registry import (
    BASELINES,
    check_action_map,
    logged_propensities,
    make_named_policy,
    policy_names,
)
from retentionrl.core.errors import InputError
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.io import read_events
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs

SPACE = WorldConfig().action_space


@pytest.fixture(scope="module")
def decisions(tmp_path_factory) -> LoggedDecisions:
    path = tmp_path_factory.mktemp("registry") / "world.parquet"
    write_world_logs(WorldConfig(), 400, 60, 0, path)
    return LoggedDecisions.from_log(read_events(path, "events"))


@pytest.mark.parametrize("name", [n for n in BASELINES if n != "uplift"])  # uplift: tests/test_uplift.py
def test_every_baseline_is_fit_on_the_logs_and_acts_in_their_space(decisions, name):
    policy = make_named_policy(name, SPACE, decisions=decisions, seed=0)
    probs = policy.action_probs(decisions.obs[:50])
    assert probs.shape == (50, SPACE.n_actions) and np.allclose(probs.sum(axis=1), 1.0)


def test_world_policies_and_errors_name_what_is_known(decisions):
    assert set(policy_names()) >= {"never-coupon", "softmax", "popularity", "logging-clone"}
    assert make_named_policy("never-coupon", SPACE).action_space == SPACE
    with pytest.raises(ValueError, match="'nope' is not a trained policy folder, a baseline \\(random, popularity"):
        make_named_policy("nope", SPACE)
    with pytest.raises(ValueError, match="the popularity baseline is fit on logs"):
        make_named_policy("popularity", SPACE)
    no_actions = decisions.take(np.zeros(decisions.n, dtype=bool) | ~decisions.logged)
    with pytest.raises(ValueError, match="hold no logged actions"):
        make_named_policy("popularity", SPACE, decisions=no_actions)
    other = WorldConfig(n_groups=10).action_space
    with pytest.raises(ValueError, match="acts on 20 arms x coupon levels .*; expected 10 arms"):
        make_named_policy("never-coupon", other)


def test_the_action_map_check_refuses_other_arms_and_levels(decisions):
    amap = decisions.action_map
    policy = make_named_policy("never-coupon", SPACE)
    check_action_map(policy, amap, policy_name="p", logs="logs.parquet")  # indices only: counts agree
    policy.arms = tuple(str(a) for a in amap.arms)
    check_action_map(policy, amap, policy_name="p", logs="logs.parquet")
    policy.arms = tuple(reversed(policy.arms))
    with pytest.raises(InputError, match="logs.parquet: policy 'p' was trained on arms .*first difference at index 0"):
        check_action_map(policy, amap, policy_name="p", logs="logs.parquet")
    levels = dataclasses.replace(amap, space=WorldConfig(coupon_levels=(0.0, 0.1, 0.3)).action_space)
    policy.arms = None
    with pytest.raises(InputError, match="acts on 20 arms x coupon levels \\[0.0, 0.05, 0.1, 0.2\\]; these logs'"):
        check_action_map(policy, levels, policy_name="p", logs="logs.parquet")


def test_logged_propensities_are_read_when_present_and_cloned_when_not(decisions):
    assert logged_propensities(decisions) is None
    blank = dataclasses.replace(decisions, propensity=np.full(decisions.n, np.nan))
    cloned = logged_propensities(blank)
    assert cloned.shape == (decisions.n,) and ((cloned > 0) & (cloned <= 1)).all()
