"""Input checks shared by the estimators: every error is a ``ValueError`` that names the
argument, the first offending rows (0-based) and their values."""

from __future__ import annotations

import numpy as np

MAX_SHOWN = 5


def _rows(bad: np.ndarray, values: np.ndarray) -> str:
    idx = np.flatnonzero(bad)
    shown = ", ".join(f"row {i}: {values.ravel()[i].item()!r}" for i in idx[:MAX_SHOWN])
    more = f" (and {idx.size - MAX_SHOWN} more)" if idx.size > MAX_SHOWN else ""
    return shown + more


def float_vector(name: str, values: object, n: int | None = None) -> np.ndarray:
    """A finite float64 vector, of length ``n`` when given."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers: {exc}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n} (as reward), got {arr.shape[0]}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: nothing to estimate from")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} must be finite (no NaN or inf); {_rows(bad, arr)}")
    return arr


def int_vector(name: str, values: object, n: int, low: int, high: int) -> np.ndarray:
    """An integer vector of length ``n`` with values in ``[low, high)``."""
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise ValueError(f"{name} must hold integers; {_rows(bad, arr)}")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < low) | (arr >= high)
    if bad.any():
        raise ValueError(f"{name} must lie in [{low}, {high - 1}]; {_rows(bad, arr)}")
    return arr


def propensity_vector(values: object, n: int) -> np.ndarray:
    """Logging probabilities of the logged actions: finite, in (0, 1]."""
    p = float_vector("propensity", values, n)
    bad = (p <= 0.0) | (p > 1.0)
    if bad.any():
        raise ValueError(f"propensity must lie in (0, 1]; {_rows(bad, p)}")
    return p


def probability_vector(name: str, values: object, n: int) -> np.ndarray:
    """Target probabilities of the logged actions: finite, in [0, 1]."""
    p = float_vector(name, values, n)
    bad = (p < 0.0) | (p > 1.0)
    if bad.any():
        raise ValueError(f"{name} must lie in [0, 1]; {_rows(bad, p)}")
    return p


def per_action_array(name: str, values: object, n: int, len_list: int, *, probabilities: bool) -> np.ndarray:
    """``(n, n_actions, len_list)`` float array; ``(n, n_actions)`` is accepted when
    ``len_list`` is 1. Probabilities must be >= 0 and sum to 1 over actions per slot."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2 and len_list == 1:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] != n or arr.shape[2] != len_list:
        raise ValueError(f"{name} must have shape (n={n}, n_actions, len_list={len_list}), got {arr.shape}")
    if probabilities:
        # fast path (one pass each): entries >= 0 (NaN fails) whose slot sums are ~1 are finite
        sums = arr.sum(axis=1)
        if arr.min(initial=0.0) >= 0 and np.isfinite(sums).all() and (np.abs(sums - 1.0) <= 1e-6).all():
            return arr
    elif np.isfinite(arr.sum()):  # NaN or inf anywhere makes the total non-finite
        return arr
    bad = ~np.isfinite(arr)
    if bad.any():
        i, a, k = np.argwhere(bad)[0]
        raise ValueError(f"{name} must be finite; first bad entry [{i}, {a}, {k}] = {arr[i, a, k].item()!r}")
    if probabilities:
        if (arr < 0).any():
            i, a, k = np.argwhere(arr < 0)[0]
            raise ValueError(f"{name} must be >= 0; entry [{i}, {a}, {k}] = {arr[i, a, k].item()!r}")
        sums = arr.sum(axis=1)
        off = np.abs(sums - 1.0) > 1e-6
        if off.any():
            i, k = np.argwhere(off)[0]
            raise ValueError(f"{name} must sum to 1 over actions; row {i}, slot {k} sums to {sums[i, k].item()!r}")
    return arr


def positive(name: str, value: float, *, allow_inf: bool = False) -> float:
    value = float(value)
    if not (value > 0) or (np.isinf(value) and not allow_inf) or np.isnan(value):
        raise ValueError(f"{name} must be > 0{' (inf allowed)' if allow_inf else ''}, got {value!r}")
    return value


def alpha_level(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    return alpha
