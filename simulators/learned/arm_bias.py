"""Per-arm intercepts of the response heads, and their start at the logged rates.

A recommender's response model has a bias per item (the item bias of matrix factorisation:
"this item sells less than average, whoever sees it"). The sequence model's arm embedding
can express it only through the shared head layer, and a rare arm's embedding gets few
gradient steps before early stopping ends the fit: measured on world v2 logs (20,000
shoppers, softmax logging, seed 0), groups 1 and 13 were shown 541 and 657 times and
bought after a click 0.117 and 0.130 of the time, while the fitted model put them at 0.248
and 0.205 on those very visits (the common groups within 0.02); a policy that shows them
(``premium``) then reads 11-27% too much profit. With ``ModelSize.arm_bias`` the heads'
outputs get a learned row :math:`b_a` per arm (:math:`o_k = W_2 g_k + b_2 + b_{a_k}`), and
the fit starts it at the logged rates (:func:`initial_arm_bias`), as the return hazard's
baseline starts at the Kaplan-Meier hazard: training then moves it only as the likelihood
says.

Start of each head's row (arm :math:`a` with :math:`n_a` of the head's training visits, sum
:math:`y_a`; pooled mean :math:`\\bar y`; :math:`\\mathrm{logit}` of rates clipped to
:math:`[10^{-4}, 1 - 10^{-4}]`):

.. math::

    \\hat y_a = \\frac{y_a + m \\bar y}{n_a + m}, \\qquad
    b_{a,h} = \\mathrm{logit}(\\hat y_a) - \\mathrm{logit}(\\bar y) \\text{ (binary heads)}, \\qquad
    b_{a,\\mu} = \\hat y_a - \\bar y \\text{ (log spend)}

a rate shrunk towards the pooled one by :math:`m` pseudo-visits, :math:`m` estimated by the
method of moments (empirical Bayes): :math:`m = v_w / \\tau^2`, with :math:`v_w` the
within-arm variance of one visit (:math:`\\bar y (1 - \\bar y)` for a rate) and
:math:`\\tau^2` the variance of the arms' means less its sampling part, clipped to
:math:`[1, 10^4]`. Arms that differ a lot (the world's purchase rates run from 0.02 to
0.76) get a small :math:`m`: each arm keeps its own rate once it has a few dozen visits.
The spend's :math:`\\log \\sigma` starts at 0. Visits without a logged action get no
intercept (the heads' pooled bias), so a log of purchases alone fits as without intercepts.
"""

from __future__ import annotations

import numpy as np

from retentionrl.simulators.learned.sequence_model import HEAD_LAYOUT

_EPS = 1e-4
MAX_PSEUDO_VISITS = 1e4
"""The largest prior weight :math:`m` (arms alike: every row starts near 0)."""


def pseudo_visits(total: np.ndarray, count: np.ndarray, within_var: float) -> float:
    """:math:`m = v_w / \\tau^2` of the module docstring for per-arm sums ``total`` over ``count``
    visits (arms with no visit ignored), in ``[1, MAX_PSEUDO_VISITS]``."""
    seen = count > 0
    if seen.sum() < 2 or within_var <= 0:
        return MAX_PSEUDO_VISITS
    means = total[seen] / count[seen]
    tau2 = means.var(ddof=1) - within_var * np.mean(1.0 / count[seen])
    return float(np.clip(within_var / tau2, 1.0, MAX_PSEUDO_VISITS)) if tau2 > 0 else MAX_PSEUDO_VISITS


def _shrunk(total: np.ndarray, count: np.ndarray, pooled: float, within_var: float) -> np.ndarray:
    m = pseudo_visits(total, count, within_var)
    return (total + m * pooled) / (count + m)


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


def _arm_sums(y: np.ndarray, arm: np.ndarray, mask: np.ndarray, n_arms: int) -> tuple[np.ndarray, np.ndarray]:
    """Per arm, the sum of ``y`` and the number of visits where ``mask`` holds."""
    total = np.bincount(arm[mask], y[mask], n_arms + 1)[:n_arms]
    return total, np.bincount(arm[mask], minlength=n_arms + 1)[:n_arms].astype(np.float64)


def _binary_row(y: np.ndarray, arm: np.ndarray, mask: np.ndarray, n_arms: int) -> np.ndarray:
    if not mask.any():
        return np.zeros(n_arms)
    total, count = _arm_sums(y, arm, mask, n_arms)
    pooled = float(y[mask].mean())
    return _logit(_shrunk(total, count, pooled, pooled * (1.0 - pooled))) - _logit(pooled)


def initial_arm_bias(
    arm: np.ndarray,
    click: np.ndarray,
    purchase: np.ndarray,
    redeemed: np.ndarray,
    log_spend: np.ndarray,
    click_mask: np.ndarray,
    redeemed_mask: np.ndarray,
    spend_mask: np.ndarray,
    n_arms: int,
) -> np.ndarray:
    """The start of the per-arm intercepts, float32 ``(n_arms, 6)`` (columns as
    :data:`~retentionrl.simulators.learned.sequence_model.HEAD_LAYOUT`), from training
    visits' arrays of :class:`~retentionrl.simulators.learned.visit_data.VisitData` (``arm``
    ``n_arms`` = not logged: counted for no arm). Purchases split by click as the heads do:
    after a click, and without one (every visit where the log has no clicks)."""
    arm = np.asarray(arm, dtype=np.int64)
    logged = arm < n_arms
    clicked = np.asarray(click) > 0
    bias = np.zeros((n_arms, len(HEAD_LAYOUT)))
    col = {name: i for i, name in enumerate(HEAD_LAYOUT)}
    y = np.asarray(purchase, dtype=np.float64)
    bias[:, col["click"]] = _binary_row(np.asarray(click, float), arm, logged & click_mask, n_arms)
    bias[:, col["purchase_click"]] = _binary_row(y, arm, logged & clicked, n_arms)
    bias[:, col["purchase_noclick"]] = _binary_row(y, arm, logged & ~clicked, n_arms)
    bias[:, col["redeemed"]] = _binary_row(np.asarray(redeemed, float), arm, logged & redeemed_mask, n_arms)
    spend = logged & spend_mask
    if spend.any():
        s = np.asarray(log_spend, dtype=np.float64)
        total, count = _arm_sums(s, arm, spend, n_arms)
        pooled = float(s[spend].mean())
        within = float(np.var(s[spend] - (total / np.maximum(count, 1))[arm[spend]], ddof=1)) if spend.sum() > 1 else 0
        bias[:, col["spend_mu"]] = _shrunk(total, count, pooled, within) - pooled
    return bias.astype(np.float32)
