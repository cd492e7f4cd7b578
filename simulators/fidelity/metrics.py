"""Per-visit fidelity of a fitted simulator on logged visits: predictions, metrics, baselines.

:func:`predict_visits` runs the fitted sequence model over whole logged trajectories
(teacher forcing: the logged actions and outcomes feed the GRU, as in fitting) and gives,
at every visit, the probabilities the simulator would sample from:

==================  ==========================================================================
column              meaning
==================  ==========================================================================
``click``           :math:`P(click)`
``purchase``        :math:`P(purchase) = p_c\\, p_{b|c} + (1 - p_c)\\, p_{b|\\neg c}` (before the click)
``purchase_click``  :math:`P(purchase \\mid \\text{the logged click})`
``redeemed``        :math:`P(redeemed \\mid purchase, coupon)`
``return_30``       :math:`1 - S(30)`: returns within 30 days (:mod:`retentionrl.simulators.learned.hazard`), given
                    the visit's logged outcome, as the simulator draws the gap given its own
``expected_gap``    :math:`\\sum_{j=0}^{H-1} S(j)`: the expected gap truncated at :math:`H`
==================  ==========================================================================

A head the model card marks as not learned uses the log's constant rate, as the simulator does.

Metrics of a probability :math:`p_i` of a binary label :math:`y_i` (:func:`binary_metrics`):
AUC (rank-sum), log-loss :math:`-\\frac1n\\sum y\\log p + (1-y)\\log(1-p)` (``p`` clipped
to :math:`[10^{-6}, 1 - 10^{-6}]`), Brier :math:`\\frac1n\\sum (p - y)^2`, and the expected
calibration error over ``B`` equal-width bins :math:`I_b` of :math:`[0, 1]`
(:func:`reliability`):

.. math:: ECE = \\sum_b \\frac{n_b}{n} \\left| \\bar p_b - \\bar y_b \\right|

Baselines (:func:`baseline_scores`): the training population's rate; the shopper's own last
value (the previous visit's outcome; the population rate at a first visit); for returns, a
BG/NBD repeat-visit model (:mod:`retentionrl.simulators.fidelity.bgnbd`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from retentionrl.simulators.learned.fit import _auc
from retentionrl.simulators.learned.hazard import survival
from retentionrl.simulators.learned.sequence_model import HEAD_LAYOUT, N_SCALAR_HEADS
from retentionrl.simulators.learned.simulator import LearnedSimulator
from retentionrl.simulators.learned.visit_data import build_visit_data, gather_batch, trajectory_bounds

RETURN_DAYS = 30
"""The window of the "returns within" label and its Brier score."""
EPS = 1e-6


@dataclass(frozen=True)
class Reliability:
    """Equal-width reliability bins: mean prediction, observed rate and count per bin."""

    edges: np.ndarray
    mean_pred: np.ndarray
    observed: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error (module docstring); NaN with no predictions."""
        n = self.count.sum()
        if n == 0:
            return float("nan")
        gap = np.abs(np.nan_to_num(self.mean_pred) - np.nan_to_num(self.observed))
        return float((self.count * gap).sum() / n)


