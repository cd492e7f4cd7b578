"""The numbers of the fidelity report: which visits are held out, every metric, every baseline.

Evaluation sets (:func:`evaluation_sets`):

* **held-out users**: the shoppers the fit held out for validation (recomputed with the fit's
  seed and share when ``--logs`` is the training log, recognised by its size and end); on
  any other log every shopper is held out;
* **later window**: visits at or after a cutoff. When the log runs past the training log's
  end, the cutoff is that end and every shopper counts (a true out-of-time test); otherwise
  it is the start of the log's last quarter, and only held-out shoppers count (the model saw
  the others' later visits).

The *reference* shoppers (those the model was trained on) give the baselines' population
rates and the BG/NBD fit; without them (a foreign log) the baselines use the log's visits
before the cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from retentionrl.interactions.splits import split_users
from retentionrl.simulators.fidelity.bgnbd import fit_bgnbd, per_visit_features, prob_return_within, whole_log_summary
from retentionrl.simulators.fidelity.metrics import (
    RETURN_DAYS,
    Reliability,
    binary_metrics,
    last_value,
    predict_visits,
    reliability,
    return_targets,
)
from retentionrl.simulators.learned.simulator import LearnedSimulator

BINARY_HEADS: tuple[tuple[str, str], ...] = (
    ("click", "click"),
    ("purchase", "purchase"),
    ("purchase_click", "purchase"),
    ("redeemed", "redeemed"),
)
"""(prediction column, model-card head) of each binary response metric."""


@dataclass
class EvalSet:
    """Rows (a boolean mask over the visit table) of one evaluation and what they mean."""

    name: str
    rows: np.ndarray
    note: str


@dataclass
class HeadResult:
    """Metrics of one outcome: per predictor, ``binary_metrics`` and the reliability bins."""

    outcome: str
    learned: bool
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    reliability: dict[str, Reliability] = field(default_factory=dict)


def evaluation_sets(
    sim: LearnedSimulator, visits: pd.DataFrame, log_start: pd.Timestamp, log_end: pd.Timestamp, n_events: int
) -> tuple[EvalSet, EvalSet, np.ndarray, pd.Timestamp]:
    """The two evaluation sets, the reference-shopper mask and the cutoff (module docstring)."""
    card = sim.card
    summary, cfg = card.data_summary, card.fit_config
    same_log = (
        summary.get("events") == n_events
        and summary.get("visits") == len(visits)
        and pd.Timestamp(summary.get("log_end", "1970-01-01")) == pd.Timestamp(log_end)
    )
    if same_log:
        vf = float(cfg.get("valid_fraction", 0.1))
        split = split_users(visits["user_id"], (1.0 - vf, vf, 0.0), seed=int(cfg.get("seed", 0)))
        heldout, reference = split.valid, split.train
        users_note = f"the {vf:.0%} of shoppers the fit held out (seed {cfg.get('seed', 0)})"
    else:
        heldout, reference = np.ones(len(visits), bool), np.zeros(len(visits), bool)
        users_note = "every shopper (this is not the training log)"
    start = visits["start"].to_numpy()
    train_end = pd.Timestamp(summary["log_end"]) if "log_end" in summary else None
    if train_end is not None and pd.Timestamp(log_end) > train_end and not same_log:
        cutoff = train_end
        later = start >= cutoff.to_datetime64()
        later_note = f"every visit after the training log's end ({cutoff:%Y-%m-%d}): out of time"
    else:
        cutoff = pd.Timestamp(log_start) + 0.75 * (pd.Timestamp(log_end) - pd.Timestamp(log_start))
        later = heldout & (start >= cutoff.to_datetime64())
        later_note = (
            f"held-out shoppers' visits from {cutoff:%Y-%m-%d} on (the last quarter of the log; "
            "their earlier visits feed the model's state)"
        )
    return (
        EvalSet("held-out users", heldout, users_note),
        EvalSet("later window", later, later_note),
        reference,
        cutoff,
    )


def baseline_predictions(
    sim: LearnedSimulator, visits: pd.DataFrame, log_end: pd.Timestamp, reference: np.ndarray, cutoff: pd.Timestamp
) -> dict[str, pd.DataFrame]:
    """Predictions of every outcome by the model and each baseline, one frame per predictor."""
    card = sim.card
    horizon = int(card.spec.horizon_days)
    model = predict_visits(sim, visits, log_end)
    within, known, duration, event = return_targets(visits, log_end, horizon)
    base_rows = reference if reference.any() else visits["start"].to_numpy() < cutoff.to_datetime64()
    rate = {
        "click": card.rate("click"),
        "purchase": card.rate("purchase"),
        "redeemed": card.rate("redeemed"),
        "return_30": float(within[base_rows & known].mean()) if (base_rows & known).any() else 0.5,
    }
    n = len(visits)
    clicked = visits["clicked"].to_numpy(dtype=float)
    purchased = visits["purchased"].to_numpy(dtype=float)
    population = pd.DataFrame(
        {
            "click": np.full(n, rate["click"]),
            "purchase": np.full(n, rate["purchase"]),
            "purchase_click": _rate_by(purchased, clicked > 0, base_rows),
            "redeemed": np.full(n, rate["redeemed"]),
            "return_30": np.full(n, rate["return_30"]),
            "expected_gap": np.zeros(n),
        },
        index=visits.index,
    )
    gap = visits["gap_days"].to_numpy(dtype=float)
    prev_gap = last_value(visits, np.nan_to_num(gap, nan=float(horizon)), float(np.nanmedian(gap)) if n else 0.0)
    last = pd.DataFrame(
        {
            "click": last_value(visits, clicked, rate["click"]),
            "purchase": last_value(visits, purchased, rate["purchase"]),
            "purchase_click": np.where(clicked > 0, last_value(visits, purchased, rate["purchase"]), 0.0),
            "redeemed": last_value(visits, visits["redeemed"].to_numpy(dtype=float), rate["redeemed"]),
            "return_30": last_value(visits, (gap <= RETURN_DAYS).astype(float), rate["return_30"]),
            "expected_gap": prev_gap,
        },
        index=visits.index,
    )
    fit_visits = visits.loc[base_rows]
    summary = whole_log_summary(fit_visits, log_end if reference.any() else cutoff)
    bg = fit_bgnbd(summary["frequency"], summary["recency"], summary["T"], penalizer=1e-3)
    x, t_x, big_t = per_visit_features(visits)
    p30 = prob_return_within(bg, x, t_x, big_t, RETURN_DAYS)
    # ranking score of the gap: a shopper likelier to return within H is expected back sooner
    bgnbd = pd.DataFrame(
        {"return_30": p30, "expected_gap": -prob_return_within(bg, x, t_x, big_t, horizon)}, index=visits.index
    )
    targets = pd.DataFrame({"within": within, "known": known, "duration": duration, "event": event}, index=visits.index)
    return {"simulator": model, "population": population, "last value": last, "BG/NBD": bgnbd, "_targets": targets}


def _rate_by(values: np.ndarray, group: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each row's rate of ``values`` among the ``rows`` of its ``group`` (True/False)."""
    out = np.empty(values.size)
    for g in (True, False):
        sel = rows & (group == g)
        out[group == g] = values[sel].mean() if sel.any() else 0.0
    return out


