"""experiments/simulator_error_probe.py: the logs' effect of an ignored showing is measured
within groups (a planted effect is recovered where the pooled comparison is confounded), and
the per-visit split by purchase history counts every visit after the first once."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from experiments.simulator_error_probe import HISTORY, ignored_exposure_effect, rates_by_history
from retentionrl.core.actions import ActionSpace
from retentionrl.simulators.rollout import evaluate_policy
from retentionrl.simulators.world.logging_policies import UniformPolicy
from retentionrl.simulators.world.simulator import GroundTruthWorld

SPACE = ActionSpace(n_arms=2, coupon_levels=(0.0, 0.1))


def _planted(cells: list[tuple[int, bool, int, int]]) -> SimpleNamespace:
    """Two-visit lifetimes shown one group twice without a coupon. Each cell (group, ignored
    at the first visit, lifetimes, purchases at the second) adds that many lifetimes: the first
    visit is ignored (no click) or clicked without a purchase; the second buys in the first
    ``purchases`` lifetimes of the cell (a purchase comes with a click)."""
    action, click, purchase, trajectory, visit = [], [], [], [], []
    t = 0
    for group, ignored, n, buyers in cells:
        for k in range(n):
            bought = k < buyers
            action += [int(SPACE.encode(group, 0))] * 2
            click += [not ignored, bought]
            purchase += [False, bought]
            trajectory += [t, t]
            visit += [0, 1]
            t += 1
    as_array = np.asarray
    return SimpleNamespace(
        action=as_array(action),
        click=as_array(click),
        purchase=as_array(purchase),
        trajectory_id=as_array(trajectory),
        visit_index=as_array(visit),
    )


def test_a_planted_within_group_effect_is_recovered_where_pooling_is_confounded():
    # group 0: rare, bought little; group 1: popular (more ignored showings), bought more;
    # within each, an ignored showing lowers the next purchase rate by exactly 0.2
    decisions = _planted([(0, True, 100, 10), (0, False, 100, 30), (1, True, 300, 150), (1, False, 50, 35)])
    d_buy, se, d_click, groups = ignored_exposure_effect(decisions, SPACE)  # type: ignore[arg-type]
    assert groups == 2
    assert d_buy == pytest.approx(-0.2) and d_click == pytest.approx(-0.2)
    assert 0 < se < 0.1
    second = decisions.visit_index == 1
    ignored = ~decisions.click[decisions.visit_index == 0]
    pooled = decisions.purchase[second][ignored].mean() - decisions.purchase[second][~ignored].mean()
    assert pooled > -0.1  # the pooled comparison hides most of the effect


def test_groups_without_enough_visits_are_left_out_and_none_left_is_an_error():
    decisions = _planted([(0, True, 100, 10), (0, False, 100, 30), (1, True, 10, 5), (1, False, 10, 7)])
    assert ignored_exposure_effect(decisions, SPACE)[3] == 1  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no group has 200"):
        ignored_exposure_effect(decisions, SPACE, min_visits=200)  # type: ignore[arg-type]


def test_rates_by_history_counts_every_visit_after_the_first_once():
    world = GroundTruthWorld()
    policy = UniformPolicy(world.action_space)
    table = rates_by_history(world, policy, 300, seed=3)
    assert set(table.index) <= set(HISTORY)
    value = evaluate_policy(world, policy, 300, 3)  # the same seeds: the same lifetimes
    assert table["visits"].sum() == pytest.approx(value.return_visits.estimate * 300)
    assert (table["purchase"] <= table["click"]).all()  # the world sells only after a click
