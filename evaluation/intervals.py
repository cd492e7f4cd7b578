"""Confidence intervals for off-policy estimates.

Two kinds:

* **Bootstrap over units** (shoppers or trajectories, never single steps, since the steps of
  one shopper are dependent): a resample draws ``N`` units with replacement; it is stored
  as a count matrix ``C`` of shape ``(B, N)`` (how often each unit was drawn), so every
  estimator that is a function of per-unit sums is evaluated on all resamples at once as
  ``C @ stats`` -- and the resamples are drawn **once** for all estimators. The interval is
  the percentile interval :math:`[q_{\\alpha/2}, q_{1-\\alpha/2}]` of the resampled
  estimates.
* **High-confidence lower bound** (Maurer & Pontil 2009, empirical Bernstein): for
  i.i.d. :math:`X_u \\in [a, a + b]`, with probability at least :math:`1 - \\delta`,

  .. math::
     \\mathbb E X \\ge \\bar X - \\sqrt{\\frac{2 \\hat V \\ln(2/\\delta)}{N}}
                     - \\frac{7 b \\ln(2/\\delta)}{3 (N - 1)}

  with :math:`\\hat V` the sample variance (ddof 1). ``b`` should be a known range; when it
  is not given the observed range is used, which makes the bound a heuristic.
"""

from __future__ import annotations

import numpy as np

from retentionrl.core.checks import require_int
from retentionrl.core.interval import Interval
from retentionrl.evaluation._checks import alpha_level

_BLOCK = 1 << 16
"""Units per block in :func:`_count_rows`: a block's counts stay in cache, and a uniform
draw inside a full block is 16 raw random bits."""


