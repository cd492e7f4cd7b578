"""Response AUC on held-out shoppers: the learned simulator, the history-Bayes bound, the oracle.

Three predictions of every held-out visit's click and purchase, each ranked by AUC:

* the simulator's (:func:`retentionrl.simulators.fidelity.metrics.predict_visits`, the logged history fed to the model);
* the **history-Bayes bound**: the world's exact posterior predictive given only the observable
  history and what the visit shows, its action and the item drawn for it
  (:mod:`experiments.world_posterior`, ``--particles`` prior draws per shopper). No function
  of the log ranks better: this is the ceiling a model of the log can reach. Each particle
  count in ``--particles`` is reported (stability); the table uses the largest;
* the world's true probabilities for the item shown (:mod:`retentionrl.simulators.world.probabilities`),
  which read the latent state no model of the log can know: an upper bound above the ceiling.

The item's price moves the purchase probability (world v2); a simulator of (group, coupon)
actions does not see the item, so part of its purchase gap to the bound is the item's.

Target: the simulator within 0.02 of the history-Bayes bound.

Either pass a fitted ``--model`` whose training log is this script's log (the same
``--users``, ``--days`` and ``--seed`` write the same bytes; ``experiments/simulator_fidelity.py``
writes one), or leave it out to fit one here.

Usage: ``python experiments/response_auc_truth.py [--model runs/fidelity/model_seed0] [--users 20000] [--days 180]
[--particles 1000 4000]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from world_posterior import LoggedTrajectories, posterior_predictive

from retentionrl.core.atomic import atomic_write_text
from retentionrl.interactions.io import read_events
from retentionrl.interactions.trajectories import visits_with_trajectories
from retentionrl.simulators.fidelity.evaluate import evaluation_sets
from retentionrl.simulators.fidelity.metrics import predict_visits
from retentionrl.simulators.learned.fit import FitConfig, _auc, fit_simulator
from retentionrl.simulators.learned.simulator import LearnedSimulator
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.probabilities import write_world_logs_with_truth
from retentionrl.simulators.world.simulator import GroundTruthWorld

PREDICTIONS = ("p_click", "p_purchase", "p_buy_click")


def history_bayes(
    config: WorldConfig, log_path: Path, visits: pd.DataFrame, rows: np.ndarray, particles: list[int], seed: int
) -> tuple[dict[int, pd.DataFrame], dict[str, float]]:
    """The posterior predictive at the visits ``rows`` (whole shoppers) of the world log at
    ``log_path``, for each particle count: one frame of :data:`PREDICTIONS` per count (NaN
    outside ``rows``), and the effective sample sizes and seconds of the largest count."""
    meta = pq.read_schema(log_path).metadata
    day0, days = pd.Timestamp(meta[b"retentionrl.start"].decode()), int(meta[b"retentionrl.days"])
    world = GroundTruthWorld(config)
    traj = LoggedTrajectories.from_visits(visits.loc[rows], day0, days, world.catalog.item_price)
    out, info = {}, {}
    for m in sorted(particles):
        t0 = time.perf_counter()
        post = posterior_predictive(world, traj, m, seed)
        frame = pd.DataFrame(np.nan, index=visits.index, columns=list(PREDICTIONS))
        for name in PREDICTIONS:
            frame.loc[rows, name] = traj.per_visit(getattr(post, name))
        out[m] = frame
        ess = traj.per_visit(post.ess)
        info = {
            "particles": m,
            "seconds": time.perf_counter() - t0,
            "ess_median": float(np.median(ess)),
            "ess_p01": float(np.percentile(ess, 1)),
            "share_ess_below_100": float((ess < 100).mean()),
        }
        print(
            f"history-Bayes bound, {m:,} particles a shopper: {info['seconds']:.0f} s, "
            f"ESS median {info['ess_median']:.0f}, 1st percentile {info['ess_p01']:.1f}"
        )
    return out, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--particles",
        type=int,
        nargs="+",
        default=[1000, 4000],
        help="prior draws per shopper of the history-Bayes bound; the largest fills the table",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/response_auc"))
    args = parser.parse_args()
    if min(args.particles) < 1:
        parser.error(f"--particles must be >= 1, got {args.particles}")
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "world_logs.parquet"
    config = WorldConfig()
    truth = write_world_logs_with_truth(config, args.users, args.days, args.seed, log_path)
    log = read_events(log_path)
    if args.model is None:
        t0 = time.perf_counter()
        fit_simulator(log, FitConfig(seed=args.seed), args.out / "model")
        print(f"fit in {time.perf_counter() - t0:.0f} s")
        args.model = args.out / "model"
    sim = LearnedSimulator.load(args.model, device="cpu")
    visits = visits_with_trajectories(log, horizon_days=sim.horizon_days).reset_index(drop=True)
    # world logs have no reactivations: a visit's number in its trajectory is its session number
    truth = (
        truth.set_index(["user_id", "session_id"])
        .reindex(list(zip(visits["user_id"], visits["visit_index"])))
        .reset_index(drop=True)
    )
    if truth["p_click"].isna().any():
        raise RuntimeError("some logged visits have no recorded true probability; is --model's log this one?")
    heldout, _, _, _ = evaluation_sets(sim, visits, log.start, log.end, len(log.events))
    if heldout.rows.all():
        raise RuntimeError(f"{args.model} was not fit on this log ({heldout.note}); pass the matching --model")
    pred = predict_visits(sim, visits, log.end)
    rows = heldout.rows
    bayes, bayes_info = history_bayes(config, log_path, visits, rows, args.particles, args.seed)
    clicked = visits["clicked"].to_numpy(bool)
    purchased = visits["purchased"].to_numpy(float)
    cases = {
        "click": ("click", "p_click", visits["clicked"].to_numpy(float), rows),
        "purchase": ("purchase", "p_purchase", purchased, rows),
        "purchase | click": ("purchase_click", "p_buy_click", purchased, rows & clicked),
    }
    result = {"heldout": heldout.note, "visits": int(rows.sum()), "history_bayes": bayes_info}
    print(f"held-out shoppers: {heldout.note}; {int(rows.sum()):,} visits")
    print(
        f"{'response':18s} {'visits':>8s} {'AUC simulator':>14s} {'AUC history-Bayes bound':>24s} "
        f"{'AUC truth':>10s} {'bound - sim':>12s} {'truth - sim':>12s}"
    )
    for name, (model_col, true_col, label, sel) in cases.items():
        y = label[sel]
        a_model = _auc(np.asarray(pred[model_col])[sel], y)
        a_true = _auc(truth[true_col].to_numpy()[sel], y)
        a_bayes = {m: _auc(frame[true_col].to_numpy()[sel], y) for m, frame in bayes.items()}
        a_bound = a_bayes[max(a_bayes)]
        result[name] = {
            "visits": int(sel.sum()),
            "auc_simulator": a_model,
            "auc_history_bayes": a_bound,
            "auc_truth": a_true,
            "gap_to_bound": a_bound - a_model,
            "gap": a_true - a_model,
            "auc_history_bayes_by_particles": {str(m): a for m, a in a_bayes.items()},
        }
        print(
            f"{name:18s} {int(sel.sum()):8,d} {a_model:14.4f} {a_bound:24.4f} {a_true:10.4f} "
            f"{a_bound - a_model:12.4f} {a_true - a_model:12.4f}"
        )
    for name in cases:
        by_m = ", ".join(f"{m}: {a:.4f}" for m, a in result[name]["auc_history_bayes_by_particles"].items())
        print(f"history-Bayes AUC of {name} by particles a shopper: {by_m}")
    print("target: bound - sim <= 0.02")
    atomic_write_text(args.out / "response_auc.json", json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
