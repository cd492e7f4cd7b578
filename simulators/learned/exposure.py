"""Ignored showings: how often each arm was shown to a shopper who did not respond to it.

The observable history (:class:`~retentionrl.interactions.history.HistoryFeatures`) counts a
shopper's clicks and purchases per arm, not how often each arm was *shown*: a shopper shown
group 12 three times without a click or purchase looks exactly like one never shown it. A
policy that keeps showing one arm lives on that difference, and the logs carry evidence on
it: within an arm, an earlier ignored showing lowers the next purchase rate
(``experiments/simulator_error_probe.py`` measures it). With
``ModelSize.exposure_input`` the sequence model reads, per arm :math:`g`, before visit
:math:`k` of a trajectory,

.. math::

    \\mathrm{ignored}_g = \\log\\Big(1 + \\sum_{j<k} [a_j = g]\\,(1 - click_j)(1 - buy_j)\\Big)

as :math:`A` more feature columns after the observation's (:data:`IGNORED_PREFIX`
``<g>``), and gathers the value of the shown arm into its action-specific inputs
(:meth:`~retentionrl.simulators.learned.sequence_model.ShopperSequenceModel.action_features`).
A visit with no logged action counts for no arm. :func:`ignored_showings_from_visits`
computes the columns of logged visits (training, fidelity), :class:`IgnoredShowings` keeps
them for the shoppers a simulator steps; both give the same float32 values.
"""

from __future__ import annotations

import numpy as np

from retentionrl.core.checks import require_int

IGNORED_PREFIX = "ignored_"
"""Name prefix of the exposure columns: ``ignored_<g>`` for arm ``g``."""


def ignored_feature_names(n_arms: int) -> tuple[str, ...]:
    """Names of the ``n_arms`` exposure columns, in arm order."""
    return tuple(f"{IGNORED_PREFIX}{g}" for g in range(n_arms))


def ignored_showings_from_visits(
    arm: np.ndarray, ignored: np.ndarray, trajectory_start: np.ndarray, n_arms: int
) -> np.ndarray:
    """The exposure columns (module docstring) *before* every logged visit, float32 ``(n, n_arms)``.

    :param arm: each visit's arm, ints in ``[0, n_arms]`` (``n_arms``: no logged action), shape ``(n,)``.
    :param ignored: bool ``(n,)``, the visit had neither a click nor a purchase.
    :param trajectory_start: bool ``(n,)``, the visit opens a trajectory (its history is empty);
        trajectories are contiguous and in order.
    """
    arm = np.asarray(arm, dtype=np.int64)
    n = arm.shape[0]
    if np.asarray(ignored).shape != (n,) or np.asarray(trajectory_start).shape != (n,):
        raise ValueError(f"arm, ignored and trajectory_start must all have shape ({n},)")
    if n == 0:
        return np.zeros((0, n_arms), np.float32)
    if not np.asarray(trajectory_start)[0]:
        raise ValueError("the first visit must open a trajectory")
    counts = np.zeros((n, n_arms + 1))  # column n_arms collects the unlogged visits
    counts[np.arange(n), arm] = np.asarray(ignored, dtype=np.float64)
    before = np.cumsum(counts[:, :n_arms], axis=0) - counts[:, :n_arms]  # over every earlier visit
    owner = np.maximum.accumulate(np.where(trajectory_start, np.arange(n), 0))
    before -= before[owner]  # ... of the visit's own trajectory
    return np.log1p(before).astype(np.float32)


class IgnoredShowings:
    """The exposure columns of a batch of shoppers, kept visit by visit (module docstring).

    :param n_arms: arms, >= 1.
    """

    def __init__(self, n_arms: int) -> None:
        require_int("n_arms", n_arms, 1)
        self.n_arms = int(n_arms)
        self.reset(0)

    def reset(self, n: int) -> None:
        """``n`` shoppers with an empty history."""
        require_int("n", n, 0)
        self._counts = np.zeros((int(n), self.n_arms))

    def reset_rows(self, mask: np.ndarray) -> None:
        """Empty the history of the shoppers where the bool ``mask`` ``(n,)`` is true."""
        self._counts[mask] = 0.0

    def keep_rows(self, mask: np.ndarray) -> None:
        """Carry on only the shoppers where the bool ``mask`` ``(n,)`` is true."""
        self._counts = self._counts[mask]

    def record(self, arm: np.ndarray, click: np.ndarray, purchase: np.ndarray) -> None:
        """Add a visit per shopper shown ``arm`` (ints in ``[0, n_arms)``, ``(n,)``) with 0/1 ``click`` and ``purchase``."""
        ignored = (np.asarray(click) <= 0) & (np.asarray(purchase) <= 0)
        self._counts[np.arange(self._counts.shape[0]), np.asarray(arm, dtype=np.int64)] += ignored

    def features(self) -> np.ndarray:
        """The exposure columns, float32 ``(n, n_arms)``."""
        return np.log1p(self._counts).astype(np.float32)
