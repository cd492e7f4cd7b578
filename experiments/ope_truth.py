"""Off-policy estimates against the ground-truth world: relative error and interval coverage.

What is estimated (both per shopper's first ``H`` = 90 days, the window the world's
:func:`retentionrl.simulators.rollout.evaluate_policy` scores):

* **per decision** -- expected immediate profit per visit if the target policy chose
  the action at the logging policy's visits (the quantity bandit estimators target, a
  one-step deviation on the logged state distribution):
  :math:`V = E[\\sum_t \\bar r_e(s_t)] / E[T]` over shoppers under the logging policy,
  :math:`\\bar r_e(s) = E_{a \\sim \\pi_e}[\\text{spend} - \\text{coupon cost} - \\text{cost of goods}
  \\mid s, a]`.
  Truth: :func:`retentionrl.simulators.world.truth.per_decision_truth`, exact in the actions and in
  the rewards given the item shown (the world's response probabilities), Monte Carlo over
  the states of a logging-policy rollout of ``--truth-users`` shoppers and the items, with
  its standard error.
* **per trajectory** -- return visits per shopper within ``H`` under the target policy
  (:attr:`PolicyValue.return_visits`). Truth: on-policy rollouts of many shoppers. Step
  reward: 1 if the shopper comes back inside the window, so a trajectory's return is its
  number of return visits.

Logs: :func:`retentionrl.simulators.world.logs.write_world_logs` under the default (softmax) logging
policy over ``2 H`` days; only shoppers who arrived by day ``H`` are kept (their whole
``H``-day window is in the log; arrival is independent of everything else, so this does
not bias) and only their visits within ``H`` days of their first.

Table cells: mean relative error :math:`|\\hat V - V| / V` over seeds / share of seeds whose
95% bootstrap interval (over shoppers; for DM, DR and their variants the cross-fitted
reward model moves with each resample, :mod:`retentionrl.evaluation.runner`) covers :math:`V`. A second
table sets the intervals' width against the estimates' actual spread over seeds.

Run: ``python -m experiments.ope_truth [--seeds 30] [--users 6000] [--truth-users 400000]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from retentionrl.core.policy import Policy
from retentionrl.evaluation.policies import MixturePolicy
from retentionrl.evaluation.runner import LoggedSteps, evaluate_policies
from retentionrl.evaluation.world_steps import action_features
from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.io import read_events
from retentionrl.interactions.trajectories import visits_with_trajectories
from retentionrl.simulators.policy_registry import make_policy, world_group_rates
from retentionrl.simulators.world.config import WORLD_VERSION, WorldConfig
from retentionrl.simulators.world.logging_policies import SoftmaxPolicy
from retentionrl.simulators.world.logs import write_world_logs
from retentionrl.simulators.world.simulator import GroundTruthWorld
from retentionrl.simulators.world.truth import per_decision_truth

START = "2024-01-01"


def target_policies(config: WorldConfig) -> dict[str, tuple[Policy, str]]:
    """Name -> (policy, "close" | "far")."""
    logging = make_policy("softmax", config)
    rates = world_group_rates(config)
    return {
        "softmax+20% uniform": (
            MixturePolicy([logging, make_policy("uniform", config)], [0.8, 0.2], "softmax+20% uniform"),
            "close",
        ),
        "softmax T=0.8": (SoftmaxPolicy.over_popularity(config.action_space, rates.purchase, temperature=0.8), "close"),
        "never-coupon": (make_policy("never-coupon", config), "far"),
        "satisfaction-aware": (make_policy("satisfaction-aware", config), "far"),
    }


def logged_steps(path: Path, config: WorldConfig, days: int) -> LoggedSteps:
    """The first-``H``-day steps of fully observed shoppers (see the module docstring). A
    trajectory is a shopper (in the world no return comes after more than ``H`` days), so
    the bootstrap over trajectories is the bootstrap over shoppers; checked here."""
    log = read_events(path)
    visits = visits_with_trajectories(log, horizon_days=config.horizon_days)
    if visits.groupby("user_id")["trajectory_id"].nunique().max() > 1:
        raise ValueError(f"{path}: a shopper has several trajectories; the units would not be shoppers")
    decisions = LoggedDecisions.from_visits(visits, ActionMap.fit(visits), config.horizon_days)
    first = visits.groupby("trajectory_id")["start"].transform("min")
    arrival_day = ((first - pd.Timestamp(START)) / pd.Timedelta(days=1)).to_numpy()
    keep = (arrival_day <= days - config.horizon_days) & decisions.in_window
    d = decisions.take(keep)
    tid, step = d.trajectory_id, d.visit_index.astype(np.int64)
    space = d.action_map.space
    if space.n_actions != config.action_space.n_actions:
        raise ValueError(
            f"the log's action map has {space.n_actions} actions, the world {config.action_space.n_actions}"
        )
    return LoggedSteps(
        np.asarray(d.obs, dtype=np.float64),
        d.action.astype(np.int64),
        d.propensity,
        tid,
        step,
        d.profit,
        d.returned.astype(np.float64),
        space.n_actions,
        action_features(space),
    )


TRUTH_METHOD = "per-decision exact in actions and in profit given the item, Monte Carlo over states and items"
"""Stamped into the truth cache with the world version: a cache written by another method or
world is recomputed."""


def true_values(
    config: WorldConfig, targets: dict[str, tuple[Policy, str]], truth_users: int, cache: Path | None = None
) -> dict[str, dict[str, float]]:
    """Per target: ``per-decision`` (:func:`per_decision_truth`) and ``per-trajectory``
    (on-policy return visits) values, each with its Monte-Carlo standard error (``...-se``).

    :param cache: JSON of the values, read when written for the same ``truth_users``,
        :data:`TRUTH_METHOD` and world version, else computed and written.
    """
    key = {"truth_users": truth_users, "method": TRUTH_METHOD, "world_version": WORLD_VERSION}
    cached = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    if all(cached.get(k) == v for k, v in key.items()) and set(targets) <= set(cached.get("truth", {})):
        print(f"truth read from {cache}")
        return cached["truth"]
    t0 = time.time()
    logging = make_policy("softmax", config)
    decision = per_decision_truth(
        config, logging, {name: p for name, (p, _) in targets.items()}, truth_users, seed=20_000
    )
    world = GroundTruthWorld(config)
    truth: dict[str, dict[str, float]] = {}
    for name, (policy, _) in targets.items():
        visits = world.evaluate(policy, truth_users, seed=10_000).return_visits
        truth[name] = {
            "per-decision": decision[name].value,
            "per-decision-se": decision[name].se,
            "per-trajectory": visits.estimate,
            "per-trajectory-se": (visits.high - visits.low) / 3.92,
        }
        print(
            f"truth {name}: profit/visit {decision[name].value:.4f} (se {decision[name].se:.4f}), "
            f"return visits {visits}  ({time.time() - t0:.0f}s)",
            flush=True,
        )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({**key, "truth": truth}, indent=1))
    return truth


def run(
    n_seeds: int,
    n_users: int,
    truth_users: int,
    n_bootstrap: int,
    out: Path | None,
    truth_cache: Path | None = None,
    cross_fit: int = 2,
    first_seed: int = 0,
) -> pd.DataFrame:
    """One row per (seed, policy, family, estimator): estimate, interval, truth and its se,
    relative error, coverage, ESS.

    :param truth_cache: see :func:`true_values`.
    :param cross_fit: shopper folds of the per-decision reward model (:func:`reward_fit_of`).
    """
    config = WorldConfig()
    targets = target_policies(config)
    days = 2 * config.horizon_days
    truth = true_values(config, targets, truth_users, truth_cache)
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(first_seed, first_seed + n_seeds):
            path = Path(tmp) / f"log{seed}.parquet"
            write_world_logs(config, n_users, days, seed, path, start=START)
            steps = logged_steps(path, config, days)
            policies = {name: policy for name, (policy, _) in targets.items()}
            results = evaluate_policies(steps, policies, n_bootstrap=n_bootstrap, seed=seed, cross_fit=cross_fit)
            for name, res in results.items():
                kind = targets[name][1]
                for family, intervals in (("per-decision", res.bandit), ("per-trajectory", res.trajectory)):
                    v = truth[name][family]
                    for est, iv in intervals.items():
                        rows.append(
                            {
                                "policy": name,
                                "kind": kind,
                                "family": family,
                                "estimator": est,
                                "seed": seed,
                                "estimate": iv.estimate,
                                "low": iv.low,
                                "high": iv.high,
                                "truth": v,
                                "truth_se": truth[name][f"{family}-se"],
                                "rel_error": abs(iv.estimate - v) / abs(v),
                                "covered": float(iv.covers(v)) if np.isfinite(iv.low) else np.nan,
                                "ess": (
                                    res.bandit_diagnostics if family == "per-decision" else res.trajectory_diagnostics
                                ).ess,
                            }
                        )
            print(
                f"seed {seed}: {np.unique(steps.trajectory_id).size} shoppers, {steps.action.size} visits "
                f"({time.time() - t0:.0f}s)",
                flush=True,
            )
    frame = pd.DataFrame(rows)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
    return frame


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean relative error and coverage per (family, estimator) x policy."""
    g = frame.groupby(["family", "estimator", "policy"], sort=False)
    s = g.agg(rel_error=("rel_error", "mean"), coverage=("covered", "mean")).reset_index()
    s["cell"] = s.apply(
        lambda r: f"{r.rel_error:.3f} / " + ("n/a" if np.isnan(r.coverage) else f"{r.coverage:.0%}"), axis=1
    )
    return s.pivot(index=["family", "estimator"], columns="policy", values="cell").reindex(
        columns=list(dict.fromkeys(frame["policy"]))
    )


