"""Fidelity of the learned simulator against the ground-truth world, policy by policy.

Top to bottom: write world logs (``--users`` shoppers over ``--days`` days, default
softmax logging policy) -> fit the learned simulator on those logs only -> roll every
named policy out on fresh shoppers in both the world and the learned simulator, with the
same rollout code -> compare per policy the share of shoppers still active at days 7, 30
and 90 and the return visits per shopper within H, with 95% intervals, and Spearman's rho
of the 90-day retention across policies.

A shopper is *active at day t* if their lifetime has a visit at day >= t, or they had not
churned when their clock passed the horizon (at t = H this is the world's
``active_at_horizon``). Rollouts stop at churn or when the next visit falls at or past H,
as :func:`retentionrl.simulators.rollout.evaluate_policy` does.

With several ``--fit-seeds``, a simulator is fit per seed on the same logs and each is
compared with the same world rollouts; a last table gives, per policy, the mean and the
range of the differences over the fits. With ``--ensemble K`` (K >= 2), a bootstrap
ensemble as the pipeline fits it (seeds ``seed .. seed + K - 1``, each member on a
resample of the shoppers; :mod:`retentionrl.simulators.learned.ensemble`, each simulated
shopper in one member) is compared too, and with ``--ensemble-sizes 1,3,5`` also the
ensembles of its first k members (how many members the counts need; a last table puts the
relative errors of every size side by side).

Counts and money: for each simulator a second table gives the relative error
(simulated - true) / true of the return visits and of the profit per shopper, policy by
policy, against a target of ``--tolerance-rel`` (5%). A third table does the same for the
*static* policies, "always show group g, no coupon" for every group g: the policies
farthest from the logging policy's variety, where a simulator must extrapolate what a
shopper does when shown the same group visit after visit; it gives the mean and largest
|relative error| over the groups and Spearman's rho of their return visits.

``--fit-set`` sets fields of every fit's :class:`~retentionrl.simulators.learned.config.FitConfig`
(``retentionrl simulator fit --fields`` lists them), e.g. ``--fit-set exposure_input=true``
to compare a model that reads the ignored showings.

Usage: ``python experiments/simulator_fidelity.py [--users 20000] [--days 180] [--fit-seeds 0,1,2] [--ensemble 3]
[--ensemble-sizes 1,2] [--fit-set exposure_input=true] [--out runs/fidelity]``
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from retentionrl.agents.baselines import PopularityPolicy
from retentionrl.core.actions import ActionSpace
from retentionrl.core.atomic import atomic_write_text
from retentionrl.core.interval import Interval
from retentionrl.core.overrides import parse_assignments, with_overrides
from retentionrl.core.policy import Policy
from retentionrl.interactions.horizon import in_window
from retentionrl.interactions.io import read_events
from retentionrl.simulators.interface import ShopperSimulator
from retentionrl.simulators.learned.ensemble import SimulatorEnsemble
from retentionrl.simulators.learned.fit import FitConfig, fit_simulator
from retentionrl.simulators.policy_registry import POLICY_NAMES, make_policy
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs
from retentionrl.simulators.world.simulator import GroundTruthWorld

CHECK_DAYS = (7, 30, 90)


@dataclass
class Args:
    users: int = 20_000
    """shoppers in the world logs the simulator learns from"""
    days: int = 180
    """days of the log window"""
    eval_users: int = 20_000
    """fresh shoppers per policy and simulator in the comparison"""
    epochs: int = 30
    """most fit epochs (early stopping on held-out shoppers)"""
    seed: int = 0
    """seeds the logs and the rollouts"""
    fit_seeds: str = "0"
    """comma-separated seeds of the fits: one simulator per seed, each compared with the world
    (fit-to-fit variation is part of what a user gets)"""
    logging_policy: str = "softmax"
    """the policy that writes the logs"""
    out: Path = Path("runs/fidelity")
    """where the logs, the checkpoint and fidelity.json go"""
    tolerance_pp: float = 2.0
    """the issue's target: |simulated - true| share active, in percentage points"""
    ensemble: int = 0
    """members of a bootstrap ensemble to compare too (0 or 1: none)"""
    ensemble_sizes: str = ""
    """comma-separated sizes k < ensemble: also compare the ensembles of the first k members"""
    tolerance_rel: float = 0.05
    """the target of |simulated - true| / true for return visits and profit per shopper"""
    fit_set: str = ""
    """comma-separated FitConfig fields for every fit, NAME=VALUE (e.g. exposure_input=true)"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in fields(Args):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    return Args(**vars(parser.parse_args()))


def retention_rollout(sim: ShopperSimulator, policy: Policy, n: int, seed: int) -> dict[str, Interval]:
    """Share active at each day of :data:`CHECK_DAYS` and return visits within H, per shopper."""
    sim_seed, policy_seed = np.random.SeedSequence(seed).spawn(2)
    horizon = sim.horizon_days
    obs = sim.reset(n, seed=int(sim_seed.generate_state(1)[0]))
    rng = np.random.default_rng(policy_seed)
    alive = np.ones(n, dtype=bool)
    churn_day = np.full(n, np.inf)
    visits = np.zeros(n)
    profit = np.zeros(n)
    while alive.any():
        day = sim.days.copy()
        obs, out = sim.step(policy.act(obs, rng))
        visits += alive
        profit += np.where(alive, out.profit, 0.0)
        churn_day = np.where(alive & out.churned, day, churn_day)
        alive &= ~out.churned & in_window(sim.days, horizon)
    metrics = {f"active_day_{t}": Interval.of(churn_day >= t) for t in CHECK_DAYS}
    metrics["return_visits"] = Interval.of(visits - 1)
    metrics["profit"] = Interval.of(profit)
    return metrics


METRICS = [f"active_day_{t}" for t in CHECK_DAYS] + ["return_visits", "profit"]
MONEY = ("return_visits", "profit")


def print_money(rows: list[dict]) -> float:
    """Per policy, true and simulated return visits and profit per shopper and the relative
    error of each; returns the largest |relative error|."""
    print(f"\n{'policy':20s} " + " ".join(f"{m + ' true / sim (rel. error)':>40s}" for m in MONEY))
    worst = 0.0
    for row in rows:
        cells = []
        for m in MONEY:
            w, s = row["world"][m].estimate, row["simulator"][m].estimate
            rel = (s - w) / abs(w)
            worst = max(worst, abs(rel))
            cells.append(f"{w:8.2f} / {s:8.2f} ({100 * rel:+6.1f}%)")
        print(f"{row['policy']:20s} " + " ".join(f"{c:>40s}" for c in cells))
    print(
        f"largest |relative error| of return visits and profit: {100 * worst:.1f}% (target <= {100 * args.tolerance_rel:g}%)"
    )
    return worst


def static_policies(space: ActionSpace) -> dict[str, Policy]:
    """The policies "always show group g, no coupon", by name, for every group g of ``space``."""
    return {f"group {g}": PopularityPolicy(space, g) for g in range(space.n_arms)}


def print_static(rows: list[dict]) -> dict[str, float]:
    """Per static policy, true and simulated return visits and profit per shopper; returns
    the mean and largest |relative error| of each and Spearman's rho of the return visits."""
    print(f"\n{'static policy':14s} " + " ".join(f"{m + ' true / sim (rel. error)':>40s}" for m in MONEY))
    errors: dict[str, list[float]] = {m: [] for m in MONEY}
    for row in rows:
        cells = []
        for m in MONEY:
            w, s = row["world"][m].estimate, row["simulator"][m].estimate
            errors[m].append((s - w) / abs(w))
            cells.append(f"{w:8.2f} / {s:8.2f} ({100 * errors[m][-1]:+6.1f}%)")
        print(f"{row['policy']:14s} " + " ".join(f"{c:>40s}" for c in cells))
    rho = spearmanr(
        [r["world"]["return_visits"].estimate for r in rows], [r["simulator"]["return_visits"].estimate for r in rows]
    ).statistic
    summary = {"spearman_rho_return_visits": float(rho)}
    for m in MONEY:
        summary[f"mean_abs_rel_error_{m}"] = float(np.mean(np.abs(errors[m])))
        summary[f"max_abs_rel_error_{m}"] = float(np.max(np.abs(errors[m])))
    print(
        f"{len(rows)} static policies: mean |relative error| return visits "
        f"{100 * summary['mean_abs_rel_error_return_visits']:.1f}% (largest "
        f"{100 * summary['max_abs_rel_error_return_visits']:.1f}%), profit {100 * summary['mean_abs_rel_error_profit']:.1f}% "
        f"(largest {100 * summary['max_abs_rel_error_profit']:.1f}%); Spearman rho of return visits {rho:.3f}"
    )
    return summary


