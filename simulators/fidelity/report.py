"""``retentionrl simulator report``: an HTML fidelity report of a fitted simulator on a log.

:func:`write_report` computes every number (:mod:`retentionrl.simulators.fidelity.evaluate`), draws the PNG
plots and renders ``report.html`` (template ``fidelity.html``) beside them and
``report.json`` with the same numbers, through the project's report system
(:mod:`retentionrl.core.report`). The report holds
no shopper id. Sections:

1. the model card: which action columns the log had and how much they varied, which heads
   were learned (and why not);
2. per response head (click, purchase, purchase given the click, coupon redemption, return
   within 30 days): AUC, log-loss, Brier and ECE of the simulator beside the population
   rate, the shopper's last value and (returns) BG/NBD, on held-out users and on a later
   time window, with reliability diagrams;
3. return-gap concordance (Harrell's C, lifelines);
4. the simulator replaying the held-out shoppers' lifetimes vs the real ones: Kaplan-Meier
   retention curves and visits per shopper (:mod:`retentionrl.simulators.fidelity.replay`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retentionrl.core.records import json_text
from retentionrl.core.report import pyplot, render, save_png, write_page
from retentionrl.interactions.io import read_events
from retentionrl.interactions.retention import RetentionCurve, kaplan_meier, plot_retention
from retentionrl.interactions.trajectories import trajectory_table, visits_with_trajectories
from retentionrl.simulators.fidelity.evaluate import (
    HeadResult,
    baseline_predictions,
    concordance,
    evaluation_sets,
    head_results,
)
from retentionrl.simulators.fidelity.replay import simulate_lifetimes
from retentionrl.simulators.learned.simulator import LearnedSimulator

METRICS = ("n", "rate", "auc", "log_loss", "brier", "ece")
CHECK_DAYS = (7, 30, 90)


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote."""

    html: Path
    json: Path
    pngs: tuple[Path, ...]


def write_report(
    model_dir: str | Path,
    logs: str | Path,
    out_dir: str | Path,
    *,
    log_format: str = "auto",
    device: str = "cpu",
    seed: int = 0,
    max_replay: int = 20_000,
) -> ReportFiles:
    """Evaluate the simulator in ``model_dir`` on the log ``logs``; write the report to ``out_dir``.

    :param max_replay: most held-out trajectories replayed in the simulator (a seeded sample).
    """
    out_dir = Path(out_dir)
    sim = LearnedSimulator.load(model_dir, device=device)
    card = sim.card
    log = read_events(logs, log_format)
    visits = visits_with_trajectories(
        log, horizon_days=card.spec.horizon_days, mode=card.fit_config.get("visit_mode", "auto")
    ).reset_index(drop=True)
    heldout, later, reference, cutoff = evaluation_sets(sim, visits, log.start, log.end, len(log.events))
    preds = baseline_predictions(sim, visits, log.end, reference, cutoff)
    learned = {h: card.learned(h) for h in card.heads}
    sections = []
    pngs = []
    for k, evaluation in enumerate((heldout, later)):
        results = head_results(preds, visits, evaluation.rows, learned)
        png = out_dir / f"reliability_{k}.png"
        _plot_reliability(results, png, evaluation.name)
        pngs.append(png)
        sections.append(
            {
                "name": evaluation.name,
                "note": evaluation.note,
                "visits": int(evaluation.rows.sum()),
                "heads": [_head_dict(r) for r in results],
                "png": png.name,
                "concordance": concordance(preds, evaluation.rows),
            }
        )

    replay = _replay(sim, visits, heldout.rows, log.end, seed, max_replay)
    pngs.append(plot_retention(replay["curves"], out_dir / "retention.png", horizon_days=card.spec.horizon_days))
    pngs.append(_plot_visits(replay["visits"], out_dir / "visits_per_shopper.png"))

    context = {
        "source_name": Path(str(logs)).name,
        "card": _card_dict(card),
        "sections": sections,
        "metrics": METRICS,
        "replay": {k: v for k, v in replay.items() if k not in ("curves", "visits")},
        "check_days": CHECK_DAYS,
    }
    html_path = write_page(out_dir / "report.html", render("fidelity.html", **context))
    json_path = write_page(out_dir / "report.json", json_text(context))
    return ReportFiles(html_path, json_path, tuple(pngs))