def head_results(
    preds: dict[str, pd.DataFrame], visits: pd.DataFrame, rows: np.ndarray, learned: dict[str, bool]
) -> list[HeadResult]:
    """Binary metrics and reliability of every outcome on the visits at ``rows``."""
    targets = preds["_targets"]
    labels = {
        "click": (visits["clicked"].to_numpy(dtype=float), np.ones(len(visits), bool)),
        "purchase": (visits["purchased"].to_numpy(dtype=float), np.ones(len(visits), bool)),
        "purchase_click": (visits["purchased"].to_numpy(dtype=float), np.ones(len(visits), bool)),
        "redeemed": (
            visits["redeemed"].to_numpy(dtype=float),
            visits["purchased"].to_numpy(dtype=bool) & (visits["rec_coupon"].to_numpy(dtype=float) > 0),
        ),
        "return_30": (targets["within"].to_numpy(dtype=float), targets["known"].to_numpy(dtype=bool)),
    }
    results = []
    for outcome, head in (*BINARY_HEADS, ("return_30", "return")):
        label, valid = labels[outcome]
        sel = rows & valid
        if outcome == "click" and not visits["clicked"].any():
            sel = np.zeros_like(sel)
        result = HeadResult(outcome, learned[head])
        for name, frame in preds.items():
            if name.startswith("_") or outcome not in frame:
                continue
            p = frame[outcome].to_numpy()[sel]
            result.metrics[name] = binary_metrics(p, label[sel])
            if name == "simulator":
                result.reliability[name] = reliability(p, label[sel])
        results.append(result)
    return results


def concordance(preds: dict[str, pd.DataFrame], rows: np.ndarray) -> dict[str, float]:
    """Harrell's C of each predictor's expected gap vs the observed (censored) return gaps."""
    from lifelines.utils import concordance_index

    t = preds["_targets"].loc[rows]
    out = {}
    for name, frame in preds.items():
        if name.startswith("_") or "expected_gap" not in frame or not len(t):
            continue
        score = frame["expected_gap"].to_numpy()[rows]
        if not np.isfinite(score).all():
            out[name] = float("nan")
        else:
            out[name] = 0.5 if np.ptp(score) == 0 else float(concordance_index(t["duration"], score, t["event"]))
    return out
