"""What a fitted simulator knows about its own data: the model card saved with it.

A learned simulator can only know the effects its logs varied. The card records, besides
the model sizes and the action map, for every head whether it was learned and from how
many visits, and whether the recommendation and the coupon entered the model at all:

* ``heads[name] = {"learned": bool, "examples": int, "rate": float, "reason": str}``; a
  head is *not learned* when the log gives it no signal: no click events, no purchase
  offered a coupon, no prices, or an outcome that never varied (a purchase-only log has a
  purchase at every visit). The simulator then does not invent an effect: a Bernoulli
  outcome happens at the log's constant ``rate`` (0 with no examples; 1 for purchases in
  a purchase-only log), and spend is 0 without prices;
* ``action_inputs = {"arm": bool, "coupon": bool}``: False where the log did not vary that
  part of the action (:attr:`retentionrl.interactions.action_map.ActionMap.identifies_recommendation`
  and ``identifies_coupon``); the model then always sees the value it was trained on
  (``fixed_arm``, ``fixed_coupon``), so the simulated effect of that part is exactly zero;
* ``gross_margins[a]``: the gross margin of arm :math:`a` in the log
  (:func:`retentionrl.simulators.learned.visit_data.gross_margins`); the simulator's cost of goods at a visit
  that recommends :math:`a` is :math:`(1 - m_a)` x spend. ``records_cogs`` is False where
  the log records no cost of goods (no ``unit_cost``): every margin is then 1, so profit
  is net revenue (spend - coupon cost).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from retentionrl.core.actions import ActionSpace
from retentionrl.core.records import to_plain
from retentionrl.interactions.action_map import ActionMap
from retentionrl.simulators.learned.sequence_model import MODEL_VERSION, ModelSpec
from retentionrl.simulators.learned.visit_data import HEADS


@dataclass
class ModelCard:
    """Everything but the tensors of a fitted simulator (JSON-ready via :meth:`to_dict`).

    :param spec: model sizes.
    :param arm_column: the action map's arm column (``None``: no impressions logged).
    :param arms: logged values of the arms, in arm order.
    :param coupon_levels: the coupon ladder.
    :param coverage: the action map's coverage of the training log.
    :param spend_scale: :math:`S` of the observable features.
    :param feature_names: observation column names.
    :param heads: per head: learned, number of training visits, reason when not learned.
    :param action_inputs: whether the arm and the coupon enter the model.
    :param fixed_arm: model arm input when the arm does not enter (``n_arms`` = none).
    :param fixed_coupon: model coupon input (fraction of the largest level) when the coupon
        does not enter.
    :param gross_margins: gross margin of each arm, in arm order (1 without costs of goods).
    :param records_cogs: whether the training log recorded the cost of goods.
    :param fit_config: the fit configuration (:class:`retentionrl.simulators.learned.fit.FitConfig` as a dict).
    :param data_summary: events, visits, users, trajectories of the training log, and
        ``world_version``: the ground-truth world's version where the log's Parquet
        metadata records one (else ``None``).
    :param metrics: validation metrics of the saved weights.
    :param reactivation: the dormancy law's parameters
        (:class:`retentionrl.simulators.learned.reactivation.ReactivationLaw` as a dict; empty
        for a card written before it existed: dormant shoppers never return).
    :param model_version: :data:`~retentionrl.simulators.learned.sequence_model.MODEL_VERSION` of the model's
        equations; :meth:`from_dict` refuses a card of another version.
    """

    spec: ModelSpec
    arm_column: str | None
    arms: list
    coupon_levels: list[float]
    coverage: dict[str, float]
    spend_scale: float
    feature_names: list[str]
    heads: dict[str, dict]
    action_inputs: dict[str, bool]
    fixed_arm: int
    fixed_coupon: float
    gross_margins: list[float]
    records_cogs: bool
    fit_config: dict = field(default_factory=dict)
    data_summary: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    reactivation: dict = field(default_factory=dict)
    model_version: int = MODEL_VERSION

    @property
    def action_map(self) -> ActionMap:
        """The action map of the training log."""
        space = ActionSpace(n_arms=len(self.arms), coupon_levels=tuple(self.coupon_levels))
        return ActionMap(arm_column=self.arm_column, arms=tuple(self.arms), space=space, coverage=dict(self.coverage))

    def learned(self, head: str) -> bool:
        """Whether ``head`` (one of :data:`~retentionrl.simulators.learned.visit_data.HEADS`) was learned."""
        return bool(self.heads[head]["learned"])

    def rate(self, head: str) -> float:
        """The log's constant rate of a Bernoulli head (used where it was not learned)."""
        return float(self.heads[head]["rate"])

    def not_learned(self) -> list[str]:
        """Heads without signal in the training log."""
        return [h for h in HEADS if not self.learned(h)]

    def to_dict(self) -> dict:
        """A JSON-ready dict (numpy scalars made plain)."""
        return to_plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        version = data.get("model_version", 1)
        if version != MODEL_VERSION:
            raise ValueError(f"model version {version!r}, this code reads version {MODEL_VERSION}; refit the simulator")
        data["spec"] = ModelSpec(**data["spec"])
        return cls(**data)

    @classmethod
    def describe(
        cls,
        spec: ModelSpec,
        action_map: ActionMap,
        spend_scale: float,
        feature_names: tuple[str, ...],
        support: dict[str, int],
        positives: dict[str, int],
        fixed_coupon: float,
        min_examples: int,
        gross_margins: np.ndarray,
        records_cogs: bool,
    ) -> ModelCard:
        """A card for a model about to be fit: which heads and action parts have signal.

        :param support: training visits per head; ``positives``: of those, how many had the
            outcome (Bernoulli heads only); a Bernoulli head needs both outcomes.
        :param gross_margins: margin of each arm (:func:`retentionrl.simulators.learned.visit_data.gross_margins`).
        :param records_cogs: the log records the cost of goods.
        """
        no_data = {
            "click": "the log has no click events",
            "purchase": "the log has no visits",
            "redeemed": "no purchase in the log was offered a coupon",
            "spend": "no purchase in the log has a positive price",
            "return": "the log has no visits",
        }
        heads = {}
        for head in HEADS:
            n, pos = support[head], positives.get(head)
            rate = pos / n if pos is not None and n > 0 else 0.0
            if n == 0:
                reason = no_data[head]
            elif n < min_examples:
                reason = f"only {n} training visits (fewer than {min_examples})"
            elif pos is not None and pos in (0, n):
                reason = f"the outcome never varied in the log (rate {rate:g})"
            else:
                reason = ""
            heads[head] = {"learned": not reason, "examples": n, "rate": float(rate), "reason": reason}
        return cls(
            spec=spec,
            arm_column=action_map.arm_column,
            arms=list(action_map.arms),
            coupon_levels=list(action_map.space.coupon_levels),
            coverage=dict(action_map.coverage),
            spend_scale=float(spend_scale),
            feature_names=list(feature_names),
            heads=heads,
            action_inputs={"arm": action_map.identifies_recommendation, "coupon": action_map.identifies_coupon},
            fixed_arm=0 if action_map.arm_column is not None else spec.n_arms,
            fixed_coupon=float(fixed_coupon),
            gross_margins=[float(m) for m in gross_margins],
            records_cogs=bool(records_cogs),
        )
