"""Where the decision service keeps its state: shoppers' histories, decisions, seen events,
and the decision-log rows not yet written to Parquet.

:class:`ShopperStore` is the interface (a shop can back it with its own database);
:class:`SQLiteStore` the default, an embedded SQLite file in WAL mode (readers never block the
writer; ``synchronous=NORMAL``: a committed decision survives a crash of the process, and all
but the last moments survive a power cut). Every write of one request is one transaction
(:meth:`ShopperStore.commit`), so a request that fails changes nothing.

Shopper ids arrive raw and are stored only as a keyed hash (:func:`pseudonymise`): keyed
BLAKE2b with the service's secret key, so the store and the decision log can be shared for analysis
without the shop's customer ids, and the same shopper maps to the same key across restarts.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np

from retentionrl.core.errors import InputError

LOG_COLUMNS: tuple[str, ...] = (
    "user_id",
    "timestamp_us",
    "event",
    "item_id",
    "item_group",
    "price",
    "quantity",
    "coupon",
    "unit_cost",
    "propensity",
    "position",
    "session_id",
    "decision_id",
    "policy_version",
)
"""One decision-log row (:mod:`retentionrl.serve.decision_log` writes them in the event schema)."""


@dataclass
class ShopperRecord:
    """A shopper's state: the history up to their open visit, and the open visit itself.

    :param key: the pseudonymised shopper id.
    :param counts: :meth:`HistoryFeatures.state` of the visits before the open one, float64.
    :param n_decisions: decisions served so far (the open visit's ``session_id`` is this - 1).
    :param last_us: time of the shopper's last decision or event (Unix microseconds).
    :param decision_id: the open visit's decision.
    :param visit_us: when the open visit started (its decision's time).
    :param arm, coupon_index: the action served at the open visit.
    :param click, purchase, redeemed, spend: its outcome so far.
    """

    key: str
    counts: np.ndarray
    n_decisions: int
    last_us: int
    decision_id: str
    visit_us: int
    arm: int
    coupon_index: int
    click: bool = False
    purchase: bool = False
    redeemed: bool = False
    spend: float = 0.0


@dataclass(frozen=True)
class DecisionRecord:
    """One served decision: ``session_id`` is the shopper's visit number."""

    decision_id: str
    shopper: str
    session_id: int
    time_us: int
    arm: int
    coupon_index: int
    propensity: float
    policy_version: str


class ShopperStore(ABC):
    """The state of a decision service (module docstring). Methods are called from one thread."""

    @abstractmethod
    def shopper(self, key: str) -> ShopperRecord | None:
        """The shopper's record, or ``None`` for a shopper never served."""

    @abstractmethod
    def decision(self, decision_id: str) -> DecisionRecord | None:
        """The decision, or ``None`` for an unknown id."""

    @abstractmethod
    def seen_events(self, event_ids: Sequence[str]) -> set[str]:
        """Those of ``event_ids`` already recorded."""

    @abstractmethod
    def commit(
        self,
        shoppers: Sequence[ShopperRecord],
        decisions: Sequence[DecisionRecord],
        event_ids: Sequence[str],
        log_rows: Sequence[tuple],
    ) -> None:
        """Write one request's changes, all or nothing: shoppers (insert or replace), new
        decisions, new event ids and new log rows (:data:`LOG_COLUMNS` order)."""

    @abstractmethod
    def unflushed(self, limit: int) -> list[tuple]:
        """Up to ``limit`` log rows not yet written out, oldest first, each as its sequence
        number (increasing) followed by the :data:`LOG_COLUMNS`."""

    @abstractmethod
    def mark_flushed(self, upto: int) -> None:
        """Forget the log rows up to sequence number ``upto``: they are written out."""

    @abstractmethod
    def count(self, what: str) -> int:
        """How many ``shoppers``, ``decisions``, ``events`` or ``log_rows`` (not yet flushed) the store holds."""

    @abstractmethod
    def close(self) -> None:
        """Release the store."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shoppers (
    key TEXT PRIMARY KEY, counts BLOB NOT NULL, n_decisions INTEGER NOT NULL, last_us INTEGER NOT NULL,
    decision_id TEXT NOT NULL, visit_us INTEGER NOT NULL, arm INTEGER NOT NULL, coupon_index INTEGER NOT NULL,
    click INTEGER NOT NULL, purchase INTEGER NOT NULL, redeemed INTEGER NOT NULL, spend REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY, shopper TEXT NOT NULL, session_id INTEGER NOT NULL, time_us INTEGER NOT NULL,
    arm INTEGER NOT NULL, coupon_index INTEGER NOT NULL, propensity REAL NOT NULL, policy_version TEXT NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_rows (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT, timestamp_us INTEGER, event TEXT, item_id, item_group,
    price REAL, quantity REAL, coupon REAL, unit_cost REAL, propensity REAL, position REAL, session_id INTEGER,
    decision_id TEXT, policy_version TEXT);
"""
_COUNT_TABLES = {"shoppers", "decisions", "events", "log_rows"}
_INSERT_SHOPPER = "INSERT OR REPLACE INTO shoppers VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
_INSERT_DECISION = "INSERT INTO decisions VALUES (?,?,?,?,?,?,?,?)"
_INSERT_EVENT = "INSERT INTO events VALUES (?)"
_INSERT_LOG_ROW = f"INSERT INTO log_rows ({','.join(LOG_COLUMNS)}) VALUES ({','.join('?' * len(LOG_COLUMNS))})"


def _shopper_row(s: ShopperRecord) -> tuple:
    counts = np.ascontiguousarray(s.counts, dtype=np.float64).tobytes()
    flags = (int(s.click), int(s.purchase), int(s.redeemed), float(s.spend))
    return (s.key, counts, s.n_decisions, s.last_us, s.decision_id, s.visit_us, s.arm, s.coupon_index, *flags)


class SQLiteStore(ShopperStore):
    """:class:`ShopperStore` in one SQLite file, WAL mode (module docstring).

    :param path: the database file (created with its tables when missing).
    :param contract: what the stored histories mean (the observation contract, as JSON-ready
        values); a store written under another contract is refused, since its histories would
        be read as other features.
    :raises InputError: naming the file: not an SQLite database, or another contract.
    """

    def __init__(self, path: str | Path, contract: dict) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            stored = self._db.execute("SELECT value FROM meta WHERE name = 'contract'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InputError(self.path, f"not a usable SQLite store ({exc})") from None
        wanted = json.dumps(contract, sort_keys=True)
        if stored is None:
            self._db.execute("INSERT INTO meta VALUES ('contract', ?)", (wanted,))
        elif stored[0] != wanted:
            self._db.close()
            raise InputError(
                self.path,
                f"holds histories of another observation contract ({stored[0]}); the policy needs {wanted}: "
                "serve it with a new --store",
            )

    def shopper(self, key: str) -> ShopperRecord | None:
        row = self._db.execute("SELECT * FROM shoppers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        key, counts, *ints, click, purchase, redeemed, spend = row
        n_decisions, last_us, decision_id, visit_us, arm, coupon_index = ints
        return ShopperRecord(
            key,
            np.frombuffer(counts, dtype=np.float64).copy(),
            n_decisions,
            last_us,
            decision_id,
            visit_us,
            arm,
            coupon_index,
            bool(click),
            bool(purchase),
            bool(redeemed),
            spend,
        )

    def decision(self, decision_id: str) -> DecisionRecord | None:
        row = self._db.execute("SELECT * FROM decisions WHERE decision_id = ?", (decision_id,)).fetchone()
        return DecisionRecord(*row) if row is not None else None

    def seen_events(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        marks = ",".join("?" * len(event_ids))
        rows = self._db.execute(f"SELECT event_id FROM events WHERE event_id IN ({marks})", list(event_ids))
        return {r[0] for r in rows}

    def commit(
        self,
        shoppers: Sequence[ShopperRecord],
        decisions: Sequence[DecisionRecord],
        event_ids: Sequence[str],
        log_rows: Sequence[tuple],
    ) -> None:
        writes = [
            (_INSERT_SHOPPER, [_shopper_row(s) for s in shoppers]),
            (_INSERT_DECISION, [astuple(d) for d in decisions]),
            (_INSERT_EVENT, [(e,) for e in event_ids]),
            (_INSERT_LOG_ROW, log_rows),
        ]
        db = self._db
        db.execute("BEGIN")
        try:
            for statement, rows in writes:
                if rows:
                    db.executemany(statement, rows)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def unflushed(self, limit: int) -> list[tuple]:
        query = f"SELECT seq, {','.join(LOG_COLUMNS)} FROM log_rows ORDER BY seq LIMIT ?"
        return self._db.execute(query, (int(limit),)).fetchall()

    def mark_flushed(self, upto: int) -> None:
        self._db.execute("DELETE FROM log_rows WHERE seq <= ?", (int(upto),))

    def count(self, what: str) -> int:
        if what not in _COUNT_TABLES:
            raise ValueError(f"count one of {sorted(_COUNT_TABLES)}, got {what!r}")
        return int(self._db.execute(f"SELECT COUNT(*) FROM {what}").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def pseudonymise(shopper_id: str, key: bytes) -> str:
    """The stored id of a raw shopper id: keyed BLAKE2b (a MAC, RFC 7693) under ``key``,
    128 bits as 32 hex digits."""
    return hashlib.blake2b(shopper_id.encode("utf-8"), key=key, digest_size=16).hexdigest()


def load_or_create_key(path: str | Path) -> bytes:
    """The service's pseudonymisation key, read from ``path`` (32 to 128 hex digits); created there
    (32 random bytes, owner-only permissions) when the file does not exist.

    :raises InputError: naming the file, when it exists but holds no such key.
    """
    path = Path(path)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    text = path.read_text(encoding="utf-8").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if not 16 <= len(key) <= 64:
        raise InputError(path, "expected a pseudonymisation key of 32 to 128 hex digits")
    return key