def spread_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (family, estimator) x policy: the mean bootstrap standard error (interval width /
    3.92) over the standard deviation of the estimates across seeds -- near 1 when the
    intervals are as wide as the estimator's actual spread."""
    f = frame.assign(boot_se=(frame["high"] - frame["low"]) / 3.92)
    g = f.groupby(["family", "estimator", "policy"], sort=False)
    ratio = (g["boot_se"].mean() / g["estimate"].std(ddof=1)).rename("ratio").reset_index()
    return (
        ratio.pivot(index=["family", "estimator"], columns="policy", values="ratio")
        .reindex(columns=list(dict.fromkeys(frame["policy"])))
        .round(2)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--users", type=int, default=6000, help="shoppers per log (about half are kept)")
    parser.add_argument("--truth-users", type=int, default=400_000)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("runs/ope_truth/results.csv"))
    parser.add_argument("--truth-cache", type=Path, default=Path("runs/ope_truth/truth.json"))
    parser.add_argument("--cross-fit", type=int, default=2, help="reward-model shopper folds (0 = in-sample)")
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    frame = run(
        args.seeds,
        args.users,
        args.truth_users,
        args.bootstrap,
        args.out,
        args.truth_cache,
        args.cross_fit,
        args.first_seed,
    )
    pd.set_option("display.width", 200)
    truth = frame.groupby(["family", "policy"], sort=False)[["truth", "truth_se"]].first()
    print("\ntrue values (Monte-Carlo standard error)")
    print(truth.to_string())
    print("\nmean |V̂ - V| / V  /  95% bootstrap coverage, over", args.seeds, "log seeds")
    print(summary_table(frame).to_string())
    print("\nmean bootstrap standard error / standard deviation of the estimates over seeds")
    print(spread_table(frame).to_string())


if __name__ == "__main__":
    main()