def _uniform_below(rng: np.random.Generator, size: int, m: int) -> np.ndarray:
    """``m`` i.i.d. uniform integers in ``[0, size)``; for ``size`` = 2**16 straight from the
    bit generator's raw 64-bit words (4 draws a word, exactly uniform, no rejection)."""
    if size == _BLOCK:
        words = rng.bit_generator.random_raw(-(-m // 4))
        return np.ascontiguousarray(words).view(np.uint16)[:m].astype(np.intp)
    return rng.integers(0, size, size=m)


def _count_rows(rng: np.random.Generator, n_units: int, rows: int) -> np.ndarray:
    """``(rows, n_units)`` float32 counts of ``rows`` resamples of ``n_units`` units with
    replacement, exactly multinomial: the draws are split among blocks of units by a
    multinomial over the block sizes, then drawn uniformly inside each block (the same law as
    drawing ``n_units`` units uniformly, but each block's counting stays in cache)."""
    out = np.empty((rows, n_units), dtype=np.float32)
    if n_units <= 4 * _BLOCK:
        draws = rng.integers(0, n_units, size=(rows, n_units))
        draws += (np.arange(rows) * n_units)[:, None]
        out[:] = np.bincount(draws.ravel(), minlength=rows * n_units).reshape(rows, n_units)
        return out
    starts = np.arange(0, n_units, _BLOCK)
    sizes = np.minimum(starts + _BLOCK, n_units) - starts
    per_block = rng.multinomial(n_units, sizes / n_units, size=rows)
    for r in range(rows):
        for k, (lo, size) in enumerate(zip(starts, sizes)):
            out[r, lo : lo + size] = np.bincount(_uniform_below(rng, int(size), int(per_block[r, k])), minlength=size)
    return out


def resampled_sums(
    stats: np.ndarray, n_bootstrap: int, rng: np.random.Generator | int | None, max_chunk: int = 1 << 24
) -> np.ndarray:
    """``C @ stats`` for ``C`` the ``(n_bootstrap, n_units)`` resample counts of
    the ``(n_bootstrap, n_units)`` counts of resampling ``n_units`` units with replacement, without ever holding ``C``: the resamples are drawn
    in chunks of rows (at most ``max_chunk`` counts at a time) and each chunk is applied to
    all columns of ``stats`` at once.

    The columns are centred before the float32 product (counts are exact small integers in
    float32) and the mean is added back in float64, since every resample's counts sum to
    ``n_units``: :math:`\\sum_u c_u s_u = \\sum_u c_u (s_u - \\bar s) + N \\bar s`.

    :param stats: ``(n_units, k)`` per-unit statistics.
    :returns: ``(n_bootstrap, k)`` float64.
    """
    require_int("n_bootstrap", n_bootstrap, 2)
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim != 2 or stats.shape[0] < 1:
        raise ValueError(f"stats must have shape (n_units >= 1, k), got {stats.shape}")
    n_units = stats.shape[0]
    rng = np.random.default_rng(rng)
    mean = stats.mean(axis=0)
    centred = (stats - mean).astype(np.float32)
    rows = max(1, min(int(n_bootstrap), max_chunk // n_units))
    out = np.empty((int(n_bootstrap), stats.shape[1]))
    for start in range(0, int(n_bootstrap), rows):
        stop = min(int(n_bootstrap), start + rows)
        out[start:stop] = _count_rows(rng, n_units, stop - start) @ centred
    return out + n_units * mean


def percentile_interval(
    estimate: float, resampled: np.ndarray, alpha: float = 0.05, lower_bound: float = float("nan")
) -> Interval:
    """The percentile interval of ``resampled`` estimates around ``estimate``."""
    alpha = alpha_level(alpha)
    resampled = np.asarray(resampled, dtype=np.float64)
    resampled = resampled[np.isfinite(resampled)]
    if resampled.size < 2:
        return Interval(float(estimate), float("nan"), float("nan"), lower_bound=lower_bound, alpha=alpha)
    low, high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
    return Interval(float(estimate), float(low), float(high), lower_bound=float(lower_bound), alpha=alpha)


def empirical_bernstein_lower(values: np.ndarray, delta: float = 0.05, value_range: float | None = None) -> float:
    """Maurer-Pontil lower bound on the mean of i.i.d. ``values`` (see the module docstring).

    :param values: one value per independent unit, at least 2.
    :param delta: failure probability in (0, 1).
    :param value_range: ``b``, the width of an interval known to hold every value; the
        observed ``max - min`` when None.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"values must be a vector of at least 2 units, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    delta = alpha_level(delta)
    b = float(x.max() - x.min()) if value_range is None else float(value_range)
    if b < 0:
        raise ValueError(f"value_range must be >= 0, got {value_range!r}")
    n = x.size
    log_term = np.log(2.0 / delta)
    return float(x.mean() - np.sqrt(2.0 * x.var(ddof=1) * log_term / n) - 7.0 * b * log_term / (3.0 * (n - 1)))


def hoeffding_lower(values: np.ndarray, delta: float = 0.05, value_range: float | None = None) -> float:
    """Hoeffding lower bound :math:`\\bar X - b \\sqrt{\\ln(1/\\delta) / (2N)}`."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < 1 or not np.isfinite(x).all():
        raise ValueError(f"values must be a finite non-empty vector, got shape {x.shape}")
    delta = alpha_level(delta)
    b = float(x.max() - x.min()) if value_range is None else float(value_range)
    return float(x.mean() - b * np.sqrt(np.log(1.0 / delta) / (2.0 * x.size)))


def unit_index(groups: np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
    """(unit of each row as 0..U-1, U): the given groups (shopper or trajectory ids) or one
    unit per row."""
    if groups is None:
        return np.arange(n), n
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must have shape ({n},) (one id per row), got {groups.shape}")
    _, inverse = np.unique(groups, return_inverse=True)
    return inverse.astype(np.int64), int(inverse.max()) + 1


def unit_sums(values: np.ndarray, unit: np.ndarray, n_units: int) -> np.ndarray:
    """Per-unit sums of ``values`` (rows) -> ``(n_units, ...)``."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        return np.bincount(unit, weights=values, minlength=n_units)
    out = np.zeros((n_units,) + values.shape[1:])
    np.add.at(out, unit, values)
    return out
