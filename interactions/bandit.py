"""Logged bandit feedback: one decision per round, the structure off-policy estimators read.

A round ``i`` is one logged decision: the shop saw context ``x_i``, its logging policy chose
action ``a_i`` (at slot ``k_i`` of a list, when there are positions) with probability
``p_i``, and the shopper answered with reward ``r_i``. This is obp's ``bandit_feedback``
dict, typed and checked once, when it is built.

==============  ===================  ===============  ============================================
field           type                 shape            meaning
==============  ===================  ===============  ============================================
n_actions       int                  scalar           size of the action set, >= 1
action          int64                (n,)             logged action, in ``[0, n_actions)``
reward          float64              (n,)             observed reward, finite
propensity      float64              (n,)             logging policy's ``pi_b(a_i | x_i, k_i)``,
                                                      in (0, 1]
context         float64              (n, d)           context features, finite; ``d`` may be 0
position        int64 or None        (n,)             0-based slot, in ``[0, len_list)``;
                                                      ``None`` when the log has no positions
len_list        int                  scalar           number of slots; 1 when ``position`` is
                                                      ``None``
action_context  float64 or None      (n_actions, k)   features of each action, finite
reward_name     str                  scalar           what the reward is ("click", "visit", ...)
source          str                  scalar           where the rounds came from (a file)
context_names   tuple[str, ...]      (d,) or ()       names of the context columns; () = unnamed
==============  ===================  ===============  ============================================

Arrays are stored read-only (views when no conversion was needed). Invalid input raises
:class:`~retentionrl.core.errors.LogError` (a ``ValueError``) naming the field, the first bad
rounds (shown 1-based, like the data rows of the file they came from) and their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from retentionrl.core.errors import LogError

_Z95 = 1.959963984540054  # standard normal quantile at 0.975


@dataclass(frozen=True, eq=False, repr=False)
class BanditFeedback:
    """Logged bandit feedback, validated on construction; see the module docstring."""

    n_actions: int
    action: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray
    context: np.ndarray
    position: np.ndarray | None = None
    len_list: int = 1
    action_context: np.ndarray | None = None
    reward_name: str = "reward"
    source: str = "<arrays>"
    context_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        src = self.source
        if not isinstance(src, str):
            raise ValueError(f"BanditFeedback source must be a str, got {src!r}")
        if not isinstance(self.reward_name, str) or not self.reward_name:
            raise ValueError(f"{src}: reward_name must be a non-empty str, got {self.reward_name!r}")
        n_actions = _positive_int(src, "n_actions", self.n_actions)
        len_list = _positive_int(src, "len_list", self.len_list)

        action = _vector(src, "action", _int_array(src, "action", self.action), None)
        n = action.shape[0]
        if n == 0:
            raise LogError(src, "no rounds: action is empty", column="action")
        _check_range(src, "action", action, 0, n_actions - 1)
        reward = _vector(src, "reward", _float_array(src, "reward", self.reward), n)
        _check_finite(src, "reward", reward)
        propensity = _vector(src, "propensity", _float_array(src, "propensity", self.propensity), n)
        _check_finite(src, "propensity", propensity)
        bad = ~((propensity > 0.0) & (propensity <= 1.0))
        _raise_rows(src, "propensity", "must lie in (0, 1]", bad, propensity)

        context = _float_array(src, "context", self.context)
        if context.ndim != 2 or context.shape[0] != n:
            raise LogError(src, f"must have shape (n_rounds={n}, d), got {context.shape}", column="context")
        names = tuple(self.context_names)
        if names and len(names) != context.shape[1]:
            raise ValueError(f"{src}: context_names has {len(names)} names for {context.shape[1]} context columns")
        _check_finite(src, "context", context, names)

        if self.position is None:
            position = None
            if len_list != 1:
                raise ValueError(f"{src}: len_list is {len_list} but position is None; give the positions")
        else:
            position = _vector(src, "position", _int_array(src, "position", self.position), n)
            _check_range(src, "position", position, 0, len_list - 1)

        action_context = None
        if self.action_context is not None:
            action_context = _float_array(src, "action_context", self.action_context)
            if action_context.ndim != 2 or action_context.shape[0] != n_actions:
                raise LogError(
                    src,
                    f"must have shape (n_actions={n_actions}, k), got {action_context.shape}",
                    column="action_context",
                )
            _check_finite(src, "action_context", action_context)

        fields: dict[str, Any] = {
            "n_actions": n_actions,
            "len_list": len_list,
            "action": action,
            "reward": reward,
            "propensity": propensity,
            "context": context,
            "position": position,
            "action_context": action_context,
            "context_names": names,
        }
        for name, value in fields.items():
            if isinstance(value, np.ndarray):
                value = value.view()
                value.flags.writeable = False
            object.__setattr__(self, name, value)

    @property
    def n_rounds(self) -> int:
        """Number of logged rounds ``n``."""
        return int(self.action.shape[0])

    @property
    def dim_context(self) -> int:
        """Number of context features ``d``."""
        return int(self.context.shape[1])

    def summary(self) -> dict[str, Any]:
        """Counts and moments of the log, for a report or the CLI.

        ``reward_ci95`` is the normal-approximation interval
        ``mean ± 1.96 · s / sqrt(n)`` with ``s`` the sample standard deviation (ddof 1);
        it is ``(nan, nan)`` for a single round.
        """
        n = self.n_rounds
        mean = float(self.reward.mean())
        if n > 1:
            half = _Z95 * float(self.reward.std(ddof=1)) / float(np.sqrt(n))
            ci = (mean - half, mean + half)
        else:
            ci = (float("nan"), float("nan"))
        return {
            "source": self.source,
            "rounds": n,
            "actions": self.n_actions,
            "actions_logged": int(np.unique(self.action).size),
            "positions": self.len_list,
            "context_dims": self.dim_context,
            "action_context_dims": None if self.action_context is None else int(self.action_context.shape[1]),
            "reward_name": self.reward_name,
            "reward_mean": mean,
            "reward_ci95": ci,
            "propensity_min": float(self.propensity.min()),
            "propensity_max": float(self.propensity.max()),
            "propensity_mean": float(self.propensity.mean()),
        }

    def subsample(self, idx: np.ndarray) -> BanditFeedback:
        """The rounds picked by ``idx``: a boolean mask of length ``n`` or integer indices
        in ``[0, n)`` (repeats allowed, so a bootstrap sample is a subsample)."""
        idx = np.asarray(idx)
        n = self.n_rounds
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise ValueError(f"a boolean mask must have shape ({n},), got {idx.shape}")
        elif idx.dtype.kind in "iu":
            outside = (idx < 0) | (idx >= n)
            if np.any(outside):
                raise ValueError(f"index {int(idx[outside].ravel()[0])} is outside [0, {n - 1}]")
        else:
            raise ValueError(f"idx must be a boolean mask or integer indices, got dtype {idx.dtype}")
        return BanditFeedback(
            n_actions=self.n_actions,
            action=self.action[idx],
            reward=self.reward[idx],
            propensity=self.propensity[idx],
            context=self.context[idx],
            position=None if self.position is None else self.position[idx],
            len_list=self.len_list,
            action_context=self.action_context,
            reward_name=self.reward_name,
            source=self.source,
            context_names=self.context_names,
        )

    def bootstrap(self, rng: np.random.Generator | int | None = None) -> BanditFeedback:
        """A bootstrap resample: ``n`` rounds drawn uniformly with replacement.

        :param rng: a generator, or a seed for ``np.random.default_rng``.
        """
        rng = np.random.default_rng(rng)
        return self.subsample(rng.integers(0, self.n_rounds, size=self.n_rounds))

    def prob_of_logged(self, action_dist: np.ndarray) -> np.ndarray:
        """``pi_e(a_i | x_i, k_i)``: an evaluation policy's probability of each logged action
        at its logged slot, the numerator of the importance weight ``pi_e / propensity``.

        :param action_dist: ``(n, n_actions, len_list)`` probabilities per round, or
            ``(n_actions, len_list)`` for a policy that ignores the context; the trailing
            ``len_list`` axis may be left out when ``len_list`` is 1. Finite, >= 0.
        :returns: float64 array of shape ``(n,)``.
        """
        dist = np.asarray(action_dist, dtype=np.float64)
        n, k = self.n_rounds, self.len_list
        allowed = [(n, self.n_actions, k), (self.n_actions, k)]
        if k == 1:
            allowed += [(n, self.n_actions), (self.n_actions,)]
        if dist.shape not in allowed:
            raise ValueError(f"action_dist must have shape in {allowed}, got {dist.shape}")
        if not np.all(np.isfinite(dist)) or np.any(dist < 0):
            raise ValueError("action_dist must hold finite probabilities >= 0")
        if k == 1 and dist.shape in allowed[2:]:
            dist = dist[..., None]
        pos = np.zeros(n, dtype=np.int64) if self.position is None else self.position
        if dist.ndim == 3:
            return dist[np.arange(n), self.action, pos]
        return dist[self.action, pos]

    def __repr__(self) -> str:
        return (
            f"BanditFeedback(source={self.source!r}, rounds={self.n_rounds}, actions={self.n_actions}, "
            f"positions={self.len_list}, context_dims={self.dim_context}, reward={self.reward_name!r})"
        )


def _positive_int(source: str, name: str, value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{source}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _float_array(source: str, name: str, values: object) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LogError(source, f"must hold numbers: {exc}", column=name) from exc


def _int_array(source: str, name: str, values: object) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind != "f":
        raise LogError(source, f"must hold integers, got dtype {arr.dtype}", column=name)
    flat = arr.ravel()
    bad = ~np.isfinite(flat) | (flat != np.round(flat))
    _raise_rows(source, name, "must hold integers", bad, flat)
    return arr.astype(np.int64)


def _vector(source: str, name: str, arr: np.ndarray, n: int | None) -> np.ndarray:
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = "(n_rounds,)" if n is None else f"(n_rounds={n},)"
        raise LogError(source, f"must have shape {want}, got {arr.shape}", column=name)
    return arr


def _check_range(source: str, name: str, arr: np.ndarray, low: int, high: int) -> None:
    _raise_rows(source, name, f"must lie in [{low}, {high}]", (arr < low) | (arr > high), arr)


def _check_finite(source: str, name: str, arr: np.ndarray, names: tuple[str, ...] = ()) -> None:
    bad = ~np.isfinite(arr)
    if arr.ndim == 1:
        _raise_rows(source, name, "must be finite (no NaN or inf)", bad, arr)
        return
    rows = np.flatnonzero(bad.any(axis=1))
    if rows.size:
        cols = bad[rows].argmax(axis=1)
        label = f"'{names[cols[0]]}'" if names else f"{cols[0]}"
        shown = slice(0, LogError.max_rows_shown)
        raise LogError(
            source,
            f"must be finite (no NaN or inf); first bad feature: {label}",
            column=name,
            rows=rows[shown],
            values=arr[rows[shown], cols[shown]].tolist(),
            n_bad=rows.size,
        )


def _raise_rows(source: str, name: str, message: str, bad: np.ndarray, arr: np.ndarray) -> None:
    if np.any(bad):
        raise LogError.for_rows(source, message, name, bad, arr)