def print_sizes(by_size: dict[int, dict]) -> None:
    """Per named policy, the relative error of return visits / profit of each ensemble size,
    and per size the cells within ``--tolerance-rel``."""
    print(f"\n{'policy':20s}" + "".join(f"{f'{k} member(s)':>22s}" for k in by_size))
    within = dict.fromkeys(by_size, 0)
    for i, name in enumerate(POLICY_NAMES):
        cells = []
        for k, result in by_size.items():
            row = result["rows"][i]
            errors = [row[f"simulator/{m}"]["estimate"] / row[f"world/{m}"]["estimate"] - 1 for m in MONEY]
            within[k] += sum(abs(e) <= args.tolerance_rel for e in errors)
            cells.append(" / ".join(f"{100 * e:+.1f}%" for e in errors))
        print(f"{name:20s}" + "".join(f"{c:>22s}" for c in cells))
    print(
        f"{'cells within ' + format(100 * args.tolerance_rel, 'g') + '%':20s}"
        + "".join(f"{f'{n} of {2 * len(POLICY_NAMES)}':>22s}" for n in within.values())
    )


def separated_policies(rows: list[dict]) -> list[dict]:
    """Rows whose true 90-day retention intervals do not overlap, taken greedily from the
    highest: where the world's own intervals overlap, no order is there to recover."""
    chosen: list[dict] = []
    for row in sorted(rows, key=lambda r: -r["world"]["active_day_90"].estimate):
        if not chosen or row["world"]["active_day_90"].high < chosen[-1]["world"]["active_day_90"].low:
            chosen.append(row)
    return chosen


