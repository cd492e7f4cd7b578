"""One number with its interval: the type every estimate of the project is reported in.

``estimate`` is the point value; ``[low, high]`` its two-sided interval at level
``1 - alpha``; ``lower_bound`` a one-sided high-confidence lower bound where a concentration
bound applies (NaN where none does); ``n`` the number of independent units (shoppers,
lifetimes, states) behind it. :meth:`Interval.of` is the normal-approximation interval of
a mean, :math:`\\bar x \\pm z_{1-\\alpha/2}\\, s / \\sqrt{n}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054
"""The standard normal's 97.5% quantile, ``scipy.stats.norm.ppf(0.975)`` to the last bit: the
half-width of a 95% interval in standard errors (a literal, so that importing this module,
which every command does, does not import scipy.stats)."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval (see the module docstring)."""

    estimate: float
    low: float
    high: float
    n: int = 0
    lower_bound: float = float("nan")
    alpha: float = 0.05

    @classmethod
    def of(cls, values: np.ndarray, alpha: float = 0.05) -> Interval:
        """Mean of per-unit ``values`` with its normal-approximation interval (NaN bounds for
        fewer than two units)."""
        values = np.asarray(values, dtype=np.float64)
        mean = float(values.mean())
        if values.size < 2:
            return cls(mean, float("nan"), float("nan"), int(values.size), alpha=alpha)
        if alpha == 0.05:
            z = Z95
        else:
            from scipy.stats import norm

            z = float(norm.ppf(1.0 - alpha / 2.0))
        half = z * float(values.std(ddof=1)) / math.sqrt(values.size)
        return cls(mean, mean - half, mean + half, int(values.size), alpha=alpha)

    def covers(self, value: float) -> bool:
        """Whether ``low <= value <= high``."""
        return bool(self.low <= value <= self.high)

    def format(self, digits: int = 3) -> str:
        """``estimate [low, high]`` to ``digits`` significant digits; the estimate alone where
        the bounds are not finite, an em dash where the estimate is not."""
        if not math.isfinite(self.estimate):
            return "—"
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"{self.estimate:.{digits}g}"
        return f"{self.estimate:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"

    def __str__(self) -> str:
        return self.format(4)
