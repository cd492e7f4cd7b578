"""Events -> visits. A visit is one RL step: one shopper at the shop, once.

How events are grouped into visits (``mode``):

=============  ==================================================================
``session``    a new visit starts when the gap since the shopper's previous event
               exceeds ``session_gap`` (default 30 minutes)
``session_id`` each ``(user_id, session_id)`` is one visit (an invoice, a basket)
``day``        each ``(user_id, calendar day)`` is one visit (purchase-only logs)
``auto``       ``session_id`` when the log has that column, ``day`` when the log has
               only purchases, ``session`` otherwise
=============  ==================================================================

``cancel`` events never start or extend a visit. The visit table has one row per visit,
sorted by ``(user_id, start)``:

================  ================================================================
user_id           the shopper
start, end        times of the visit's first and last event
n_events          events in the visit
clicked           any ``click`` event
purchased         any ``purchase`` event
n_purchases       number of ``purchase`` events
spend             sum of ``price * quantity`` over purchases (list price; 0 without
                  a ``price`` column)
coupon_cost       sum of ``price * quantity * coupon`` over purchases
cogs              cost of goods sold: sum of ``unit_cost * quantity`` over purchases;
                  0 without a ``unit_cost`` column (the log records no cost of goods:
                  :attr:`retentionrl.interactions.io.EventLog.records_cogs` is False, and the
                  visit's profit ``spend - coupon_cost - cogs`` is its net revenue)
redeemed          any purchase with ``coupon > 0``
rec_item          item of the visit's first ``impression`` (the logged action), or null
rec_coupon        coupon offered on that impression (0 when not recorded)
propensity        logged probability of that impression's action, or NaN
rec_group         ``item_group`` of that impression, when the log has the column
================  ================================================================
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from retentionrl.interactions.io import EventLog
from retentionrl.interactions.schema import VISIT_EVENTS

VisitMode = Literal["auto", "session", "session_id", "day"]
ResolvedVisitMode = Literal["session", "session_id", "day"]
"""A visit mode other than ``auto`` (what :func:`resolve_mode` returns)."""


def resolve_mode(log: EventLog, mode: VisitMode) -> ResolvedVisitMode:
    """The concrete grouping ``auto`` stands for on this log (see the module docstring)."""
    if mode != "auto":
        if mode == "session_id" and not log.has_column("session_id"):
            raise ValueError(f"{log.source}: visit mode 'session_id' needs a 'session_id' column")
        return mode
    if log.has_column("session_id"):
        return "session_id"
    kinds = set(log.events["event"].unique().tolist()) - {"cancel"}
    return "day" if kinds <= {"purchase"} else "session"


def _visit_starts(
    events: pd.DataFrame, users: np.ndarray, mode: ResolvedVisitMode, session_gap: pd.Timedelta
) -> np.ndarray:
    """Boolean array: the event (sorted by shopper and time) opens a new visit."""
    new_user = np.r_[True, users[1:] != users[:-1]]
    if mode == "session":
        times = events["timestamp"].to_numpy().view("int64")
        return new_user | np.r_[True, np.diff(times) > session_gap.value]
    if mode == "day":
        key = events["timestamp"].dt.floor("D").to_numpy().view("int64")
    else:
        key, _ = pd.factorize(events["session_id"])
    return new_user | np.r_[True, key[1:] != key[:-1]]


def build_visits(log: EventLog, *, mode: VisitMode = "auto", session_gap: pd.Timedelta | str = "30min") -> pd.DataFrame:
    """Group the log's events into visits (see the module docstring for the columns).

    For ``session_id`` mode, events of one session are first brought together (ordered by
    the session's first event), so that interleaved sessions do not split.
    """
    session_gap = pd.Timedelta(session_gap)
    if session_gap <= pd.Timedelta(0):
        raise ValueError(f"session_gap must be positive, got {session_gap}")
    mode = resolve_mode(log, mode)
    ev = log.events.loc[log.events["event"].isin(VISIT_EVENTS).to_numpy()]
    users, _ = pd.factorize(ev["user_id"], sort=False)
    if mode == "session_id":
        sessions, _ = pd.factorize(ev["session_id"])
        first_time = ev.groupby([users, sessions], sort=False)["timestamp"].transform("min").to_numpy().view("int64")
        order = np.lexsort((ev["timestamp"].to_numpy().view("int64"), sessions, first_time, users))
        ev, users = ev.iloc[order], users[order]
    visit = np.cumsum(_visit_starts(ev, users, mode, session_gap)) - 1
    n_visits = int(visit[-1]) + 1 if len(visit) else 0
    starts = np.flatnonzero(np.r_[True, visit[1:] != visit[:-1]]) if len(visit) else np.array([], dtype=int)

    event = ev["event"].to_numpy()
    is_purchase = event == "purchase"
    price = ev["price"].to_numpy(dtype="float64", na_value=0.0) if "price" in ev else np.zeros(len(ev))
    quantity = ev["quantity"].to_numpy(dtype="float64", na_value=1.0) if "quantity" in ev else np.ones(len(ev))
    coupon = ev["coupon"].to_numpy(dtype="float64", na_value=0.0) if "coupon" in ev else np.zeros(len(ev))
    unit_cost = ev["unit_cost"].to_numpy(dtype="float64", na_value=0.0) if "unit_cost" in ev else np.zeros(len(ev))
    line_value = np.where(is_purchase, price * quantity, 0.0)

    def total(weights: np.ndarray) -> np.ndarray:
        return np.bincount(visit, weights=weights, minlength=n_visits)

    times = ev["timestamp"].to_numpy()
    visits = pd.DataFrame(
        {
            "user_id": ev["user_id"].to_numpy()[starts],
            "start": times[starts],
            "end": np.maximum.reduceat(times.view("int64"), starts).view(times.dtype) if n_visits else times[:0],
            "n_events": np.bincount(visit, minlength=n_visits),
            "clicked": total(event == "click") > 0,
            "purchased": total(is_purchase) > 0,
            "n_purchases": total(is_purchase).astype("int64"),
            "spend": total(line_value),
            "coupon_cost": total(line_value * coupon),
            "cogs": total(np.where(is_purchase, unit_cost * quantity, 0.0)),
            "redeemed": total(is_purchase & (coupon > 0)) > 0,
        }
    )
    _attach_impressions(visits, ev, visit, event == "impression")
    return visits


def _attach_impressions(visits: pd.DataFrame, ev: pd.DataFrame, visit: np.ndarray, is_impression: np.ndarray) -> None:
    """Add the logged action (the visit's first impression) to each visit, in place."""
    idx = np.flatnonzero(is_impression)
    first = idx[np.r_[True, visit[idx][1:] != visit[idx][:-1]]] if idx.size else idx
    owner = visit[first]
    n = len(visits)

    def per_visit(column: str) -> np.ndarray:
        values = ev[column]
        if pd.api.types.is_integer_dtype(values.dtype):
            values = values.astype("Int64")  # keeps integer ids integer where a visit has none
        return values.iloc[first].set_axis(owner).reindex(range(n)).to_numpy()

    visits["rec_item"] = per_visit("item_id")
    for column, target, fill in (("coupon", "rec_coupon", 0.0), ("propensity", "propensity", np.nan)):
        values = np.full(n, fill)
        if column in ev:
            values[owner] = np.nan_to_num(ev[column].to_numpy(dtype="float64", na_value=np.nan)[first], nan=fill)
        visits[target] = values
    if "item_group" in ev:
        visits["rec_group"] = per_visit("item_group")
