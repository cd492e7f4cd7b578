"""Online Retail, split by time: visits per customer in the holdout, simulator vs BG/NBD.

A visit is a purchase day (``FitConfig.visit_mode = "day"``), the unit BG/NBD studies of this
data count. Calibration: every event before ``--cutoff``; holdout: ``--cutoff`` to the end of
the log (2011-12-09). For every customer with a calibration purchase:

* **simulator**: fit on the calibration events only; each customer's calibration history is
  replayed through it and the simulator runs on through the holdout window
  (:func:`retentionrl.simulators.fidelity.holdout_forecast.forecast_visits`, ``--replicas`` runs); with ``--fits K``,
  K simulators fit with different seeds pool their runs (fit-to-fit variation is large on a
  log of three thousand customers); ``--bootstrap`` makes them a bootstrap ensemble, each
  fit on a resample of the customers, as ``retentionrl simulator fit --seeds`` and the
  pipeline fit theirs;
* **BG/NBD**: ``lifetimes.BetaGeoFitter`` on the calibration summary
  (:func:`retentionrl.simulators.fidelity.bgnbd.calibration_holdout_summary`), expected visits in the window,
  and as many draws from its predictive distribution (:func:`retentionrl.simulators.fidelity.bgnbd.sample_future_visits`).

Both models are scored with two point forecasts per customer: the mean of their predictive
distribution (what totals and weekly curves add up) and its median (the forecast that
minimises the expected absolute error, so the fair one for MAE). Prints MAE per customer
(and RMSE, the totals) side by side and the weekly aggregate curve; writes ``holdout.png``
and ``holdout.json``. Honest numbers: whichever wins.

Usage: ``python experiments/online_retail_holdout.py [--data ../shared/data/online_retail/online_retail.parquet]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from retentionrl.core.atomic import atomic_path, atomic_write_text
from retentionrl.interactions.io import EventLog, read_events
from retentionrl.interactions.trajectories import add_trajectories
from retentionrl.interactions.visits import build_visits
from retentionrl.simulators.fidelity.bgnbd import (
    calibration_holdout_summary,
    expected_future_visits,
    fit_bgnbd,
    sample_future_visits,
)
from retentionrl.simulators.fidelity.holdout_forecast import forecast_visits
from retentionrl.simulators.learned.fit import FitConfig, fit_simulator

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "online_retail" / "online_retail.parquet"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cutoff", default="2011-09-09")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument(
        "--horizon",
        type=int,
        default=FitConfig.horizon_days,
        help="H: days without a return that count as churn (the simulator forecasts no return after it)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fits",
        type=int,
        default=1,
        help="simulators fit with seeds seed, seed+1, ...; their replicas are pooled (bagging the fit)",
    )
    parser.add_argument(
        "--bootstrap", action="store_true", help="with --fits K: each fit on a bootstrap resample of the customers"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/online_retail"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    log = read_events(args.data, "online-retail")
    cutoff = pd.Timestamp(args.cutoff)
    end = log.end.normalize() + pd.Timedelta("1D")
    holdout_days = (end - cutoff) / pd.Timedelta("1D")
    calibration = EventLog(log.events.loc[log.events["timestamp"].to_numpy() < cutoff.to_datetime64()], log.report)

    all_visits = build_visits(log, mode="day")
    summary = calibration_holdout_summary(all_visits, cutoff, end)
    cal_visits = add_trajectories(build_visits(calibration, mode="day"), cutoff, horizon_days=args.horizon)
    draws, weekly, fit_s = [], [], 0.0
    for fit_seed in range(args.seed, args.seed + args.fits):
        t0 = time.perf_counter()
        config = FitConfig(
            epochs=args.epochs,
            seed=fit_seed,
            device="cpu",
            visit_mode="day",
            horizon_days=args.horizon,
            bootstrap=args.bootstrap,
        )
        result = fit_simulator(calibration, config, args.out / ("model" if args.fits == 1 else f"model_seed{fit_seed}"))
        fit_s += time.perf_counter() - t0
        print(
            f"fit (seed {fit_seed}) on {result.card.data_summary['visits']:,} calibration purchase days of "
            f"{result.card.data_summary['users']:,} customers: {len(result.history)} epochs, "
            f"{time.perf_counter() - t0:.0f} s; heads not learned: {result.card.not_learned()}"
        )
        t0 = time.perf_counter()
        counts, fit_weekly = forecast_visits(
            result.simulator, cal_visits, cutoff, holdout_days, replicas=args.replicas, seed=fit_seed
        )
        print(f"simulated {args.replicas} replicas of {len(counts):,} customers in {time.perf_counter() - t0:.0f} s")
        draws.append(counts.reindex(summary.index).to_numpy())
        weekly.append(fit_weekly)
    sim_draws, sim_weekly = np.concatenate(draws, axis=1), np.mean(weekly, axis=0)

    bg = fit_bgnbd(summary["frequency_cal"], summary["recency_cal"], summary["T_cal"], penalizer=0.01)
    f, r, big_t = (summary[c].to_numpy() for c in ("frequency_cal", "recency_cal", "T_cal"))
    bg_counts = expected_future_visits(bg, f, r, big_t, holdout_days)
    bg_draws = sample_future_visits(bg, f, r, big_t, holdout_days, sim_draws.shape[1], seed=args.seed)
    weeks = np.arange(int(np.ceil(holdout_days / 7)) + 1) * 7.0
    bg_cum = np.stack([expected_future_visits(bg, f, r, big_t, min(w, holdout_days)) for w in weeks[1:]]).sum(axis=1)
    bg_weekly = np.diff(np.r_[0.0, bg_cum])

    actual = summary["frequency_holdout"].to_numpy()
    hold = all_visits.loc[
        (all_visits["start"] >= cutoff) & (all_visits["start"] < end) & all_visits["user_id"].isin(summary.index)
    ]
    real_weekly = np.bincount(((hold["start"] - cutoff) / pd.Timedelta("7D")).astype(int), minlength=len(sim_weekly))
    rows = {}
    for name, values in (("simulator", sim_draws), ("BG/NBD", bg_counts), ("BG/NBD draws", bg_draws)):
        bad = int((~np.isfinite(values)).reshape(len(actual), -1).any(axis=1).sum())
        if bad:  # every model is scored on every customer, or not at all
            raise SystemExit(f"{name} has no finite forecast for {bad} of {len(actual)} customers")
    forecasts = {
        "simulator (mean)": sim_draws.mean(axis=1),
        "simulator (median)": np.median(sim_draws, axis=1),
        "BG/NBD (expected)": bg_counts,
        "BG/NBD (median)": np.median(bg_draws, axis=1),
        "zero (no return)": np.zeros_like(actual),
    }
    for name, pred in forecasts.items():
        rows[name] = {
            "mae": float(np.abs(pred - actual).mean()),
            "rmse": float(np.sqrt(((pred - actual) ** 2).mean())),
            "total": float(pred.sum()),
        }
    print(
        f"\ncalibration to {cutoff:%Y-%m-%d}, holdout {holdout_days:.0f} days; {len(actual):,} customers, "
        f"{actual.sum():,.0f} holdout purchase days (mean {actual.mean():.3f})"
    )
    print(f"{'model':20s} {'MAE/customer':>13s} {'RMSE':>8s} {'total visits':>13s}")
    for name, row in rows.items():
        print(f"{name:20s} {row['mae']:13.4f} {row['rmse']:8.4f} {row['total']:13.0f}")
    print(f"{'actual':20s} {'':>13s} {'':>8s} {actual.sum():13.0f}")
    print("\nweek  actual  simulator   BG/NBD")
    for w in range(len(sim_weekly)):
        print(f"{w + 1:4d} {real_weekly[w]:7d} {sim_weekly[w]:10.1f} {bg_weekly[w]:8.1f}")
    weekly_mae = {
        "simulator": float(np.abs(sim_weekly - real_weekly[: len(sim_weekly)]).mean()),
        "BG/NBD": float(np.abs(bg_weekly - real_weekly[: len(bg_weekly)]).mean()),
    }
    print(
        f"weekly-curve MAE: simulator {weekly_mae['simulator']:.1f}, BG/NBD {weekly_mae['BG/NBD']:.1f} visits/week "
        "(the last week is partial)"
    )
    _plot(real_weekly, sim_weekly, bg_weekly, args.out / "holdout.png", cutoff)
    atomic_write_text(
        args.out / "holdout.json",
        json.dumps(
            {
                "cutoff": str(cutoff),
                "holdout_days": holdout_days,
                "horizon_days": args.horizon,
                "fits": args.fits,
                "bootstrap": args.bootstrap,
                "customers": len(actual),
                "fit_seconds": fit_s,
                "per_customer": rows,
                "weekly": {
                    "actual": real_weekly.tolist(),
                    "simulator": sim_weekly.tolist(),
                    "BG/NBD": bg_weekly.tolist(),
                },
                "weekly_mae": weekly_mae,
                "bgnbd_params": {k: float(v) for k, v in bg.params_.items()},
            },
            indent=2,
        ),
    )
    print(f"wrote {args.out / 'holdout.png'} and {args.out / 'holdout.json'}")


def _plot(real: np.ndarray, sim: np.ndarray, bg: np.ndarray, path: Path, cutoff: pd.Timestamp) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=100)
    weeks = np.arange(1, len(sim) + 1)
    ax.plot(weeks, real[: len(sim)], "k-o", ms=3, label="actual")
    ax.plot(weeks, sim, "-s", ms=3, label="simulator")
    ax.plot(weeks, bg[: len(sim)], "-^", ms=3, label="BG/NBD")
    ax.set_xlabel(f"week after {cutoff:%Y-%m-%d}")
    ax.set_ylabel("purchase days (calibration customers)")
    ax.set_title("Online Retail holdout: weekly visits")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


if __name__ == "__main__":
    main()
