"""The closed loop on the ground-truth world: serve a policy, log its decisions, refit, retrain, serve again.

Top to bottom, CleanRL-style: copy it and change the ``Args``. The steps:

0. the world's logs under its softmax logging policy (``log_users`` shoppers over
   ``log_days`` days), a learned simulator fitted on them, PPO trained in it: policy v1;
1. round r = 1 .. ``rounds``: ``retentionrl serve --policy v_r`` runs as a subprocess on a free
   port with a fresh store and decision log (``--seed``: the run's seed + r); ``shoppers`` new
   world shoppers (a fresh seed per round) arrive on days drawn uniformly from the round's
   ``days``-day window and call it over HTTP, as :func:`retentionrl.simulators.world.logs.write_world_logs`
   steps them: at each step every active shopper asks ``POST /v1/decide`` (time = the window's
   first day + arrival + the world's day of the visit + the shopper's own time of day), the
   world takes the served actions, and the step's clicks and purchases (list price, units,
   cost of goods, redemption) go back in one ``POST /v1/events``; a shopper stops when they
   churn or their next visit falls past the window. SIGTERM stops the service, which flushes
   the decision log; the decisions the client received must equal the log's impressions, and
   each received propensity must equal the served policy's probability of the action given
   the world's own observation of the shopper (the service rebuilt it from events alone).
   Unless it is the last round, a simulator is refitted on the decision log (``fit_on all``:
   pooled with every earlier log) and PPO retrained in it: policy v_{r+1}; ``retentionrl
   certify`` then bounds v_{r+1}'s improvement over v_r on the decision log (exact propensities);
2. the truth: the softmax logging policy and every served policy (with the service's
   exploration floor, as served) on the same ``eval_users`` fresh world shoppers (one seed: the
   same shoppers and uniforms for every policy), per shopper over the 90-day horizon.

Every round's window ends on the day the round-0 logs end, so that a pooled log has one end
and a shopper is censored in it as in their own log.

It prints one line per stage, then the table: per round, the policy, what its simulator was
fitted on, the decisions it served, its true return visits and profit per shopper and its
return visits in the simulator it was trained in (95% intervals), and the certificate of the
next policy against it; then every retrained policy (v2, ...) against the one it replaced and
against the logging policy: differences with intervals that treat the two rollouts as
independent samples (the shared shoppers correlate them; positively, as shoppers who visit
often under one policy do under another, which makes these intervals wider than needed).
It writes ``closed_loop.json`` (everything, with each round's drive) and ``closed_loop.csv``
(the table) under ``--out``.

    python experiments/closed_loop.py [--rounds 2] [--days 180] [--shoppers 8000] [--out runs/closed_loop]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import train
from retentionrl.core.atomic import atomic_write_text
from retentionrl.core.interval import Z95, Interval
from retentionrl.core.policy import Policy
from retentionrl.envs.factory import load_simulator
from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.io import read_events
from retentionrl.serve import DEFAULT_MIN_PROPENSITY
from retentionrl.serve.client import DecisionClient
from retentionrl.serve.policy import ServedPolicy
from retentionrl.serve.server import free_port
from retentionrl.simulators.learned.fit import FitConfig, action_map_of, fit_simulator
from retentionrl.simulators.policy_registry import make_policy
from retentionrl.simulators.rollout import PolicyValue, evaluate_policy
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import DAY_END_S, DAY_START_S, write_world_logs
from retentionrl.simulators.world.simulator import GroundTruthWorld

START = "2024-01-01"
"""Day 0 of the round-0 logs."""


@dataclass
class Args:
    rounds: int = 2
    """policies served in turn (>= 1); each round but the last trains the next one"""
    days: int = 180
    """days of each round's window; more than the horizon H = 90, or no shopper can be seen to churn
    in the decision log (a shopper is censored whose last visit is within H of the log's end)"""
    shoppers: int = 8_000
    """new world shoppers per round, calling the service"""
    log_users: int = 10_000
    """shoppers in the round-0 world logs (softmax logging policy)"""
    log_days: int = 180
    """days of the round-0 logs"""
    total_steps: int = 200_000
    """PPO environment steps per policy"""
    num_envs: int = 256
    """shoppers stepped together while training"""
    epochs: int = 30
    """most epochs of each simulator fit (early stopping on held-out shoppers)"""
    fit_on: str = "all"
    """what round r's simulator is fitted on: 'all' (round 0's logs and every decision log so far) or 'decisions' (round r's decision log alone)"""
    min_propensity: float = DEFAULT_MIN_PROPENSITY
    """the service's exploration floor"""
    eval_users: int = 5_000
    """fresh world shoppers per policy for the true values"""
    threads: int = 1
    """torch threads of the fits and the training: on a shared 2-core machine one thread is faster
    than two at these sizes and does not collapse when the other core is busy"""
    certify: bool = True
    """certify each new policy against the served one on its decision log"""
    seed: int = 0
    """seeds the logs, the fits, the agents, the service, the shoppers and the evaluation"""
    out: str = "runs/closed_loop"
    """folder of every round's logs, simulators, policies and the table"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in asdict(Args()).items():
        kind = (lambda v: v.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default)
    args = Args(**vars(parser.parse_args()))
    if args.fit_on not in ("all", "decisions"):
        parser.error(f"--fit-on: expected all or decisions, got {args.fit_on!r}")
    if min(args.rounds, args.days, args.shoppers, args.log_users, args.log_days, args.total_steps) < 1:
        parser.error("--rounds, --days, --shoppers, --log-users, --log-days and --total-steps must be >= 1")
    return args


# --- the service as a subprocess -----------------------------------------------------------


@contextmanager
def running_service(
    policy_dir: Path,
    folder: Path,
    *,
    seed: int,
    min_propensity: float = DEFAULT_MIN_PROPENSITY,
    startup_timeout: float = 120.0,
) -> Iterator[DecisionClient]:
    """``retentionrl serve`` of ``policy_dir`` with a fresh store and decision log in ``folder``
    (``decision_log.parquet``; its output in ``service.txt``); yields a client once ``/healthz``
    answers. On exit it sends SIGTERM and waits for the process, so the log is complete.

    ``seed`` seeds the service's sampling and its pseudonymisation key (``id_key.txt``), so a
    rerun logs the same shopper ids and every fit that splits shoppers by id splits them alike
    (a shop keeps its key secret; an experiment needs it reproducible).

    :raises RuntimeError: the service exited or did not answer within ``startup_timeout``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("store.sqlite", "store.sqlite-wal", "store.sqlite-shm", "decision_log.parquet"):
        (folder / stale).unlink(missing_ok=True)
    (folder / "id_key.txt").write_text(np.random.default_rng(seed).bytes(32).hex() + "\n")
    port = free_port()
    command = [
        *(sys.executable, "-m", "retentionrl", "serve", "--policy", str(policy_dir), "--port", str(port)),
        *("--store", str(folder / "store.sqlite"), "--decision-log", str(folder / "decision_log.parquet")),
        *("--id-key-file", str(folder / "id_key.txt"), "--min-propensity", repr(min_propensity)),
        *("--seed", str(seed), "--record-cogs"),
    ]
    with open(folder / "service.txt", "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        client = DecisionClient(f"http://127.0.0.1:{port}", timeout=60.0)
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the service exited with status {process.returncode}: see {folder / 'service.txt'}"
                    )
                try:
                    client.health()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the service did not answer within {startup_timeout:g} s") from None
                    time.sleep(0.1)
            yield client
        finally:
            client.close()
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise RuntimeError("the service did not stop within 120 s of SIGTERM") from None
    # uvicorn re-raises the SIGTERM it handled once it has shut down (the log is flushed by then)
    if process.returncode not in (0, -signal.SIGTERM):
        raise RuntimeError(f"the service exited with status {process.returncode}: see {folder / 'service.txt'}")


# --- world shoppers calling the service --------------------------------------------------------


@dataclass
class DriveResult:
    """What a drive of world shoppers through the service received and sent."""

    shoppers: int
    decisions: int
    """decisions the client received"""
    clicks: int
    purchases: int
    redeemed: int
    units: float
    spend: float
    """list price x units over the purchases"""
    max_propensity_gap: float
    """largest |received propensity - the served policy's probability of the action given the
    world's own observation of the shopper| (NaN without a policy to check against)"""
    seconds: float
    propensities: dict[str, float] = field(default_factory=dict, repr=False)
    """received propensity by decision id"""


def drive_world(
    client: DecisionClient,
    n_users: int,
    days: int,
    seed: int,
    *,
    start: datetime,
    prefix: str,
    config: WorldConfig | None = None,
    check: Policy | None = None,
) -> DriveResult:
    """``n_users`` fresh world shoppers arriving uniformly over ``days`` days from ``start`` call
    the service behind ``client`` at each of their visits (module docstring, step 1), as
    ``write_world_logs`` steps them; shopper ``k`` is ``f"{prefix}{k}"``.

    :param check: the served policy (with its floor); each received propensity is compared with
        its probability of the served action given the world's own observation.
    :raises ValueError: the service's arms or coupon levels are not the world's.
    """
    config = config if config is not None else WorldConfig()
    t0 = time.perf_counter()
    world = GroundTruthWorld(config)
    space = world.action_space
    served = client.policy()
    if served["arms"] != list(range(space.n_arms)) or served["coupon_levels"] != list(space.coupon_levels):
        raise ValueError(
            f"the service's arms {served['arms']} and coupon levels {served['coupon_levels']} are not the world's "
            f"(groups 0..{space.n_arms - 1}, {list(space.coupon_levels)}): its action indices would mean other actions"
        )
    world_seed, arrival_seed, time_seed = np.random.SeedSequence(seed).spawn(3)
    obs = world.reset(n_users, seed=int(world_seed.generate_state(1)[0]))
    arrival = np.random.default_rng(arrival_seed).integers(0, days, n_users)
    rng = np.random.default_rng(time_seed)
    time_of_day = rng.integers(DAY_START_S, DAY_END_S, n_users)  # each shopper's habit, as in the world's logs
    price, cost = world.catalog.item_price, world.catalog.item_cost
    user = np.arange(n_users)
    result = DriveResult(n_users, 0, 0, 0, 0, 0.0, 0.0, math.nan, 0.0)
    gaps: list[float] = []
    while user.size:
        seconds = (arrival + world.days.astype(np.int64)) * 86_400 + time_of_day[user]
        times = [start + timedelta(seconds=int(s)) for s in seconds]
        decisions = [client.decide(f"{prefix}{u}", t) for u, t in zip(user, times)]
        action = np.array([d["action"] for d in decisions], dtype=np.int64)
        received = np.array([d["propensity"] for d in decisions])
        if check is not None:
            gaps.append(float(np.abs(check.taken_probs(obs, action) - received).max()))
        result.propensities.update((d["decision_id"], d["propensity"]) for d in decisions)
        obs, out = world.step(action)
        item, units = world.last_item, world.last_units
        click_s = rng.integers(5, 121, user.size)
        buy_s = click_s + rng.integers(30, 901, user.size)
        events: list[dict] = []
        for i in np.flatnonzero(out.click):
            decision_id, shopper, shown = decisions[i]["decision_id"], f"{prefix}{user[i]}", int(item[i])
            ids = {"decision_id": decision_id, "shopper_id": shopper, "item_id": shown}
            events.append(
                {
                    "event_id": f"{decision_id}-c",
                    **ids,
                    "event": "click",
                    "time": times[i] + timedelta(seconds=int(click_s[i])),
                }
            )
            if out.purchase[i]:
                purchase = {"price": float(price[shown]), "quantity": float(units[i]), "unit_cost": float(cost[shown])}
                events.append(
                    {
                        "event_id": f"{decision_id}-p",
                        **ids,
                        "event": "purchase",
                        "time": times[i] + timedelta(seconds=int(buy_s[i])),
                        **purchase,
                        "redeemed": bool(out.redeemed[i]),
                    }
                )
        if events:
            client.record(events)
        result.decisions += user.size
        result.clicks += int(out.click.sum())
        result.purchases += int(out.purchase.sum())
        result.redeemed += int(out.redeemed.sum())
        result.units += float(units.sum())
        result.spend += float(out.spend.sum())
        keep = ~out.churned & (arrival + world.days < days)
        obs = world.keep_rows(keep)
        user, arrival = user[keep], arrival[keep]
    result.max_propensity_gap = max(gaps) if gaps else math.nan
    result.seconds = time.perf_counter() - t0
    return result


def impressions_in(log_path: Path) -> pd.DataFrame:
    """The decision log's impression rows (``decision_id``, ``propensity``), as written."""
    log = pd.read_parquet(log_path, columns=["event", "decision_id", "propensity"])
    return log[log["event"] == "impression"]


# --- fitting, training, certifying, evaluating ---------------------------------------------------


def pool_logs(paths: list[Path], out_path: Path) -> Path:
    """The event logs ``paths`` as one Parquet file (columns of all; missing ones empty)."""
    tables = [pd.read_parquet(p) for p in paths]
    for table in tables:
        table["timestamp"] = table["timestamp"].astype("datetime64[us]")
    pd.concat(tables, ignore_index=True).to_parquet(out_path, index=False)
    return out_path


def fit_and_train(logs: list[Path], folder: Path, args: Args, seed: int, action_map: ActionMap) -> Path:
    """Fit a simulator on ``logs`` (pooled when several) with ``action_map``'s arms and coupon
    ladder (every round's policy acts on the same actions), train PPO in it; returns the policy folder."""
    folder.mkdir(parents=True, exist_ok=True)
    log = read_events(logs[0] if len(logs) == 1 else pool_logs(logs, folder / "fit_logs.parquet"))
    t0 = time.perf_counter()
    result = fit_simulator(log, fit_config(args, seed), folder / "simulator", action_map=action_map)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    config = TrainConfig(
        algo="ppo",
        simulator=str(folder / "simulator"),
        total_steps=args.total_steps,
        num_envs=args.num_envs,
        seed=seed,
        device="cpu",
    )
    train(config, folder / "policy", progress=False)
    print(
        f"  fit on {log.n_users:,} shoppers' {len(log.events):,} events ({len(result.history)} epochs, "
        f"{fit_s:.0f} s); PPO {args.total_steps:,} steps ({time.perf_counter() - t0:.0f} s): {folder / 'policy'}"
    )
    return folder / "policy"


def fit_config(args: Args, seed: int) -> FitConfig:
    """Every round's fit settings."""
    return FitConfig(epochs=args.epochs, seed=seed, device="cpu")


def certify_against_served(log_path: Path, policy_dir: Path, folder: Path, seed: int) -> dict:
    """``retentionrl certify`` of ``policy_dir`` against the policy that wrote ``log_path``: the
    certificate, or ``{"verdict": "not computed", "reason": ...}`` where the command refused
    (exit status 2: e.g. a decision log too small to show every arm)."""
    command = [sys.executable, "-m", "retentionrl", "certify", "--logs", str(log_path), "--policy", str(policy_dir)]
    done = subprocess.run(
        [*command, "--out", str(folder), "--seed", str(seed)], capture_output=True, text=True, check=False
    )
    if done.returncode == 2:
        return {"verdict": "not computed", "reason": done.stderr.strip().splitlines()[-1]}
    if done.returncode != 0:
        raise RuntimeError(f"retentionrl certify failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads((folder / "certificate.json").read_text())


def difference(a: Interval, b: Interval) -> Interval:
    """``a - b`` with the interval of two independent means (conservative for positively
    correlated samples such as rollouts on the same shoppers)."""
    half = Z95 * math.hypot((a.high - a.low) / (2 * Z95), (b.high - b.low) / (2 * Z95))
    estimate = a.estimate - b.estimate
    return Interval(estimate, estimate - half, estimate + half, min(a.n, b.n))


# --- the loop -------------------------------------------------------------------------------------


@dataclass
class Round:
    """One row of the table."""

    round: int
    policy: str
    folder: str
    trained_on: str
    decisions: int
    simulator: str = ""
    """the learned simulator the policy was trained in"""
    truth: PolicyValue | None = None
    in_simulator: PolicyValue | None = None
    """the policy's value in its training simulator, on as many fresh simulated shoppers"""
    certificate: dict | None = None
    """the next policy's certificate against this one, on this round's decision log"""
    drive: dict | None = None
    """what the round's shoppers received and did (:class:`DriveResult`, without the propensities)"""


def main(args: Args) -> list[Round]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    config = WorldConfig()
    seeds = np.random.SeedSequence(args.seed).spawn(args.rounds + 2)
    seed_of = [int(s.generate_state(1)[0] % 2**31) for s in seeds]  # 0: logs, r: round r, last: evaluation

    # 0. logs of the world under its logging policy -> simulator -> PPO: v1
    logs0 = out / "round0" / "world_logs.parquet"
    logs0.parent.mkdir(parents=True, exist_ok=True)
    summary = write_world_logs(config, args.log_users, args.log_days, seed_of[0], logs0)
    print(
        f"round 0: world logs under softmax: {summary.n_users:,} shoppers, {summary.n_visits:,} visits, "
        f"{summary.n_events:,} events"
    )
    rows = [Round(0, "logging (softmax)", "", "—", summary.n_visits)]
    action_map = action_map_of(read_events(logs0), fit_config(args, args.seed))
    policy_dir = fit_and_train([logs0], out / "round0", args, args.seed, action_map)
    fit_logs, trained_on = [logs0], "round-0 logs"
    window_start = datetime.fromisoformat(START) + timedelta(days=args.log_days - args.days)

    for r in range(1, args.rounds + 1):
        folder = out / f"round{r}"
        served = ServedPolicy(policy_dir, args.min_propensity)
        with running_service(policy_dir, folder, seed=args.seed + r, min_propensity=args.min_propensity) as client:
            drive = drive_world(
                client,
                args.shoppers,
                args.days,
                seed_of[r],
                start=window_start,
                prefix=f"w{r}-",
                config=config,
                check=served,
            )
        log_path = folder / "decision_log.parquet"
        impressions = impressions_in(log_path)
        logged = dict(zip(impressions["decision_id"], impressions["propensity"]))
        same = len(logged) == drive.decisions and all(logged.get(k) == p for k, p in drive.propensities.items())
        print(
            f"round {r}: v{r} served {drive.decisions:,} decisions to {drive.shoppers:,} shoppers over {args.days} days "
            f"({drive.clicks:,} clicks, {drive.purchases:,} purchases, {drive.seconds:.0f} s); decision log: "
            f"{len(impressions):,} impressions, {'the same' if same else 'NOT the same'} decision ids and propensities; "
            f"largest |received - policy's propensity given the world's observation|: {drive.max_propensity_gap:.1e}"
        )
        if not same:
            raise RuntimeError(f"{log_path}: the logged impressions are not the decisions the client received")
        summary_of_drive = {k: v for k, v in asdict(drive).items() if k != "propensities"}
        simulator_dir = str(policy_dir.parent / "simulator")
        rows.append(
            Round(r, f"v{r}", str(policy_dir), trained_on, drive.decisions, simulator_dir, drive=summary_of_drive)
        )
        if r == args.rounds:
            break
        if args.fit_on == "all":
            fit_logs = [*fit_logs, log_path]
            trained_on = "round-0 logs + decision log" + (" 1" if r == 1 else f"s 1-{r}")
        else:
            fit_logs, trained_on = [log_path], f"decision log {r}"
        policy_dir = fit_and_train(fit_logs, folder, args, args.seed + r, action_map)
        if args.certify:
            rows[-1].certificate = certify_against_served(log_path, policy_dir, folder / "certificate", args.seed)
            print(f"  certify v{r + 1} against v{r} on its decision log: {_headline(rows[-1].certificate)}")

    # 2. the truth: every served policy on the same fresh shoppers
    world = GroundTruthWorld(config)
    for row in rows:
        policy = make_policy("softmax", config) if row.round == 0 else ServedPolicy(row.folder, args.min_propensity)
        row.truth = evaluate_policy(world, policy, args.eval_users, seed_of[-1])
        if row.simulator:
            simulator = load_simulator(row.simulator, device="cpu")
            row.in_simulator = evaluate_policy(simulator, policy, args.eval_users, seed_of[-1])
    print_table(rows, args)
    write_table(rows, args, out)
    print(
        f"wall time {time.perf_counter() - t_start:.0f} s; wrote {out / 'closed_loop.csv'} and {out / 'closed_loop.json'}"
    )
    return rows


def _headline(cert: dict) -> str:
    if "lower_bound" not in cert:
        return f"{cert['verdict']}: {cert['reason']}"
    return (
        f"{cert['verdict']} (alpha = {cert['mix']:g}: improvement {cert['estimate']:+.3f}, 95% lower bound "
        f"{cert['lower_bound']:+.3f} return visits per lifetime, n = {cert['n']:,})"
    )


def _interval(value: Interval, signed: bool = False) -> str:
    f = "+.2f" if signed else ".2f"
    return f"{value.estimate:{f}} [{value.low:{f}}, {value.high:{f}}]"


def print_table(rows: list[Round], args: Args) -> None:
    header = [
        "round",
        "policy",
        "trained on",
        "decisions",
        "true return visits",
        "true profit",
        "its simulator's return visits",
        "next policy's certificate",
    ]
    cells = [
        [
            str(row.round),
            row.policy,
            row.trained_on,
            f"{row.decisions:,}",
            _interval(row.truth.return_visits) if row.truth else "",
            _interval(row.truth.profit) if row.truth else "",
            _interval(row.in_simulator.return_visits) if row.in_simulator else "—",
            _headline(row.certificate) if row.certificate else "—",
        ]
        for row in rows
    ]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    print()
    for line in [header, ["-" * w for w in widths], *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    n = rows[0].truth.n_users if rows[0].truth else 0
    print(
        f"per shopper over 90 days, {n:,} fresh world shoppers (the same for every policy), 95% intervals; "
        f"round 0's decisions are the logs' visits; served policies with the floor {args.min_propensity:g}"
    )
    for row in rows[2:]:  # every retrained policy against the one it replaced and against logging
        for base in (rows[row.round - 1], rows[0]):
            assert row.truth is not None and base.truth is not None  # main evaluated every row
            visits = difference(row.truth.return_visits, base.truth.return_visits)
            profit = difference(row.truth.profit, base.truth.profit)
            print(
                f"{row.policy} - {base.policy}: return visits {_interval(visits, True)}, "
                f"profit {_interval(profit, True)} per shopper"
            )


def write_table(rows: list[Round], args: Args, out: Path) -> None:
    records = []
    for row in rows:
        skip = ("truth", "in_simulator", "certificate", "drive")
        record: dict = {k: v for k, v in asdict(row).items() if k not in skip}
        for source, value in (("true", row.truth), ("simulator", row.in_simulator)):
            for name, metric in value.metrics().items() if value else ():
                record.update(
                    {
                        f"{source}_{name}": metric.estimate,
                        f"{source}_{name}_low": metric.low,
                        f"{source}_{name}_high": metric.high,
                    }
                )
        cert = row.certificate or {}
        record.update(
            {f"next_certificate_{k}": cert.get(k) for k in ("verdict", "mix", "estimate", "lower_bound", "n")}
        )
        records.append(record)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(k for record in records for k in record)))
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(out / "closed_loop.csv", text.getvalue())
    detail = [asdict(row) for row in rows]  # truth as PolicyValue.to_dict, the certificate as written
    atomic_write_text(out / "closed_loop.json", json.dumps({"args": asdict(args), "rounds": detail}, indent=2))


if __name__ == "__main__":
    main(parse_args())