def reliability(pred: np.ndarray, label: np.ndarray, bins: int = 10) -> Reliability:
    """Bins ``[k/B, (k+1)/B)`` (the last one closed) of predictions ``pred`` in [0, 1]."""
    pred = np.asarray(pred, dtype=np.float64)
    label = np.asarray(label, dtype=np.float64)
    if pred.shape != label.shape:
        raise ValueError(f"pred and label differ in shape: {pred.shape} vs {label.shape}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if pred.size and (np.nanmin(pred) < 0 or np.nanmax(pred) > 1 or np.isnan(pred).any()):
        raise ValueError(f"predictions must be probabilities in [0, 1], got range [{pred.min()}, {pred.max()}]")
    which = np.minimum((pred * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(which, weights=pred, minlength=bins) / count
        observed = np.bincount(which, weights=label, minlength=bins) / count
    return Reliability(np.linspace(0.0, 1.0, bins + 1), mean_pred, observed, count.astype(np.int64))


def log_loss(pred: np.ndarray, label: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities ``pred`` (clipped) for 0/1 ``label``."""
    p = np.clip(np.asarray(pred, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(label, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if y.size else float("nan")


def binary_metrics(pred: np.ndarray, label: np.ndarray, bins: int = 10) -> dict[str, float]:
    """``n``, ``rate``, ``auc``, ``log_loss``, ``brier`` and ``ece`` of one prediction."""
    pred = np.asarray(pred, dtype=np.float64)
    label = np.asarray(label, dtype=np.float64)
    return {
        "n": int(label.size),
        "rate": float(label.mean()) if label.size else float("nan"),
        "auc": _auc(pred, label),
        "log_loss": log_loss(pred, label),
        "brier": float(np.mean((pred - label) ** 2)) if label.size else float("nan"),
        "ece": reliability(pred, label, bins).ece,
    }


def return_targets(
    visits: pd.DataFrame, log_end: pd.Timestamp, horizon_days: int, days: int = RETURN_DAYS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels of every visit: ``(returned_within, known, duration, event)``.

    ``returned_within``: the next visit came within ``days``; ``known``: the label is
    observed (a return, a churn, or at least ``days`` of log after the visit);
    ``duration``/``event``: the gap in days (event) or the days observed without a
    return, at most :math:`H` (censored), for the concordance index.
    """
    gap = visits["gap_days"].to_numpy(dtype=np.float64)
    returned = np.isfinite(gap)
    observed = (
        pd.Timestamp(log_end).value - visits["start"].to_numpy().astype("datetime64[ns]").view("int64")
    ) / 86_400e9
    churned = visits["churned"].to_numpy(dtype=bool)
    within = returned & (gap <= days)
    known = returned | churned | (observed >= days)
    duration = np.where(returned, gap, np.where(churned, float(horizon_days), np.minimum(observed, horizon_days)))
    return within, known, np.maximum(duration, 1e-9), returned


def predict_visits(
    sim: LearnedSimulator, visits: pd.DataFrame, log_end: pd.Timestamp, batch_size: int = 256
) -> pd.DataFrame:
    """The simulator's probabilities at every logged visit (columns: module docstring).

    :param visits: a visit table with trajectory columns, sorted by ``(user_id, start)``.
    :param log_end: the end of the log (censoring of the return targets is not used here).
    """
    card, model = sim.card, sim.model
    horizon = int(card.spec.horizon_days)
    data = build_visit_data(
        visits, card.action_map, log_end, horizon, card.spend_scale, exposure=card.spec.exposure_input
    )
    # as the simulator does: action parts the log never varied are fed their trained value
    if not card.action_inputs["arm"]:
        data.arm[:] = card.fixed_arm
    if not card.action_inputs["coupon"]:
        data.coupon[:] = card.fixed_coupon
    tensors = data.to_tensors(sim.device)
    starts, lengths = trajectory_bounds(visits)
    out = np.empty((len(visits), 6), dtype=np.float64)
    order = np.argsort(-lengths, kind="stable")  # similar lengths together: less padding
    col = {name: i for i, name in enumerate(HEAD_LAYOUT)}
    with torch.inference_mode():
        for i in range(0, len(order), batch_size):
            take = order[i : i + batch_size]
            inputs, lens, valid, _ = gather_batch(tensors, starts[take], lengths[take])
            hidden, _ = model.rnn(inputs, lengths=lens)
            o = model.heads(hidden[valid], inputs.select(valid))
            s = survival(o[:, N_SCALAR_HEADS:])
            rows = (starts[take][:, None] + np.arange(valid.shape[1])[None, :])[valid.cpu().numpy()]
            probs = torch.sigmoid(o[:, :4])
            out[rows, :4] = probs.double().cpu().numpy()
            out[rows, 4] = (1.0 - s[:, RETURN_DAYS - 1]).double().cpu().numpy() if horizon >= RETURN_DAYS else 1.0
            out[rows, 5] = (1.0 + s[:, :-1].sum(dim=1)).double().cpu().numpy()
    p = {name: out[:, col[name]] for name in ("click", "purchase_click", "purchase_noclick", "redeemed")}
    for head, names in (
        ("click", ("click",)),
        ("purchase", ("purchase_click", "purchase_noclick")),
        ("redeemed", ("redeemed",)),
    ):
        if not card.learned(head):
            for name in names:
                p[name] = np.full(len(visits), card.rate(head))
    clicked = visits["clicked"].to_numpy(dtype=bool)
    return pd.DataFrame(
        {
            "click": p["click"],
            "purchase": p["click"] * p["purchase_click"] + (1 - p["click"]) * p["purchase_noclick"],
            "purchase_click": np.where(clicked, p["purchase_click"], p["purchase_noclick"]),
            "redeemed": p["redeemed"],
            "return_30": out[:, 4],
            "expected_gap": out[:, 5],
        },
        index=visits.index,
    )


def last_value(visits: pd.DataFrame, values: np.ndarray, first: float) -> np.ndarray:
    """Each visit's previous value of ``values`` in its trajectory (``first`` at a first visit)."""
    values = np.asarray(values, dtype=np.float64)
    prev = np.r_[first, values[:-1]]
    return np.where(visits["visit_index"].to_numpy() == 0, first, prev)
