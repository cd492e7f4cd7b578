"""Which policy to recommend: chosen in the learned simulator, never by world truth.

Every candidate (trained agents and baselines) is rolled out on the same fresh shoppers of
the learned simulator. Its score is the expected episode return of the reward the agents
were trained on, per shopper over the horizon (:mod:`retentionrl.envs.reward`):

=============  =================================================================
reward mode    score
=============  =================================================================
``retention``  return visits
``profit``     profit / :math:`S`
``mixed``      :math:`w \\cdot` return visits :math:`+ (1 - w) \\cdot` profit / :math:`S`
=============  =================================================================

The best baseline :math:`b^*` is the baseline with the largest score, and an agent
:math:`a`'s *gain* is how much it beats it, :math:`G(a) = V(a) - V(b^*)`. The recommended
policy is the agent with the largest gain if that gain is positive, else :math:`b^*`: ties
go to the baseline (it is simpler to run), and when the baseline is recommended the report
says first that no agent beat it in the simulator.

With an ensemble of simulators (:mod:`retentionrl.simulators.learned.ensemble`, members
:math:`k = 1..K`, each rolled out alone on the same shoppers' seeds) the decision is
pessimistic, as model-based offline RL uses ensembles: a candidate's score is its smallest
member score :math:`\\min_k V_k`, the value every model of the logs agrees it reaches at
least, and an agent's gain is its smallest *paired* gain

.. math:: G(a) = \\min_k \\big(V_k(a) - V_k(b^*)\\big),

so an agent is recommended only if it beats the baseline in every member. Comparing the
two policies' smallest scores instead takes them from different members, and can prefer an
agent that loses to the baseline in one of them (measured on the quickstart, simulator v6:
PPO at w = 0.25 scored 3.74 / 3.19 / 3.20 against popularity's 3.25 / 3.55 / 2.92, so its
least score beat popularity's, 3.19 against 2.92, while it lost by 0.36 in the second member). Only simulator values enter: a result reported against
world truth is never the one it was chosen on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from retentionrl.core.interval import Interval
from retentionrl.envs.reward import RewardConfig


@dataclass(frozen=True)
class Recommendation:
    """The chosen policy and why.

    :param policy: its name.
    :param is_agent: it is a trained agent (not a baseline).
    :param score: its score in the simulator (module docstring).
    :param best_baseline: the baseline with the largest score, and that score.
    :param best_agent: the agent with the largest gain, and its score (None without agents).
    :param criterion: the score in words.
    :param gain: that agent's gain over the best baseline (module docstring: its smallest
        over the members of an ensemble); None without agents or without baselines.
    :param members: simulators the decision read (1 without an ensemble).
    """

    policy: str
    is_agent: bool
    score: float
    best_baseline: tuple[str, float] | None
    best_agent: tuple[str, float] | None
    criterion: str
    gain: float | None = None
    members: int = 1

    def headline(self) -> str:
        """The report's first line."""
        every = "" if self.members == 1 else f" in every one of the {self.members} learned simulators"
        if self.is_agent:
            base = ""
            if self.best_baseline and self.gain is not None:
                least = " at least" if self.members > 1 else ""
                base = f"; it beats the best baseline {self.best_baseline[0]} ({self.best_baseline[1]:.3f}){every}, by {self.gain:.3f}{least}"
            return f"Recommended: {self.policy} ({self.criterion} in the learned simulator: {self.score:.3f}{base})."
        agent = ""
        if self.best_agent:
            agent = f" (best agent {self.best_agent[0]}: {self.best_agent[1]:.3f}"
            if self.gain is not None:
                where = "" if self.members == 1 else " in its least favourable simulator"
                behind = (
                    f"ties {self.policy}" if round(self.gain, 3) == 0 else f"trails {self.policy} by {-self.gain:.3f}"
                )
                agent += f"; it {behind}{where}"
            agent += ")"
        return (
            f"No agent beats the best baseline{every or ' in the learned simulator'}{agent}: recommended: the "
            f"baseline {self.policy} ({self.criterion}: {self.score:.3f})."
        )

    def to_dict(self) -> dict[str, object]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def score(values: Mapping[str, Interval], reward: RewardConfig) -> float:
    """The score of one policy from its per-shopper simulator values (metric -> estimate)."""
    visits, profit = values["return_visits"].estimate, values["profit"].estimate / reward.revenue_scale
    if reward.mode == "retention":
        return float(visits)
    if reward.mode == "profit":
        return float(profit)
    return float(reward.retention_weight * visits + (1.0 - reward.retention_weight) * profit)


def criterion(reward: RewardConfig) -> str:
    """The score in words."""
    return {
        "retention": "return visits per shopper",
        "profit": f"profit per shopper / {reward.revenue_scale:g}",
        "mixed": f"{reward.retention_weight:g} x return visits + {1 - reward.retention_weight:g} x profit / "
        f"{reward.revenue_scale:g} per shopper",
    }[reward.mode]


def recommend(
    simulator_values: Mapping[str, Mapping[str, Interval]],
    agents: Iterable[str],
    reward: RewardConfig,
    member_values: Mapping[str, Sequence[Mapping[str, Interval]]] | None = None,
) -> Recommendation:
    """The policy to recommend among ``simulator_values`` (name -> its values in the simulator).

    :param agents: the names that are trained agents; every other name is a baseline.
    :param member_values: name -> its values in each member of an ensemble (the same
        members, in the same order, for every name); when given, a candidate's score is its
        smallest member score and an agent's gain its smallest paired gain (module docstring).
    :raises ValueError: no candidates, or member values missing for a candidate, or not as
        many members for every candidate.
    """
    if not simulator_values:
        raise ValueError("no policies to choose from")
    agents = set(agents)
    if member_values is None:
        per_member = {name: [score(values, reward)] for name, values in simulator_values.items()}
    else:
        missing = sorted(n for n in simulator_values if not member_values.get(n))
        if missing:
            raise ValueError(f"no ensemble member values for {missing}")
        per_member = {name: [score(v, reward) for v in member_values[name]] for name in simulator_values}
        if len({len(v) for v in per_member.values()}) > 1:
            raise ValueError(
                f"candidates have different numbers of ensemble members: { {n: len(v) for n, v in per_member.items()} }"
            )
    k = len(next(iter(per_member.values())))
    words = criterion(reward) if member_values is None else f"{criterion(reward)}, the least of {k} simulators"
    scores = {name: min(v) for name, v in per_member.items()}

    def best(names: list[str], key: dict[str, float]) -> str | None:
        return max(names, key=lambda n: key[n]) if names else None

    baseline = best([n for n in scores if n not in agents], scores)
    agent_names = [n for n in scores if n in agents]
    if baseline is None:
        gains = {}
        agent = best(agent_names, scores)
    else:
        gains = {n: min(a - b for a, b in zip(per_member[n], per_member[baseline])) for n in agent_names}
        agent = best(agent_names, gains)
    best_baseline = None if baseline is None else (baseline, scores[baseline])
    best_agent = None if agent is None else (agent, scores[agent])
    gain = gains.get(agent) if agent is not None else None
    if agent is not None and (baseline is None or gains[agent] > 0):
        chosen, is_agent = agent, True
    else:
        assert baseline is not None  # scores is not empty: with no agent, there is a baseline
        chosen, is_agent = baseline, False
    return Recommendation(chosen, is_agent, scores[chosen], best_baseline, best_agent, words, gain, k)
