"""Event logs of the ground-truth world under a stochastic logging policy, with propensities.

``n_users`` shoppers arrive on days drawn uniformly from ``[0, days)``; each visits per the
world's dynamics until they churn or their next visit falls at or past day ``days``. All
shoppers are stepped together, one visit per step (no loop over shoppers); finished
shoppers are dropped from the batch.

Per visit, in the :mod:`retentionrl.interactions.schema` (timestamps = ``start`` + visit day + the
shopper's own time of day, fixed per shopper in [08:00, 22:00), so the time between two
visits' impressions is exactly the world's whole-day gap):

==============  ============================================================================
event           columns
==============  ============================================================================
``impression``  ``item_id`` the shown item of the chosen group, ``item_group`` the group,
                ``coupon`` the offered fraction, ``propensity`` the exact logging-policy
                probability of the flat (group, coupon) action, ``position`` 0
``click``       5-120 s later, if clicked: ``item_id``, ``item_group``, ``position`` 0
``purchase``    30-900 s after the click, if bought: ``item_id``, ``item_group``, ``price``
                (list price), ``quantity``, ``coupon`` (fraction redeemed, else 0),
                ``unit_cost`` (the item's cost of goods per unit)
==============  ============================================================================

Every row carries ``user_id`` ("u" + zero-padded number) and ``session_id`` (the visit's
number in the shopper's lifetime, from 0). The file's schema metadata holds the world
config (with its world version), seed, window and logging policy. The same arguments write the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from retentionrl.core.atomic import atomic_path
from retentionrl.core.checks import require_positive_ints
from retentionrl.core.policy import Policy
from retentionrl.simulators.policy_registry import make_policy
from retentionrl.simulators.world.config import WORLD_VERSION, WorldConfig
from retentionrl.simulators.world.simulator import GroundTruthWorld

EVENTS = ("impression", "click", "purchase")
DAY_START_S, DAY_END_S = 8 * 3600, 22 * 3600


@dataclass(frozen=True)
class WorldLogSummary:
    """What :func:`write_world_logs` wrote."""

    path: Path
    n_users: int
    n_visits: int
    n_events: int
    n_bytes: int
    truth: pd.DataFrame | None = None
    """with ``with_truth``: per visit ``user_id, session_id, p_click, p_buy_click, p_purchase``"""


def write_world_logs(
    config: WorldConfig,
    n_users: int,
    days: int,
    seed: int,
    out_path: str | Path,
    *,
    logging_policy: str | Policy = "softmax",
    start: str = "2024-01-01",
    progress: bool = False,
    with_truth: bool = False,
) -> WorldLogSummary:
    """Simulate the world under ``logging_policy`` and write its event log as Parquet.

    :param config: the world.
    :param n_users: shoppers, >= 1.
    :param days: length of the log window in days, >= 1.
    :param seed: seeds arrivals, shoppers, actions and times.
    :param out_path: the Parquet file, written atomically (temp file, fsync, replace).
    :param logging_policy: a :class:`Policy` or a name from
        :data:`retentionrl.simulators.policy_registry.POLICY_NAMES`; it must be stochastic enough for
        off-policy evaluation (the default softmax gives every action some probability).
    :param start: calendar date of day 0 (ISO), interpreted as UTC.
    :param progress: show a progress bar over visit steps.
    :param with_truth: also return, in ``summary.truth``, the world's true response
        probabilities at every logged visit (never written to the log itself).
    """
    require_positive_ints(n_users=n_users, days=days)
    policy = make_policy(logging_policy, config) if isinstance(logging_policy, str) else logging_policy
    sim_seeds, time_seed = np.random.SeedSequence(seed).spawn(2)
    visits = _simulate_visits(config, int(n_users), int(days), sim_seeds, policy, progress, with_truth)
    table = _event_table(visits, int(n_users), np.random.default_rng(time_seed), np.datetime64(start, "ms"))
    table = table.replace_schema_metadata(
        {
            "retentionrl.world_config": config.to_json(),
            "retentionrl.world_version": str(WORLD_VERSION),
            "retentionrl.logging_policy": policy.name,
            "retentionrl.seed": str(seed),
            "retentionrl.days": str(days),
            "retentionrl.start": start,
        }
    )
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    truth = _truth_table(visits, int(n_users)) if with_truth else None
    return WorldLogSummary(
        out_path, int(n_users), int(visits["user"].size), table.num_rows, out_path.stat().st_size, truth
    )


def _truth_table(v: dict[str, np.ndarray], n_users: int) -> pd.DataFrame:
    """One row per logged visit: ``user_id``, ``session_id`` and the true probabilities."""
    return pd.DataFrame(
        {
            "user_id": _user_names(n_users)[v["user"]],
            "session_id": v["session"].astype(np.int64),
            "p_click": v["p_click"],
            "p_buy_click": v["p_buy_click"],
            "p_purchase": v["p_click"] * v["p_buy_click"],
        }
    )


def _simulate_visits(
    config: WorldConfig,
    n_users: int,
    days: int,
    seeds: np.random.SeedSequence,
    policy: Policy,
    progress: bool,
    with_truth: bool = False,
) -> dict[str, np.ndarray]:
    """One array per visit field, visits of all shoppers in step order."""
    world_seed, policy_seed, arrival_seed = seeds.spawn(3)
    world = GroundTruthWorld(config)
    obs = world.reset(n_users, seed=int(world_seed.generate_state(1)[0]))
    rng = np.random.default_rng(policy_seed)
    user = np.arange(n_users)
    arrival = np.random.default_rng(arrival_seed).integers(0, days, n_users).astype(np.float64)
    space, price, cost = world.action_space, world.catalog.item_price, world.catalog.item_cost
    chunks: list[dict[str, np.ndarray]] = []
    bar = tqdm(desc="world logs", unit="visit", disable=not progress)
    visit_no = 0
    while user.size:
        action = policy.act(obs, rng)
        propensity = policy.action_probs(obs)[np.arange(user.size), action]
        day = arrival + world.days
        obs, out = world.step(action)
        arm, coupon_index = space.decode(action)
        item = world.last_item.copy()
        truth = dict(zip(("p_click", "p_buy_click"), world.last_probabilities)) if with_truth else {}
        chunks.append(
            {
                "user": user,
                "day": day,
                "session": np.full(user.size, visit_no),
                "arm": arm,
                "coupon": space.coupon_fraction(coupon_index),
                "propensity": propensity,
                "item": item,
                "click": out.click,
                "purchase": out.purchase,
                "redeemed": out.redeemed,
                "price": price[item],
                "unit_cost": cost[item],
                **truth,
                "quantity": world.last_units.copy(),
            }
        )
        bar.update(user.size)
        keep = ~out.churned & (arrival + world.days < days)
        obs = world.keep_rows(keep)
        user, arrival = user[keep], arrival[keep]
        visit_no += 1
    bar.close()
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _user_names(n_users: int) -> np.ndarray:
    """Log ids of shoppers 0..n-1: ``u000000``, ... (zero-padded to at least 6 digits)."""
    width = max(6, len(str(n_users - 1)))
    return np.char.add("u", np.char.zfill(np.arange(n_users).astype(str), width))


def _event_table(v: dict[str, np.ndarray], n_users: int, rng: np.random.Generator, start: np.datetime64) -> pa.Table:
    """The visits as one event table, sorted by user, then time (times of day from ``rng``)."""
    n = v["user"].size
    time_of_day = rng.integers(DAY_START_S, DAY_END_S, n_users)  # each shopper's habit
    t0 = v["day"].astype(np.int64) * 86_400 + time_of_day[v["user"]]
    t_click = t0 + rng.integers(5, 121, n)
    t_buy = t_click + rng.integers(30, 901, n)
    rows = [np.arange(n), np.flatnonzero(v["click"]), np.flatnonzero(v["purchase"])]
    kind = np.concatenate([np.full(r.size, k, dtype=np.int64) for k, r in enumerate(rows)])
    visit = np.concatenate(rows)
    seconds = np.concatenate([t0, t_click[rows[1]], t_buy[rows[2]]])
    order = np.lexsort((kind, seconds, v["user"][visit]))
    kind, visit, seconds = kind[order], visit[order], seconds[order]
    is_imp, is_buy = kind == 0, kind == 2
    item = v["item"][visit]
    names = pa.array(_user_names(n_users))
    return pa.table(
        {
            "user_id": pc.take(names, pa.array(v["user"][visit])),
            "timestamp": pa.array(start.astype(np.int64) + seconds * 1000, pa.int64()).cast(pa.timestamp("ms")),
            "event": pc.take(pa.array(EVENTS), pa.array(kind)),
            "item_id": pa.array(item, pa.int64()),
            "price": pa.array(v["price"][visit], pa.float64(), mask=~is_buy),
            "quantity": pa.array(v["quantity"][visit], pa.float64(), mask=~is_buy),
            "coupon": pa.array(
                np.where(is_imp, v["coupon"][visit], np.where(v["redeemed"][visit], v["coupon"][visit], 0.0)),
                pa.float64(),
                mask=kind == 1,
            ),
            "unit_cost": pa.array(v["unit_cost"][visit], pa.float64(), mask=~is_buy),
            "propensity": pa.array(v["propensity"][visit], pa.float64(), mask=~is_imp),
            "position": pa.array(np.zeros(visit.size, dtype=np.int64), pa.int64(), mask=is_buy),
            "session_id": pa.array(v["session"][visit], pa.int64()),
            "item_group": pa.array(v["arm"][visit], pa.int64()),
        }
    )
