"""What the pipeline's stages hand to the report: typed records with a schema version.

The ``fidelity`` stage writes :class:`FidelityResults` (``fidelity.json``) and the
``evaluate`` stage :class:`EvaluateResults` (``results.json``), both through
:mod:`retentionrl.core.records`; the report reads them back into these classes, so a field
renamed on one side fails when the file is read, naming the field, instead of leaving a
blank in the report. Every estimate is a :class:`~retentionrl.core.interval.Interval`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

from retentionrl.core.interval import Interval
from retentionrl.core.records import read_record, write_record
from retentionrl.evaluation.certify import Certificate
from retentionrl.evaluation.selection import Recommendation
from retentionrl.interactions.adapters.complete_journey import CampaignSummary

SCHEMA_VERSION = 2
"""Version 1 was the untyped layout (``{"mean", "low", "high", "n"}`` dicts)."""


class StageRecord:
    """A stage's output file: :meth:`save` and :meth:`load` with the class's ``SCHEMA`` name
    and :data:`SCHEMA_VERSION`."""

    SCHEMA: ClassVar[str]

    def save(self, path: str | Path) -> None:
        write_record(path, self, self.SCHEMA, SCHEMA_VERSION)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        return read_record(path, cls, cls.SCHEMA, SCHEMA_VERSION)


@dataclass(frozen=True)
class Curve:
    """A retention curve: share still active by day with its 95% band, over ``n`` lifetimes,
    and its value at 7, 30 and H days (None past the longest duration the data speak for)."""

    days: list[float]
    survival: list[float]
    lower: list[float]
    upper: list[float]
    n: int
    at: dict[str, Interval | None]


@dataclass(frozen=True)
class PlaceValue:
    """A policy's per-shopper metrics (``return_visits``, ``active_at_horizon``, ``profit``,
    ``coupon_cost``, ...) in one place (the learned simulator or the world) and its curve."""

    values: dict[str, Interval]
    curve: Curve


@dataclass(frozen=True)
class ArmShare:
    """An arm and the share of a policy's probability on it."""

    arm: str
    share: float


@dataclass(frozen=True)
class SegmentBehaviour:
    """What a policy does in one shopper segment: the probability of any coupon and the arms
    with the most probability (both absent for fewer than two states)."""

    n: int
    coupon_rate: Interval | None = None
    top_arms: list[ArmShare] = field(default_factory=list)


@dataclass(frozen=True)
class OffPolicy:
    """Off-policy estimates of one policy on the held-out logs, with the diagnostics that say
    whether they mean anything (:func:`retentionrl.evaluation.diagnostics.not_estimable`)."""

    bandit: dict[str, Interval]
    trajectory: dict[str, Interval]
    n_visits: int
    n_trajectories: int
    ess: float
    bandit_ess: float
    unsupported_mass: float
    warnings: list[str]
    model: dict[str, Interval] = field(default_factory=dict)
    """model-based trajectory estimates (sim-magic, sim-dm, sim-dr) with the run's simulators"""


@dataclass(frozen=True)
class PolicyResult:
    """One policy: its kind (agent, baseline, heuristic), values in the simulator (and in
    each ensemble member, for candidates), in the world when known, and its behaviour."""

    kind: str
    simulator: PlaceValue
    behaviour: dict[str, SegmentBehaviour]
    world: PlaceValue | None = None
    members: list[dict[str, Interval]] = field(default_factory=list)
    ope: OffPolicy | None = None


@dataclass(frozen=True)
class FrontierPlace:
    """The policies on the retention-profit frontier in one place and, for each baseline and
    heuristic, the agents that dominate it (:mod:`retentionrl.evaluation.frontier`)."""

    frontier: list[str]
    dominated_by: dict[str, list[str]]


@dataclass(frozen=True)
class EvaluateResults(StageRecord):
    """The ``evaluate`` stage's output."""

    recommendation: Recommendation
    certificate: Certificate | None
    no_certificate: str | None
    horizon_days: int
    n_eval_users: int
    has_world: bool
    policies: dict[str, PolicyResult]
    rewards: dict[str, str]
    frontier: dict[str, FrontierPlace]
    propensity_note: str | None
    notes: list[str]
    arms: list[str]
    coupon_levels: list[float]
    heldout_states: int
    candidate_certificates: dict[str, Certificate] = field(default_factory=dict)
    """per metric: the best of the run's agents and baselines, chosen on the train split and
    certified once (:func:`retentionrl.evaluation.certify.certify_best`); empty where no
    certificate can be computed (``no_certificate`` says why)"""

    SCHEMA: ClassVar[str] = "retentionrl.evaluate"


@dataclass(frozen=True)
class HeadCard:
    """A head of the learned simulator: learned or not, on how many training visits, why not."""

    learned: bool
    examples: int
    reason: str


@dataclass(frozen=True)
class FidelityResults(StageRecord):
    """The ``fidelity`` stage's output: logged vs simulated retention of held-out shoppers,
    what the logs identify and the simulator's heads; on Complete Journey logs, also what
    its campaigns and coupons hold (``campaigns``; None for other logs)."""

    horizon_days: int
    logged_curve: Curve
    logged_return_visits: Interval | None
    simulated: PlaceValue
    policy: str
    heads: dict[str, HeadCard]
    identifies_recommendation: bool
    identifies_coupon: bool
    campaigns: CampaignSummary | None = None

    SCHEMA: ClassVar[str] = "retentionrl.fidelity"
