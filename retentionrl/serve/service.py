"""The decision service without HTTP: decide for a shopper, record outcomes, flush the log.

A shopper's observation at a decision is exactly what off-policy evaluation and the simulator
fit rebuild from the decision log (:func:`~retentionrl.interactions.replay.history_features_from_visits`):
one decision is one visit; the history holds the visits before it in the shopper's current
lifetime; the visit still open (the last decision, whose outcomes may still arrive) is folded
in when the next decision comes, with the gap between the two decisions' times,

.. math:: g = (t_{k} - t_{k-1}) / \\text{1 day},

and a gap :math:`g > H` starts a new lifetime with an empty history (churn, then a
reactivation: :func:`~retentionrl.interactions.horizon.churned_after_gap`). The gap is computed
from integer nanoseconds as the replay computes it, so the two observations are the same bits.

Requests are handled one at a time (the HTTP layer calls these methods from its event loop),
so a shopper's record is never updated by two requests at once. Each request validates
everything first and then commits its changes in one store transaction: a refused request
(:class:`RequestError`, naming the field at fault) changes nothing.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from retentionrl.interactions.history import HistoryFeatures
from retentionrl.interactions.horizon import churned_after_gap
from retentionrl.serve.decision_log import flush, log_schema
from retentionrl.serve.policy import ServedPolicy
from retentionrl.serve.schemas import Decision, OutcomeEvent
from retentionrl.serve.store import DecisionRecord, ShopperRecord, ShopperStore, pseudonymise

DAY_NS = 86_400 * 10**9
_EPOCH, _MICROSECOND = datetime(1970, 1, 1), timedelta(microseconds=1)


class RequestError(Exception):
    """A request the service refuses: the HTTP status, the field at fault, and why."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message


def to_us(time: datetime) -> int:
    """Unix microseconds of ``time``: converted to UTC when it has a zone, read as UTC when not."""
    if time.tzinfo is not None:
        time = time.astimezone(timezone.utc).replace(tzinfo=None)
    return (time - _EPOCH) // _MICROSECOND


def from_us(us: int) -> datetime:
    """The UTC time (with its zone) of Unix microseconds ``us``."""
    return (_EPOCH + us * _MICROSECOND).replace(tzinfo=timezone.utc)


