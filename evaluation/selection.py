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

With an ensemble of simulators (:mod:`retentionrl.simulators.learned.ensemble`) a candidate's score is its
*smallest* score over the members, each rolled out alone: the value every model of the
logs agrees it reaches at least, so a policy that wins only in one model's errors is not
chosen (pessimism, as model-based offline RL uses ensembles).

The recommended policy is the candidate with the largest score; ties go to the baseline
(it is simpler to run). When it is a baseline, no agent beat the best baseline in the
simulator and the report says so first. Only simulator values enter: a result reported
against world truth is never the one it was chosen on.
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
    :param best_agent: the agent with the largest score, and that score (None without agents).
    :param criterion: the score in words.
    """

    policy: str
    is_agent: bool
    score: float
    best_baseline: tuple[str, float] | None
    best_agent: tuple[str, float] | None
    criterion: str

    def headline(self) -> str:
        """The report's first line."""
        if self.is_agent:
            base = f"; best baseline {self.best_baseline[0]}: {self.best_baseline[1]:.3f}" if self.best_baseline else ""
            return f"Recommended: {self.policy} ({self.criterion} in the learned simulator: {self.score:.3f}{base})."
        agent = f" (best agent {self.best_agent[0]}: {self.best_agent[1]:.3f})" if self.best_agent else ""
        return (
            f"No agent beats the best baseline in the learned simulator{agent}: recommended: the baseline "
            f"{self.policy} ({self.criterion}: {self.score:.3f})."
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
    :param member_values: name -> its values in each member of an ensemble; when given,
        a candidate's score is its smallest member score (module docstring).
    :raises ValueError: no candidates, or member values missing for a candidate.
    """
    if not simulator_values:
        raise ValueError("no policies to choose from")
    agents = set(agents)
    if member_values is None:
        scores = {name: score(values, reward) for name, values in simulator_values.items()}
        words = criterion(reward)
    else:
        missing = sorted(n for n in simulator_values if not member_values.get(n))
        if missing:
            raise ValueError(f"no ensemble member values for {missing}")
        scores = {name: min(score(v, reward) for v in member_values[name]) for name in simulator_values}
        k = max(len(member_values[n]) for n in simulator_values)
        words = f"{criterion(reward)}, the least of {k} simulators"

    def best(names: list[str]) -> tuple[str, float] | None:
        return max(((n, scores[n]) for n in names), key=lambda t: t[1]) if names else None

    best_agent = best([n for n in scores if n in agents])
    best_baseline = best([n for n in scores if n not in agents])
    if best_agent is not None and (best_baseline is None or best_agent[1] > best_baseline[1]):
        chosen, is_agent = best_agent, True
    else:
        assert best_baseline is not None  # scores is not empty: with no agent, there is a baseline
        chosen, is_agent = best_baseline, False
    return Recommendation(chosen[0], is_agent, chosen[1], best_baseline, best_agent, words)
