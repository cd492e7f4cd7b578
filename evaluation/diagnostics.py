"""Weight diagnostics: is an off-policy estimate worth reading?

==========================  ===================================================================
diagnostic                  definition
==========================  ===================================================================
effective sample size       :math:`ESS = (\\sum_i w_i)^2 / \\sum_i w_i^2` (Kish); :math:`n` for
                            equal weights, near 1 when one weight dominates
largest weight              :math:`\\max_i w_i`, and its share :math:`\\max_i w_i / \\sum_i w_i`
unsupported target mass     :math:`\\frac1n \\sum_i \\sum_a \\pi_e(a \\mid x_i)\\,
                            1[\\pi_b(a \\mid x_i) \\le \\epsilon]` -- the target's probability
                            on actions the logging policy never takes; without
                            :math:`\\pi_b`, "never takes" means never logged in the data
==========================  ===================================================================

With positive unsupported mass, IPS-type estimators are biased (the target's reward on
those actions is never seen); a report should warn.

**Not estimable.** An estimate is shown as a number only when its weights' ESS reaches
:func:`min_ess` (:math:`\\max(0.01\\,n, 10)` units: below it a handful of logged units
decide the value) and its interval is finite with positive width (a zero-width interval
means every resample gave the same value, i.e. one or no unit carried weight).
:func:`not_estimable` gives the reason a report prints instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from retentionrl.evaluation._checks import float_vector

SUPPORT_WARNING_MASS = 0.01
"""Unsupported target mass above which a report warns."""
LOW_ESS_SHARE = 0.01
"""ESS below this share of the units (or below :data:`MIN_ESS`) triggers a warning, and the
estimate is not shown as a number."""
MIN_ESS = 10.0
"""Smallest ESS at which an estimate is shown as a number, whatever the sample size."""


def min_ess(n_units: int) -> float:
    r"""The ESS below which an estimate on ``n_units`` units is not estimable: :math:`\max(0.01 n, 10)`."""
    return max(LOW_ESS_SHARE * n_units, MIN_ESS)


def not_estimable(low: float, high: float, ess: float | None = None, n_units: int | None = None) -> str | None:
    """Why an estimate with interval ``[low, high]`` (and weights of ESS ``ess`` over
    ``n_units`` units, when known) is not estimable from the logs; None when it is."""
    if ess is not None and n_units is not None and not ess >= min_ess(n_units):
        return f"not estimable from these logs: effective sample size {ess:.1f} < {min_ess(n_units):.0f}"
    if not (np.isfinite(low) and np.isfinite(high)):
        return "not estimable from these logs: no finite interval"
    if not high > low:
        return "not estimable from these logs: a zero-width interval (one or no logged unit carries weight)"
    return None


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's :math:`(\\sum w)^2 / \\sum w^2`; 0 when every weight is 0."""
    w = float_vector("weights", weights)
    if (w < 0).any():
        raise ValueError(f"weights must be >= 0, got min {w.min()!r}")
    sq = float((w**2).sum())
    return float(w.sum() ** 2 / sq) if sq > 0 else 0.0


def unsupported_mass(
    action_dist: np.ndarray,
    behavior_dist: np.ndarray | None = None,
    logged_actions: np.ndarray | None = None,
    eps: float = 0.0,
) -> float:
    """Mean target probability on actions outside the logging policy's support.

    :param action_dist: ``(n, n_actions)`` target probabilities (or ``(n, n_actions,
        len_list)``, averaged over slots).
    :param behavior_dist: ``(n, n_actions)`` logging probabilities on the same rows; support
        is :math:`\\pi_b > \\epsilon`.
    :param logged_actions: used when ``behavior_dist`` is None: the support is the set of
        actions that appear in the log.
    """
    dist = np.asarray(action_dist, dtype=np.float64)
    if dist.ndim == 3:
        dist = dist.mean(axis=2)
    if dist.ndim != 2:
        raise ValueError(f"action_dist must have shape (n, n_actions[, len_list]), got {dist.shape}")
    if behavior_dist is not None:
        b = np.asarray(behavior_dist, dtype=np.float64)
        if b.ndim == 3:
            b = b.mean(axis=2)
        if b.shape != dist.shape:
            raise ValueError(f"behavior_dist must have shape {dist.shape}, got {b.shape}")
        outside = b <= eps
    elif logged_actions is not None:
        seen = np.zeros(dist.shape[1], dtype=bool)
        seen[np.asarray(logged_actions, dtype=np.int64)] = True
        outside = np.broadcast_to(~seen, dist.shape)
    else:
        raise ValueError("give behavior_dist or logged_actions to define the logging support")
    return float((dist * outside).sum(axis=1).mean())


@dataclass(frozen=True)
class WeightDiagnostics:
    """ESS, largest weight and unsupported mass of one target policy on one log."""

    n_units: int
    ess: float
    max_weight: float
    max_weight_share: float
    unsupported_mass: float

    @classmethod
    def of(cls, weights: np.ndarray, unsupported: float = float("nan")) -> WeightDiagnostics:
        """From the weights (per round, or per trajectory :math:`W_i`)."""
        w = float_vector("weights", weights)
        total = float(w.sum())
        return cls(
            int(w.size),
            effective_sample_size(w),
            float(w.max()),
            float(w.max() / total) if total > 0 else float("nan"),
            float(unsupported),
        )

    @property
    def warnings(self) -> list[str]:
        """Plain-language warnings for a report."""
        out = []
        if np.isfinite(self.unsupported_mass) and self.unsupported_mass > SUPPORT_WARNING_MASS:
            out.append(
                f"{self.unsupported_mass:.1%} of the target's probability is on actions the logging "
                "policy never takes: importance-weighted estimates are biased (they miss that reward)"
            )
        if self.ess < min_ess(self.n_units):
            out.append(f"effective sample size {self.ess:.1f} of {self.n_units}: a few weights dominate")
        return out

    def to_dict(self) -> dict[str, float]:
        return asdict(self)