class DecisionService:
    """Decide, record outcomes and keep the decision log of one served policy.

    :param policy: the served policy (with its exploration floor).
    :param store: where shoppers, decisions and pending log rows live.
    :param id_key: the key of the shopper-id hash (:func:`~retentionrl.serve.store.pseudonymise`).
    :param decision_log: the Parquet file or folder :meth:`flush` writes to (``None``: rows stay
        in the store).
    :param seed: seeds the sampling of actions (``None``: fresh entropy).
    :param record_cogs: purchases carry ``unit_cost`` (required on each, as the event schema
        requires on every purchase row of a log that has the column); without it a
        ``unit_cost`` is refused, never dropped silently.
    """

    def __init__(
        self,
        policy: ServedPolicy,
        store: ShopperStore,
        id_key: bytes,
        *,
        decision_log: str | Path | None = None,
        seed: int | None = None,
        record_cogs: bool = False,
    ) -> None:
        self.policy, self.store, self._key = policy, store, id_key
        self.record_cogs = record_cogs
        self.decision_log = Path(decision_log) if decision_log is not None else None
        contract = policy.contract
        self._history = HistoryFeatures(policy.action_space, contract.horizon_days, contract.spend_scale)
        self._rng = np.random.default_rng(seed)
        self._groups = contract.arm_column == "rec_group"
        self._schema = log_schema(contract.arm_type, self._groups, record_cogs)
        self._levels = list(contract.coupon_levels)
        self.unflushed_rows = store.count("log_rows")
        """Log rows committed to the store and not yet written to the decision log."""
        self.served = 0
        """Decisions this service object has served."""

    def decide(self, shopper_id: str, time: datetime, events: Sequence[OutcomeEvent] = ()) -> Decision:
        """Choose an action for ``shopper_id`` arriving at ``time`` (after recording ``events``,
        outcomes of their previous decision), log it, and return it.

        :raises RequestError: 422 for a time before the shopper's last event (or not after their
            last decision) or an inline event of another shopper; the event errors of :meth:`record`.
        """
        key = pseudonymise(shopper_id, self._key)
        for i, event in enumerate(events):
            if event.shopper_id != shopper_id:
                raise RequestError(422, f"events[{i}].shopper_id", "inline events must be the deciding shopper's")
        records: dict[str, ShopperRecord] = {}
        event_ids, rows = self._outcomes(events, records, prefix="events")
        record = records.get(key) or self.store.shopper(key)
        now = to_us(time)
        if record is not None:
            if now < record.last_us:
                raise RequestError(
                    422,
                    "time",
                    f"{time.isoformat()} is earlier than the shopper's last event ({from_us(record.last_us).isoformat()})",
                )
            if now <= record.visit_us:
                raise RequestError(
                    422,
                    "time",
                    f"{time.isoformat()} is not after the shopper's last decision ({from_us(record.visit_us).isoformat()})",
                )
        obs, counts = self._observe(record, now)
        probs = self.policy.action_probs(obs)[0]
        cdf = np.cumsum(probs)
        action = min(int(np.searchsorted(cdf, self._rng.random() * cdf[-1], side="left")), probs.size - 1)
        space = self.policy.action_space
        arm, coupon_index = divmod(action, space.n_coupons)
        decision_id = uuid.uuid4().hex
        visit = record.n_decisions if record is not None else 0
        propensity = float(probs[action])
        label = self.policy.contract.arms[arm]
        records[key] = ShopperRecord(key, counts, visit + 1, now, decision_id, now, arm, coupon_index)
        coupon = self._levels[coupon_index]
        group = label if self._groups else None
        rows.append(
            (
                key,
                now,
                "impression",
                label,
                group,
                None,
                None,
                coupon,
                None,
                propensity,
                0.0,
                visit,
                decision_id,
                self.policy.version,
            )
        )
        decision = DecisionRecord(decision_id, key, visit, now, arm, coupon_index, propensity, self.policy.version)
        self._commit(records, [decision], event_ids, rows)
        self.served += 1
        return Decision.model_construct(  # every field built here, of its declared type
            decision_id=decision_id,
            visit=visit,
            action=action,
            arm=arm,
            item_group=group,
            item_id=None if self._groups else label,
            coupon_index=coupon_index,
            coupon=coupon,
            propensity=propensity,
            policy_version=self.policy.version,
        )

    def record(self, events: Sequence[OutcomeEvent]) -> int:
        """Record outcome events, all or none; returns how many.

        :raises RequestError: naming ``events[i].<field>``: 409 for an event id already recorded
            (or repeated in the request) or a decision whose visit is closed (the shopper's next
            decision came); 404 for an unknown shopper or decision; 422 for a decision of another
            shopper, a time before the decision, a purchase without a price, a click with one, a
            redemption of no coupon, or an item id of the wrong type.
        """
        records: dict[str, ShopperRecord] = {}
        event_ids, rows = self._outcomes(events, records, prefix="events")
        self._commit(records, [], event_ids, rows)
        return len(event_ids)

    def _commit(
        self,
        records: dict[str, ShopperRecord],
        decisions: list[DecisionRecord],
        event_ids: list[str],
        rows: list[tuple],
    ) -> None:
        self.store.commit(list(records.values()), decisions, event_ids, rows)
        self.unflushed_rows += len(rows)

    def _observe(self, record: ShopperRecord | None, now_us: int) -> tuple[np.ndarray, np.ndarray]:
        """The observation at a visit starting at ``now_us`` and the history counts it includes
        (module docstring)."""
        history = self._history
        if record is None:
            history.reset(1)
        else:
            history.set_state(record.counts[None])
            gap = float((now_us - record.visit_us) * 1000) / float(DAY_NS)
            if churned_after_gap(np.asarray(gap), self.policy.contract.horizon_days):
                history.reset(1)
            else:
                outcome = SimpleNamespace(
                    click=np.array([float(record.click)]),
                    purchase=np.array([float(record.purchase)]),
                    redeemed=np.array([float(record.redeemed)]),
                    spend=np.array([record.spend]),
                )
                # record, not update: the stored action was range-checked when it was served
                history.record(np.array([record.arm]), np.array([record.coupon_index]), outcome, np.array([gap]))
        return history.features(), history.state()[0]

    def _outcomes(
        self, events: Sequence[OutcomeEvent], records: dict[str, ShopperRecord], *, prefix: str
    ) -> tuple[list[str], list[tuple]]:
        """Validate ``events`` and apply them to (copies of) their shoppers' records in
        ``records``; the event ids and log rows to commit."""
        ids = [e.event_id for e in events]
        seen = self.store.seen_events(ids)
        event_ids: list[str] = []
        rows: list[tuple] = []
        for i, event in enumerate(events):
            field = f"{prefix}[{i}]"
            if event.event_id in seen or event.event_id in event_ids:
                raise RequestError(409, f"{field}.event_id", f"event {event.event_id!r} is already recorded")
            key = pseudonymise(event.shopper_id, self._key)
            record = records.get(key) or self.store.shopper(key)
            if record is None:
                raise RequestError(
                    404, f"{field}.shopper_id", f"unknown shopper {event.shopper_id!r}: no decision served to them"
                )
            decision = self.store.decision(event.decision_id)
            if decision is None:
                raise RequestError(404, f"{field}.decision_id", f"unknown decision {event.decision_id!r}")
            if decision.shopper != key:
                raise RequestError(
                    422, f"{field}.decision_id", f"decision {event.decision_id!r} was served to another shopper"
                )
            if record.decision_id != decision.decision_id:
                raise RequestError(
                    409,
                    f"{field}.decision_id",
                    f"decision {event.decision_id!r} is closed: the shopper's next visit has started",
                )
            time = to_us(event.time)
            if time < decision.time_us:
                raise RequestError(
                    422,
                    f"{field}.time",
                    f"{event.time.isoformat()} is before its decision ({from_us(decision.time_us).isoformat()})",
                )
            record = dataclasses.replace(record, last_us=max(record.last_us, time))
            coupon = self._levels[record.coupon_index]
            label = self.policy.contract.arms[record.arm]
            item = self._item(event, field, label)
            row: tuple
            if event.event == "click":
                if event.price is not None or event.redeemed:
                    raise RequestError(422, f"{field}.price", "a click has no price and redeems nothing")
                record.click = True
                row = (key, time, "click", item, label if self._groups else None, None, None, None, None, None, 0.0)
            else:
                if event.price is None:
                    raise RequestError(422, f"{field}.price", "a purchase needs its unit price")
                if self.record_cogs and event.unit_cost is None:
                    raise RequestError(
                        422, f"{field}.unit_cost", "this service records the cost of goods: give unit_cost"
                    )
                if not self.record_cogs and event.unit_cost is not None:
                    raise RequestError(
                        422,
                        f"{field}.unit_cost",
                        "this service does not record the cost of goods (start it with --record-cogs)",
                    )
                if event.redeemed and coupon == 0.0:
                    raise RequestError(422, f"{field}.redeemed", f"decision {event.decision_id!r} offered no coupon")
                record.purchase = True
                record.redeemed = record.redeemed or event.redeemed
                record.spend += event.price * event.quantity
                redeemed = coupon if event.redeemed else 0.0
                group = label if self._groups else None
                row = (
                    key,
                    time,
                    "purchase",
                    item,
                    group,
                    event.price,
                    event.quantity,
                    redeemed,
                    event.unit_cost,
                    None,
                    None,
                )
            records[key] = record
            event_ids.append(event.event_id)
            rows.append((*row, decision.session_id, decision.decision_id, decision.policy_version))
        return event_ids, rows

    def _item(self, event: OutcomeEvent, field: str, label: int | str) -> int | str:
        """The event's ``item_id`` (default: the arm's label), of the log's label type."""
        if event.item_id is None:
            return label
        kind = self.policy.contract.arm_type
        if not isinstance(event.item_id, kind) or isinstance(event.item_id, bool):
            raise RequestError(
                422,
                f"{field}.item_id",
                f"expected {'an integer' if kind is int else 'a string'} item id, got {event.item_id!r}",
            )
        return event.item_id

    def shopper(self, shopper_id: str) -> ShopperRecord:
        """The stored record of ``shopper_id``.

        :raises RequestError: 404 for a shopper never served.
        """
        record = self.store.shopper(pseudonymise(shopper_id, self._key))
        if record is None:
            raise RequestError(404, "shopper_id", f"unknown shopper {shopper_id!r}: no decision served to them")
        return record

    def flush(self) -> int:
        """Write the log rows waiting in the store to the decision log; returns how many."""
        if self.decision_log is None:
            return 0
        written = flush(self.store, self.decision_log, self._schema)
        self.unflushed_rows = self.store.count("log_rows")
        return written
