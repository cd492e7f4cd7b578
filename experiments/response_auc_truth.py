"""Response AUC of the learned simulator vs the world's own true probabilities, on held-out shoppers.

The world's true per-visit probabilities (:mod:`simulators.world_probabilities`) are the
best any model of the observable history can do (better, in fact: they read the latent
state). On the shoppers the fit held out, this compares the AUC of the simulator's click
and purchase probabilities (:func:`simulators.fidelity.predict_visits`, the logged history
fed to the model) with the AUC of the true ones. Target: within 0.02.

Either pass a fitted ``--model`` whose training log is this script's log (the same
``--users``, ``--days`` and ``--seed`` write the same bytes; ``experiments/simulator_fidelity.py``
writes one), or leave it out to fit one here.

Usage: ``python experiments/response_auc_truth.py [--model runs/fidelity/model] [--users 20000] [--days 180]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from interactions.atomic import atomic_write_text
from interactions.io import read_events
from interactions.trajectories import visits_with_trajectories
from simulators.fidelity import predict_visits
from simulators.fidelity_eval import evaluation_sets
from simulators.fit import FitConfig, _auc, fit_simulator
from simulators.learned import LearnedSimulator
from simulators.world_config import WorldConfig
from simulators.world_probabilities import write_world_logs_with_truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/response_auc"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "world_logs.parquet"
    truth = write_world_logs_with_truth(WorldConfig(), args.users, args.days, args.seed, log_path)
    log = read_events(log_path)
    if args.model is None:
        t0 = time.perf_counter()
        fit_simulator(log, FitConfig(seed=args.seed), args.out / "model")
        print(f"fit in {time.perf_counter() - t0:.0f} s")
        args.model = args.out / "model"
    sim = LearnedSimulator.load(args.model, device="cpu")
    visits = visits_with_trajectories(log, horizon_days=sim.horizon_days).reset_index(drop=True)
    # world logs have no reactivations: a visit's number in its trajectory is its session number
    truth = truth.set_index(["user_id", "session_id"]).reindex(
        list(zip(visits["user_id"], visits["visit_index"]))).reset_index(drop=True)
    if truth["p_click"].isna().any():
        raise RuntimeError("some logged visits have no recorded true probability; is --model's log this one?")
    heldout, _, _, _ = evaluation_sets(sim, visits, log.start, log.end, len(log.events))
    if heldout.rows.all():
        raise RuntimeError(f"{args.model} was not fit on this log ({heldout.note}); pass the matching --model")
    pred = predict_visits(sim, visits, log.end)
    rows = heldout.rows
    clicked = visits["clicked"].to_numpy(bool)
    purchased = visits["purchased"].to_numpy(float)
    cases = {
        "click": (pred["click"], truth["p_click"], visits["clicked"].to_numpy(float), rows),
        "purchase": (pred["purchase"], truth["p_purchase"], purchased, rows),
        "purchase | click": (pred["purchase_click"], truth["p_buy_click"], purchased, rows & clicked),
    }
    result = {"heldout": heldout.note, "visits": int(rows.sum())}
    print(f"held-out shoppers: {heldout.note}; {int(rows.sum()):,} visits")
    print(f"{'response':18s} {'visits':>8s} {'AUC simulator':>14s} {'AUC truth':>10s} {'gap':>7s}")
    for name, (model_p, true_p, label, sel) in cases.items():
        a_model = _auc(np.asarray(model_p)[sel], label[sel])
        a_true = _auc(np.asarray(true_p)[sel], label[sel])
        result[name] = {"visits": int(sel.sum()), "auc_simulator": a_model, "auc_truth": a_true,
                        "gap": a_true - a_model}
        print(f"{name:18s} {int(sel.sum()):8,d} {a_model:14.4f} {a_true:10.4f} {a_true - a_model:7.4f}")
    print("target: gap <= 0.02")
    atomic_write_text(args.out / "response_auc.json", json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