def print_table(rows: list[dict], logging_policy: str) -> tuple[float, float, list[str]]:
    """The per-policy table; returns the largest |difference| in share active (pp),
    Spearman's rho of the 90-day retention, and the policies within tolerance at every day."""
    print(f"\n{'policy':20s} " + " ".join(f"{m:>36s}" for m in METRICS[:-1]))
    worst, within = 0.0, []
    for row in rows:
        cells, row_worst = [], 0.0
        for m in METRICS[:-1]:
            w, s = row["world"][m], row["simulator"][m]
            scale = 100.0 if m.startswith("active") else 1.0
            diff = (s.estimate - w.estimate) * scale
            if m.startswith("active"):
                row_worst = max(row_worst, abs(diff))
            cells.append(
                f"{w.estimate * scale:6.2f}±{(w.high - w.estimate) * scale:4.2f} {s.estimate * scale:6.2f}±"
                f"{(s.high - s.estimate) * scale:4.2f} ({diff:+5.2f})"
            )
        worst = max(worst, row_worst)
        if row_worst <= args.tolerance_pp:
            within.append(row["policy"])
        print(
            f"{row['policy'] + (' *' if row['policy'] == logging_policy else ''):20s} "
            + " ".join(f"{c:>36s}" for c in cells)
        )
    rho = spearmanr(
        [r["world"]["active_day_90"].estimate for r in rows], [r["simulator"]["active_day_90"].estimate for r in rows]
    ).statistic
    separated = separated_policies(rows)
    rho_separated = spearmanr(
        [r["world"]["active_day_90"].estimate for r in separated],
        [r["simulator"]["active_day_90"].estimate for r in separated],
    ).statistic
    print("cells: world±95% simulator±95% (simulator - world); shares in %; * = logging policy")
    print(
        f"largest |difference| in share active: {worst:.2f} pp (target <= {args.tolerance_pp} pp); "
        f"Spearman rho of 90-day retention over {len(rows)} policies: {rho:.3f}; over the "
        f"{len(separated)} whose true values are apart ({', '.join(r['policy'] for r in separated)}): "
        f"{rho_separated:.3f}"
    )
    print(f"within {args.tolerance_pp} pp at days {', '.join(map(str, CHECK_DAYS))}: {', '.join(within) or 'none'}")
    return worst, float(rho), within


args = parse_args()
args.out.mkdir(parents=True, exist_ok=True)
config = WorldConfig()
fit_overrides = parse_assignments([item for item in args.fit_set.split(",") if item], "--fit-set")
log_path = args.out / "world_logs.parquet"
fit_seeds = [int(v) for v in args.fit_seeds.split(",")]

# 1. logs of the world under the logging policy
t0 = time.perf_counter()
summary = write_world_logs(config, args.users, args.days, args.seed, log_path, logging_policy=args.logging_policy)
print(
    f"world logs: {summary.n_users} shoppers, {summary.n_visits} visits, {summary.n_events} events "
    f"({time.perf_counter() - t0:.1f} s)"
)
log = read_events(log_path)

# 2. the truth: every named policy in the world
world = GroundTruthWorld(config)
truth = {
    name: retention_rollout(world, make_policy(name, config), args.eval_users, args.seed + 1) for name in POLICY_NAMES
}
static = static_policies(world.action_space)
static_truth = {
    name: retention_rollout(world, policy, args.eval_users, args.seed + 1) for name, policy in static.items()
}


def fit_config(**values: object) -> FitConfig:
    """The fit's config: these values, then ``--fit-set``."""
    base = FitConfig(epochs=args.epochs, horizon_days=config.horizon_days, **values)  # type: ignore[arg-type]
    return with_overrides(base, fit_overrides, source="--fit-set")