def _head_dict(result: HeadResult) -> dict:
    return {"outcome": result.outcome, "learned": result.learned, "metrics": result.metrics}


def _card_dict(card) -> dict:
    coverage = card.coverage
    return {
        "arm_column": card.arm_column or "none (no impressions logged)",
        "n_arms": len(card.arms),
        "coupon_levels": card.coupon_levels,
        "coverage": coverage,
        "action_inputs": card.action_inputs,
        "heads": card.heads,
        "records_cogs": card.records_cogs,
        "gross_margins": dict(zip((str(a) for a in card.arms), card.gross_margins)),
        "data_summary": {k: v for k, v in card.data_summary.items() if k not in ("source",)},
    }


def _replay(
    sim: LearnedSimulator, visits: pd.DataFrame, heldout: np.ndarray, log_end: pd.Timestamp, seed: int, max_replay: int
) -> dict:
    """Real vs simulated first lifetimes of held-out shoppers (retention and visit counts)."""
    first_traj = visits.loc[heldout].drop_duplicates("user_id")["trajectory_id"].to_numpy()
    rng = np.random.default_rng(seed)
    if first_traj.size > max_replay:
        first_traj = np.sort(rng.choice(first_traj, max_replay, replace=False))
    chosen = visits.loc[visits["trajectory_id"].isin(first_traj)]
    real = trajectory_table(chosen)
    simulated = simulate_lifetimes(sim, chosen, sim.card.action_map, log_end, seed=seed)
    curves: dict[str, RetentionCurve] = {
        "real (held-out)": kaplan_meier(real["duration_days"].to_numpy(), real["churned"].to_numpy()),
        "simulator": kaplan_meier(simulated["duration_days"].to_numpy(), simulated["churned"].to_numpy()),
    }
    active = {name: {str(d): curve.at(d)[0] for d in CHECK_DAYS} for name, curve in curves.items()}
    return {
        "shoppers": int(len(real)),
        "active": active,
        "mean_visits": {
            "real (held-out)": float(real["n_visits"].mean()),
            "simulator": float(simulated["n_visits"].mean()),
        },
        "curves": curves,
        "visits": {"real (held-out)": real["n_visits"].to_numpy(), "simulator": simulated["n_visits"].to_numpy()},
    }


def _plot_reliability(results: list[HeadResult], path: Path, title: str) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(3.0 * len(results), 3.2), dpi=90, squeeze=False)
    for ax, result in zip(axes[0], results):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        rel = result.reliability.get("simulator")
        if rel is not None and rel.count.sum():
            keep = rel.count > 0
            ax.plot(rel.mean_pred[keep], rel.observed[keep], "o-", ms=3, label=f"ECE {rel.ece:.3f}")
            ax.legend(loc="upper left", fontsize=7)
        ax.set_title(result.outcome, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("predicted", fontsize=8)
    axes[0][0].set_ylabel("observed", fontsize=8)
    fig.suptitle(f"Reliability, {title}", fontsize=10)
    return save_png(fig, path)


def _plot_visits(counts: dict[str, np.ndarray], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=90)
    top = int(max(np.percentile(c, 99) for c in counts.values())) + 2
    bins = np.arange(1, top + 1) - 0.5
    width = 0.4
    for i, (name, c) in enumerate(counts.items()):
        hist = np.histogram(np.minimum(c, top - 1), bins=bins)[0] / max(c.size, 1)
        ax.bar(bins[:-1] + 0.5 + (i - 0.5) * width, hist, width=width, label=f"{name} (mean {c.mean():.2f})")
    ax.set_xlabel("visits per shopper (first lifetime, within the log)")
    ax.set_ylabel("share of shoppers")
    ax.legend(fontsize=8)
    return save_png(fig, path)
