"""Selection of the policy to recommend: by the training reward's score in the simulator only."""

from __future__ import annotations

import pytest

from retentionrl.core.interval import Interval
from retentionrl.envs.reward import RewardConfig
from retentionrl.evaluation.selection import recommend, score


def values(visits: float, profit: float) -> dict[str, Interval]:
    return {"return_visits": Interval(visits, visits, visits), "profit": Interval(profit, profit, profit)}


def test_an_agent_is_recommended_only_when_it_beats_every_baseline():
    sim = {
        "ppo": values(3.6, 9.0),
        "dqn": values(3.1, 8.0),
        "popularity": values(3.5, 10.0),
        "random": values(2.8, 5.0),
    }
    chosen = recommend(sim, ["ppo", "dqn"], RewardConfig("retention"))
    assert (chosen.policy, chosen.is_agent, chosen.best_baseline) == ("ppo", True, ("popularity", 3.5))
    assert chosen.headline().startswith("Recommended: ppo")
    chosen = recommend(sim, ["ppo", "dqn"], RewardConfig("profit"))
    assert (chosen.policy, chosen.is_agent, chosen.best_agent) == ("popularity", False, ("ppo", 9.0 / 50))
    assert chosen.headline().startswith("No agent beats the best baseline")


def test_a_tie_goes_to_the_baseline_and_mixed_weights_both_by_hand():
    sim = {"ppo": values(3.0, 50.0), "popularity": values(3.0, 50.0)}
    assert recommend(sim, ["ppo"], RewardConfig("retention")).policy == "popularity"
    reward = RewardConfig("mixed", revenue_scale=25.0, retention_weight=0.25)
    assert score(values(4.0, 10.0), reward) == pytest.approx(0.25 * 4.0 + 0.75 * 10.0 / 25.0)


def test_no_candidates_is_an_error():
    with pytest.raises(ValueError, match="no policies"):
        recommend({}, [], RewardConfig())


def test_with_an_ensemble_the_least_favourable_member_decides():
    sim = {"ppo": values(3.7, 9.0), "popularity": values(3.4, 10.0)}  # the mixture favours ppo
    # ppo wins big in member 0 and loses in member 1; popularity is steady
    members = {"ppo": [values(4.0, 9.0), values(3.3, 9.0)], "popularity": [values(3.4, 10.0), values(3.45, 10.0)]}
    chosen = recommend(sim, ["ppo"], RewardConfig("retention"), members)
    assert (chosen.policy, chosen.is_agent, chosen.best_agent, chosen.score) == ("popularity", False, ("ppo", 3.3), 3.4)
    assert "the least of 2 simulators" in chosen.headline()
    members["ppo"][1] = values(3.5, 9.0)  # now it wins in every member
    assert recommend(sim, ["ppo"], RewardConfig("retention"), members).policy == "ppo"
    with pytest.raises(ValueError, match=r"no ensemble member values for \['popularity'\]"):
        recommend(sim, ["ppo"], RewardConfig("retention"), {"ppo": members["ppo"]})


def test_with_an_ensemble_an_agent_must_beat_the_baseline_in_every_member_not_only_its_worst_member():
    # the quickstart's numbers (simulator v6): ppo's least score beats popularity's least
    # (3.19 > 2.92), but the two minima come from different members and ppo loses in member 1
    members = {
        "ppo": [values(3.74, 0.0), values(3.19, 0.0), values(3.20, 0.0)],
        "popularity": [values(3.25, 0.0), values(3.55, 0.0), values(2.92, 0.0)],
    }
    sim = {name: values(sum(v["return_visits"].estimate for v in vs) / 3, 0.0) for name, vs in members.items()}
    chosen = recommend(sim, ["ppo"], RewardConfig("retention"), members)
    assert (chosen.policy, chosen.is_agent, chosen.members) == ("popularity", False, 3)
    assert chosen.gain == pytest.approx(3.19 - 3.55)
    assert chosen.headline().startswith(
        "No agent beats the best baseline in every one of the 3 learned simulators (best agent ppo: 3.190; it trails "
        "popularity by 0.360 in its least favourable simulator)"
    )
    members["ppo"][1] = values(3.60, 0.0)  # now ahead in every member: by 0.05 at least
    chosen = recommend(sim, ["ppo"], RewardConfig("retention"), members)
    assert (chosen.policy, chosen.gain) == ("ppo", pytest.approx(0.05))
    assert "beats the best baseline popularity (2.920) in every one of the 3 learned simulators, by 0.050 at least" in (
        chosen.headline()
    )
    with pytest.raises(ValueError, match="different numbers of ensemble members"):
        recommend(sim, ["ppo"], RewardConfig("retention"), {**members, "ppo": members["ppo"][:2]})


def test_an_agent_that_acts_as_the_baseline_ties_it_and_the_baseline_is_recommended():
    same = [values(3.25, 0.0), values(2.84, 0.0)]
    members = {"ppo": same, "popularity": list(same)}
    sim = {name: values(3.0, 0.0) for name in members}
    chosen = recommend(sim, ["ppo"], RewardConfig("retention"), members)
    assert (chosen.policy, chosen.gain) == ("popularity", 0.0)
    assert "it ties popularity in its least favourable simulator" in chosen.headline()
