"""Mapping logged recommendations and coupons to the flat actions policies emit.

A visit's logged action is its first ``impression`` (see :mod:`retentionrl.interactions.visits`):
the recommended item (``rec_item``), its group (``rec_group``, when the log has
``item_group``) and the offered coupon (``rec_coupon``). :class:`ActionMap` fixes, once,
which values are the arms:

* ``rec_group`` when the log has item groups (a large catalog recommends groups);
* otherwise ``rec_item`` when at most ``max_item_arms`` distinct items were recommended;
* otherwise the ``max_item_arms - 1`` most recommended items, plus one arm "other";
* a log with no impressions at all gets a single arm and says so: it cannot identify any
  effect of recommendations (:attr:`ActionMap.identifies_recommendation` is False).

Coupons map to the nearest level of the coupon ladder (an exact match is required).
:attr:`ActionMap.coverage` records what varied in the logs, so that a model fitted on
them never claims an effect it could not learn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from retentionrl.core.actions import DEFAULT_COUPON_LEVELS, ActionSpace

OTHER_ARM = "other"


@dataclass(frozen=True)
class ActionMap:
    """Arms (by logged value) and the coupon ladder of a log.

    :param arm_column: ``rec_group``, ``rec_item`` or ``None`` (no impressions logged).
    :param arms: the logged values that are arms, in arm-index order (``"other"`` last
        when the catalog was cut).
    :param space: the flat action space.
    :param coverage: what the log showed: visits with an action, distinct arms and coupon
        levels seen, share of visits with a coupon offered.
    """

    arm_column: str | None
    arms: tuple
    space: ActionSpace
    coverage: dict[str, float] = field(default_factory=dict)

    @property
    def identifies_recommendation(self) -> bool:
        """The log varied the recommendation, so its effect can be learned."""
        return self.arm_column is not None and self.coverage.get("arms_seen", 0) > 1

    @property
    def identifies_coupon(self) -> bool:
        """The log varied the coupon, so its effect can be learned."""
        return self.coverage.get("coupon_levels_seen", 0) > 1

    @classmethod
    def fit(
        cls,
        visits: pd.DataFrame,
        *,
        max_item_arms: int = 50,
        coupon_levels: tuple[float, ...] = DEFAULT_COUPON_LEVELS,
    ) -> ActionMap:
        """Choose the arms and coupon ladder of the visits' logged actions."""
        if max_item_arms < 2:
            raise ValueError(f"max_item_arms must be >= 2, got {max_item_arms}")
        has_action = visits["rec_item"].notna().to_numpy() if "rec_item" in visits else np.zeros(len(visits), bool)
        if "rec_group" in visits and visits["rec_group"].notna().any():
            column, arms = "rec_group", tuple(sorted(visits["rec_group"].dropna().unique().tolist()))
        elif has_action.any():
            column = "rec_item"
            counts = visits["rec_item"].dropna().value_counts()
            if len(counts) <= max_item_arms:
                arms = tuple(sorted(counts.index.tolist()))
            else:
                arms = tuple(sorted(counts.index[: max_item_arms - 1].tolist())) + (OTHER_ARM,)
        else:
            column, arms = None, ("any",)
        space = ActionSpace(n_arms=len(arms), coupon_levels=coupon_levels)
        offered = visits["rec_coupon"].to_numpy(dtype="float64") if "rec_coupon" in visits else np.zeros(len(visits))
        levels_seen = np.unique(space.coupon_index(offered[has_action])) if has_action.any() else np.array([0])
        coverage = {
            "visits": float(len(visits)),
            "visits_with_action": float(has_action.sum()),
            "arms_seen": float(visits.loc[has_action, column].nunique()) if column else 0.0,
            "coupon_levels_seen": float(levels_seen.size),
            "coupon_offer_rate": float((offered[has_action] > 0).mean()) if has_action.any() else 0.0,
        }
        return cls(arm_column=column, arms=arms, space=space, coverage=coverage)

    def encode(self, visits: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Flat action of each visit and a mask of the visits that logged one.

        Visits without an impression get action 0 (arm 0, no coupon) and mask False.
        """
        n = len(visits)
        if self.arm_column is None:
            return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
        values = visits[self.arm_column]
        logged = values.notna().to_numpy()
        index = pd.Index(self.arms)
        arm = index.get_indexer(values)
        if self.arms[-1] == OTHER_ARM:
            arm = np.where((arm < 0) & logged, len(self.arms) - 1, arm)
        unknown = (arm < 0) & logged
        if unknown.any():
            first = values.to_numpy()[np.flatnonzero(unknown)[:3]].tolist()
            raise ValueError(f"{self.arm_column} values {first} are not arms of this action map")
        coupon = (
            self.space.coupon_index(visits["rec_coupon"].to_numpy(dtype="float64")) if "rec_coupon" in visits else 0
        )
        action = self.space.encode(np.where(logged, arm, 0), np.where(logged, coupon, 0))
        return action, logged
