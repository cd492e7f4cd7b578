"""How a fitted reward model's estimation error enters the intervals: its first-order influence.

DM, DR and their variants plug a reward model :math:`\\hat q` fitted on the same log into
the estimate. Resampling the rounds with :math:`\\hat q` held fixed misses the variability of
the fit (for DM, most of it). The honest bootstrap refits the model on every resample;
this module gives that refit to first order, at the cost of one linear solve per fitted
model instead of one fit per resample.

A model here is a penalized GLM with canonical link (squared loss: identity, ridge; log
loss: logistic), fitted by :math:`\\sum_j c_j s_j(\\beta) = \\Lambda \\beta` with round weights
:math:`c_j` (1 on the log), score :math:`s_j = \\phi_j (y_j - \\mu_j)` and penalty
:math:`\\Lambda`. Reweighting round :math:`j` to :math:`1 + \\varepsilon` moves the fit by
:math:`d\\beta / d\\varepsilon = H^{-1} \\phi_j (y_j - \\mu_j)` (implicit function theorem,
:math:`H = \\sum_j \\mu'_j \\phi_j \\phi_j^\\top + \\Lambda`). For a linear functional of the
predictions

.. math:: L(\\hat q) = \\sum_{i, a, k} S_{iak}\\, \\hat q(x_i, a, k)
          + \\sum_i \\ell_i\\, \\hat q(x_i, a_i, k_i)

(``all_actions`` :math:`S`, ``logged`` :math:`\\ell`), the influence of round :math:`j` is

.. math:: \\psi_j = \\frac{dL}{d\\varepsilon_j}
          = (y_j - \\mu_j)\\, \\phi_j^\\top H^{-1} G, \\qquad
          G = \\sum_{i, a, k} S_{iak}\\, \\mu'_{iak}\\, \\phi_{iak}
          + \\sum_i \\ell_i\\, \\mu'_i\\, \\phi_i,

summed over every fitted model whose training rows include :math:`j` (with cross-fitting,
the models of the other folds; :math:`G` then sums over the rows each model predicts).
A bootstrap resample with counts :math:`c` moves :math:`L` by
:math:`\\sum_j (c_j - 1) \\psi_j + O(\\lVert c - 1 \\rVert^2 / n^2)`: the first-order
refit bootstrap.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class RewardFit(Protocol):
    """A reward model fitted on the logged rounds, with its fit influence.

    ``estimated_rewards``: :math:`\\hat q(x_i, a, k)` for every logged round, action and slot,
    the shape of the target's ``action_dist``. ``influence(all_actions, logged)``: the
    ``(n,)`` vector :math:`\\psi` of the module docstring for the functional with weights
    ``all_actions`` (shape of ``estimated_rewards``; None = 0) and ``logged`` (``(n,)``;
    None = 0).
    """

    @property
    def estimated_rewards(self) -> np.ndarray: ...

    def influence(self, all_actions: np.ndarray | None, logged: np.ndarray | None) -> np.ndarray: ...