def compare(label: str, simulator: ShopperSimulator, extra: dict) -> dict:
    """Every named policy in ``simulator``, the same shoppers' seeds as the world's, against the truth."""
    rows = [
        {
            "policy": name,
            "world": truth[name],
            "simulator": retention_rollout(simulator, make_policy(name, config), args.eval_users, args.seed + 1),
        }
        for name in POLICY_NAMES
    ]
    print(f"\n== {label}")
    worst, rho, within = print_table(rows, args.logging_policy)
    worst_rel = print_money(rows)
    static_rows = [
        {
            "policy": name,
            "world": static_truth[name],
            "simulator": retention_rollout(simulator, policy, args.eval_users, args.seed + 1),
        }
        for name, policy in static.items()
    ]
    static_summary = print_static(static_rows)
    return {
        "label": label,
        "static": {
            **static_summary,
            "rows": [
                {
                    "policy": r["policy"],
                    **{f"{src}/{m}": asdict(r[src][m]) for src in ("world", "simulator") for m in MONEY},
                }
                for r in static_rows
            ],
        },
        **extra,
        "rows": [
            {
                "policy": r["policy"],
                "logging": r["policy"] == args.logging_policy,
                **{f"{src}/{m}": asdict(r[src][m]) for src in ("world", "simulator") for m in METRICS},
            }
            for r in rows
        ],
        "max_abs_diff_pp": worst,
        "max_abs_rel_error_visits_profit": worst_rel,
        "spearman_rho_active_day_90": rho,
        "within_tolerance": within,
    }


fits = []
for fit_seed in fit_seeds:
    # 3. fit on the logs only (default observation scale S = 50, as the world's)
    t0 = time.perf_counter()
    model_dir = args.out / ("model" if len(fit_seeds) == 1 else f"model_seed{fit_seed}")
    result = fit_simulator(log, fit_config(seed=fit_seed), model_dir, progress=True)
    fit_seconds = time.perf_counter() - t0
    print(
        f"fit (seed {fit_seed}): {len(result.history)} epochs in {fit_seconds:.1f} s; validation {result.card.metrics}"
    )
    # 4. every named policy in the learned simulator
    extra = {"fit_seed": fit_seed, "model": str(model_dir), "fit_seconds": fit_seconds, "card": result.card.to_dict()}
    fits.append(compare(f"single fit, seed {fit_seed}", result.simulator, extra))

ensemble = None
subsets: dict[int, dict] = {}
if args.ensemble > 1:
    t0 = time.perf_counter()
    members = [
        fit_simulator(
            log,
            fit_config(seed=args.seed + k, bootstrap=True),
            args.out / "ensemble" / f"member_{k}",
            progress=True,
        ).simulator
        for k in range(args.ensemble)
    ]
    label = f"bootstrap ensemble of {args.ensemble} (seeds {args.seed}..{args.seed + args.ensemble - 1})"
    ensemble = compare(label, SimulatorEnsemble(members), {"fit_seconds": time.perf_counter() - t0})
    sizes = sorted({int(v) for v in args.ensemble_sizes.split(",") if v} - {args.ensemble})
    if any(not 1 <= k < args.ensemble for k in sizes):
        raise SystemExit(f"--ensemble-sizes must lie in [1, {args.ensemble - 1}], got {args.ensemble_sizes!r}")
    subsets = {k: compare(f"the first {k} of those members", SimulatorEnsemble(members[:k]), {}) for k in sizes}
    if subsets:
        print_sizes({**subsets, args.ensemble: ensemble})

# 5. over the fits: mean and range of each difference
if len(fits) > 1:
    print(f"\nover {len(fits)} fits (seeds {args.fit_seeds}): simulator - world in pp, mean [min, max]")
    print(f"{'policy':20s} " + " ".join(f"{m:>24s}" for m in METRICS[: len(CHECK_DAYS)]) + "   within tolerance")
    for i, name in enumerate(POLICY_NAMES):
        cells = []
        for m in METRICS[: len(CHECK_DAYS)]:
            d = np.array(
                [
                    100 * (f["rows"][i][f"simulator/{m}"]["estimate"] - f["rows"][i][f"world/{m}"]["estimate"])
                    for f in fits
                ]
            )
            cells.append(f"{d.mean():+6.2f} [{d.min():+6.2f}, {d.max():+6.2f}]")
        hits = sum(name in f["within_tolerance"] for f in fits)
        print(
            f"{name + (' *' if name == args.logging_policy else ''):20s} "
            + " ".join(f"{c:>24s}" for c in cells)
            + f"   {hits}/{len(fits)} fits"
        )
    print("Spearman rho per fit: " + ", ".join(f"{f['spearman_rho_active_day_90']:.3f}" for f in fits))
report = {
    "args": {k: str(v) for k, v in asdict(args).items()},
    "fits": fits,
    "ensemble": ensemble,
    "ensemble_subsets": {str(k): v for k, v in subsets.items()},
}
atomic_write_text(args.out / "fidelity.json", json.dumps(report, indent=2))
print(f"wrote {args.out / 'fidelity.json'}")
