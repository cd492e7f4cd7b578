"""What a shop can observe about each shopper: features of their own visit history.

:class:`HistoryFeatures` accumulates, for a batch of shoppers, running counts over the
visits seen so far and turns them into one float32 vector per shopper. Every input is
written in an event log (the action shown and offered, click, purchase, spend, whether a
coupon was redeemed, the days between visits), so the same features can be recomputed
from logged visits for off-policy evaluation and for the learned simulator; nothing here
reads a simulator's latent state.

Features at visit :math:`k` of a shopper (visits :math:`0..k-1` already seen; every
ratio over an empty history is 0; :math:`H` = ``horizon_days``, :math:`S` =
``spend_scale``, :math:`c_{max}` = the largest coupon level):

========================  ==============================================================
name                      formula
========================  ==============================================================
``log_visits``            :math:`\\log(1 + k)`
``days_since_first``      :math:`(t_k - t_0) / H`
``days_since_last``       :math:`(t_k - t_{k-1}) / H`, 0 at the first visit
``log_spend``             :math:`\\log(1 + \\sum_{j<k} spend_j / S)`
``purchase_rate``         :math:`\\frac1k \\sum_{j<k} purchase_j`
``click_rate``            :math:`\\frac1k \\sum_{j<k} click_j`
``coupon_share``          :math:`\\frac1k \\sum_{j<k} [c_j > 0]`  (share of visits offered one)
``mean_coupon``           :math:`\\frac1k \\sum_{j<k} c_j / c_{max}`
``last_purchase``         :math:`purchase_{k-1}`
``last_redeemed``         :math:`redeemed_{k-1}`
``last_coupon``           :math:`c_{k-1} / c_{max}`
``arm_share_<g>``         :math:`e_g / \\max(1, \\sum_h e_h)`, with
                          :math:`e_g = \\sum_{j<k} [arm_j = g](click_j + purchase_j)`
========================  ==============================================================

where :math:`t_j` is the day of visit :math:`j` and :math:`c_j` the coupon fraction
offered at it. All features lie in [0, 1] except the two logs and ``days_since_*`` (which
pass 1 only past the horizon).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from retentionrl.core.actions import ActionSpace
from retentionrl.core.checks import require_int


class VisitOutcomeLike(Protocol):
    """What :meth:`HistoryFeatures.update` reads of an outcome: ``(n,)`` arrays."""

    @property
    def click(self) -> np.ndarray: ...
    @property
    def purchase(self) -> np.ndarray: ...
    @property
    def redeemed(self) -> np.ndarray: ...
    @property
    def spend(self) -> np.ndarray: ...


SCALAR_FEATURES: tuple[str, ...] = (
    "log_visits",
    "days_since_first",
    "days_since_last",
    "log_spend",
    "purchase_rate",
    "click_rate",
    "coupon_share",
    "mean_coupon",
    "last_purchase",
    "last_redeemed",
    "last_coupon",
)
"""Names of the features before the per-arm shares, in column order."""


def history_feature_names(n_arms: int) -> tuple[str, ...]:
    """Column names of :meth:`HistoryFeatures.features` for ``n_arms`` arms."""
    return SCALAR_FEATURES + tuple(f"arm_share_{g}" for g in range(n_arms))


class HistoryFeatures:
    """Batched running history of ``n`` shoppers (see the module docstring for the math).

    :param action_space: the (arm, coupon) action space; sets the number of arm shares and
        the coupon scale :math:`c_{max}` (a ladder of only "no coupon" uses scale 1).
    :param horizon_days: :math:`H`, days that scale the time features, >= 1.
    :param spend_scale: :math:`S`, a typical spend per purchase in currency units, > 0.
    """

    _COUNTERS: tuple[str, ...] = (
        "n_visits",
        "day",
        "last_gap",
        "spend",
        "purchases",
        "clicks",
        "coupons",
        "coupon_sum",
        "last_purchase",
        "last_redeemed",
        "last_coupon",
    )
    """Rows of the running-count matrix (float64), in the order of ``SCALAR_FEATURES``: row
    ``k`` is what feature ``k`` is computed from. Engagement has its own float32 matrix."""

    def __init__(self, action_space: ActionSpace, horizon_days: float, spend_scale: float = 50.0) -> None:
        if not horizon_days >= 1:
            raise ValueError(f"horizon_days must be >= 1, got {horizon_days!r}")
        if not spend_scale > 0:
            raise ValueError(f"spend_scale must be > 0, got {spend_scale!r}")
        self.action_space = action_space
        self.horizon_days = float(horizon_days)
        self.spend_scale = float(spend_scale)
        self._levels = np.asarray(action_space.coupon_levels, dtype=np.float64)
        coupon_scale = self._levels[-1] if self._levels[-1] > 0 else 1.0
        self.names: tuple[str, ...] = history_feature_names(action_space.n_arms)
        # per counter row: its factor in the feature (days / H, last coupon / c_max); per rate
        # row (purchases .. coupon sum): the divisor of 1 / visits (the mean coupon's is c_max)
        per_day, per_coupon = 1.0 / self.horizon_days, 1.0 / coupon_scale
        self._row_factor = np.array([1.0, per_day, per_day, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, per_coupon])[:, None]
        self._rate_divisor = np.array([1.0, 1.0, 1.0, coupon_scale])[:, None]
        self._kept = np.array([0.0 if name.startswith("last_") else 1.0 for name in self._COUNTERS])[:, None]
        # the same constants as Python floats, for the one-shopper path (_record_one, _features_one)
        self._level_list: list[float] = self._levels.tolist()
        self._row_factor_list: list[float] = self._row_factor[:, 0].tolist()
        self._coupon_scale = float(coupon_scale)
        self._kept_list: list[float] = self._kept[:, 0].tolist()
        self.reset(0)

    @property
    def n(self) -> int:
        """Number of shoppers in the batch."""
        return self._stats.shape[1]

    def reset(self, n: int) -> None:
        """Start ``n`` shoppers with an empty history (each at their first visit)."""
        require_int("n", n, 0)
        # one row per counter, one column per shopper: each update touches contiguous rows;
        # engagement counts (exact in float32 below 2**24) feed float32 shares directly
        self._stats = np.zeros((len(self._COUNTERS), int(n)))
        self._engagement = np.zeros((self.action_space.n_arms, int(n)), dtype=np.float32)

    def state(self) -> np.ndarray:
        """Every shopper's running counts, float64 ``(n, 11 + n_arms)`` (the counters of
        ``_COUNTERS``, then the per-arm engagement counts): all :meth:`features` reads, so a
        store can keep a shopper's history as these numbers and :meth:`set_state` resume it."""
        return np.concatenate([self._stats, self._engagement.astype(np.float64)]).T.copy()

    def set_state(self, state: np.ndarray) -> None:
        """Resume the histories :meth:`state` returned; the batch becomes ``len(state)`` shoppers.

        :raises ValueError: ``state`` not of shape ``(n, 11 + n_arms)``.
        """
        state = np.asarray(state, dtype=np.float64)
        width = len(self._COUNTERS) + self.action_space.n_arms
        if state.ndim != 2 or state.shape[1] != width:
            raise ValueError(f"state must have shape (n, {width}), got {state.shape}")
        self._stats = state[:, : len(self._COUNTERS)].T.copy()
        self._engagement = state[:, len(self._COUNTERS) :].T.astype(np.float32)

    def reset_rows(self, mask: np.ndarray) -> None:
        """Empty the history of the shoppers where ``mask`` (bool, shape ``(n,)``) is true."""
        mask = self._check_mask(mask)
        self._stats[:, mask] = 0.0
        self._engagement[:, mask] = 0.0

    def keep_rows(self, mask: np.ndarray) -> None:
        """Drop the shoppers where ``mask`` is false; the batch shrinks to ``mask.sum()``."""
        mask = self._check_mask(mask)
        self._stats = self._stats[:, mask]
        self._engagement = self._engagement[:, mask]

    def update(
        self,
        arm: np.ndarray,
        coupon_index: np.ndarray,
        outcome: VisitOutcomeLike,
        gap_days: np.ndarray,
    ) -> None:
        """Add one visit per shopper and move each shopper's clock to their next visit.

        :param arm: arm shown at the visit, ints in ``[0, n_arms)``, shape ``(n,)``.
        :param coupon_index: coupon level index offered, ints in ``[0, n_coupons)``.
        :param outcome: the visit's outcome; reads ``click``, ``purchase``, ``redeemed``
            and ``spend`` (any object with those ``(n,)`` arrays, e.g. a
            :class:`retentionrl.simulators.interface.VisitOutcome`).
        :param gap_days: days from this visit to the next, > 0; a non-finite gap (churn,
            end of log) leaves the clock where it is.
        :raises ValueError: ``arm`` not of shape ``(n,)``, or an arm or coupon index out of
            range (naming it); then :meth:`record` adds the visit.
        """
        arm = np.asarray(arm, dtype=np.int64)
        coupon_index = np.asarray(coupon_index, dtype=np.int64)
        if arm.shape != (self.n,):
            raise ValueError(f"arm must have shape ({self.n},), got {arm.shape}")
        self.action_space.encode(arm, coupon_index)  # range checks, naming the bad value
        self.record(arm, coupon_index, outcome, gap_days)

    def record(
        self,
        arm: np.ndarray,
        coupon_index: np.ndarray,
        outcome: VisitOutcomeLike,
        gap_days: np.ndarray,
    ) -> None:
        """:meth:`update` with no checks, for a simulator's own step: ``arm`` and
        ``coupon_index`` must be int arrays of shape ``(n,)`` within range already (e.g.
        decoded from actions that :meth:`ActionSpace.check` passed)."""
        if self._stats.shape[1] == 1:
            self._record_one(int(arm[0]), int(coupon_index[0]), outcome, float(gap_days[0]))
            return
        coupon = self._levels[coupon_index]
        gap = np.asarray(gap_days, dtype=np.float64)
        last_gap = np.where(np.isfinite(gap), gap, 0.0)
        # this visit's value of each counter (rows as in _COUNTERS): a running count adds
        # it, a last_* counter is replaced by it (its old value kept x 0)
        visit = np.array(
            [
                np.ones_like(last_gap),
                last_gap,
                last_gap,
                outcome.spend,
                outcome.purchase,
                outcome.click,
                coupon > 0,
                coupon,
                outcome.purchase,
                outcome.redeemed,
                coupon,
            ],
            dtype=np.float64,
        )
        self._stats *= self._kept
        self._stats += visit
        self._engagement[arm, np.arange(self.n)] += visit[4] + visit[5]  # purchase + click

    def _record_one(self, arm: int, coupon_index: int, outcome: VisitOutcomeLike, gap: float) -> None:
        """:meth:`record` of a batch of one shopper, in Python floats: the same float64
        operations in the same order (``count x kept + visit``), so the same bits, without the
        fixed cost of a dozen numpy calls on length-1 arrays."""
        coupon = self._level_list[coupon_index]
        last_gap = gap if math.isfinite(gap) else 0.0
        purchase, click = float(outcome.purchase[0]), float(outcome.click[0])
        visit = (
            1.0,
            last_gap,
            last_gap,
            float(outcome.spend[0]),
            purchase,
            click,
            float(coupon > 0),
            coupon,
            purchase,
            float(outcome.redeemed[0]),
            coupon,
        )
        counts = self._stats[:, 0].tolist()
        self._stats[:, 0] = [count * kept + v for count, kept, v in zip(counts, self._kept_list, visit)]
        self._engagement[arm, 0] += purchase + click  # integer counts: exact in float32 or float64

    def features(self) -> np.ndarray:
        """The feature matrix, float32, shape ``(n, len(names))`` (columns as :attr:`names`).

        The scalar features are computed in float64 with a few whole-matrix operations (on
        a small batch the cost is the number of numpy calls, not the data) and rounded once;
        the array is Fortran-ordered (each feature contiguous). A new array each call: callers
        may keep it.
        """
        if self._stats.shape[1] == 1:
            return self._features_one()
        stats, n_scalar = self._stats, len(SCALAR_FEATURES)
        scalar = stats * self._row_factor
        visits, _, _, spend, purchases, clicks = stats[:6]
        per_visit = 1.0 / np.maximum(visits, 1.0)
        np.multiply(stats[4:8], per_visit / self._rate_divisor, out=scalar[4:8])  # the rates
        np.divide(spend, self.spend_scale, out=scalar[3])
        np.log1p(scalar[0:4:3], out=scalar[0:4:3])  # log_visits and log_spend
        out = np.empty((len(self.names), self.n), dtype=np.float32)
        out[:n_scalar] = scalar
        inv_total = (1.0 / np.maximum(purchases + clicks, 1.0)).astype(np.float32)
        np.multiply(self._engagement, inv_total, out=out[n_scalar:])
        return out.T

    def _features_one(self) -> np.ndarray:
        """:meth:`features` of a batch of one shopper: the same float64 operations in Python
        floats (the logs still in numpy), so the same bits. A share is the exact product of two
        float32 values (an integer count below 2**24 and the rounded inverse total), rounded
        to float32 when written: float32's own product."""
        counts = self._stats[:, 0].tolist()
        visits, _, _, spend, purchases, clicks = counts[:6]
        scalar = [count * factor for count, factor in zip(counts, self._row_factor_list)]
        per_visit = 1.0 / max(visits, 1.0)  # the rates (a divisor of 1 leaves per_visit exact)
        scalar[4:8] = [count * per_visit for count in counts[4:7]] + [counts[7] * (per_visit / self._coupon_scale)]
        scalar[0], scalar[3] = np.log1p(np.array([scalar[0], spend / self.spend_scale])).tolist()
        inv_total = float(np.float32(1.0 / max(purchases + clicks, 1.0)))
        out = np.empty((len(self.names), 1), dtype=np.float32)
        out[:, 0] = scalar + [engaged * inv_total for engaged in self._engagement[:, 0].tolist()]
        return out.T

    def _check_mask(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.n,):
            raise ValueError(f"mask must be a bool array of shape ({self.n},), got {mask.dtype} {mask.shape}")
        return mask
