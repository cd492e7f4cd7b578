"""The decision log: every served decision and its outcomes, as an event log in the project's
schema (:mod:`retentionrl.interactions.schema`), readable unchanged by ``retentionrl data
describe``, ``simulator fit`` and ``ope``.

=============  ==============================================================================
event          columns
=============  ==============================================================================
``impression``  one per decision at its time: the served arm (``item_group`` for a policy over
                item groups, with ``item_id`` the same label; ``item_id`` for a policy over
                items), ``coupon`` the offered fraction, ``propensity`` the served probability
                of the (arm, coupon) action, ``position`` 0
``click``       ``item_id`` (the client's, else the arm), the decision's ``item_group``
``purchase``    ``price``, ``quantity``, ``coupon`` the offered fraction when redeemed, else 0;
                ``unit_cost`` when the service records the cost of goods (``--record-cogs``)
=============  ==============================================================================

Every row has ``user_id`` (the pseudonymised shopper), ``timestamp`` (the client's time, UTC,
microseconds), ``session_id`` (the shopper's visit number: one decision is one visit),
``decision_id`` and ``policy_version``.

Rows wait in the store (:meth:`ShopperStore.unflushed`) until :func:`flush` writes them out:

* a path ending in ``.parquet`` / ``.pq`` is one file, rewritten atomically with the new rows
  appended (simple; each flush costs the file's size);
* any other path is a folder of parts, ``part-<first>-<last>.parquet`` by the store's row
  sequence numbers, each written atomically; a flush repeated after a crash rewrites the same
  part, so no row is written twice.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from retentionrl.core.atomic import atomic_path
from retentionrl.interactions.tables import PARQUET_SUFFIXES
from retentionrl.serve.store import LOG_COLUMNS, ShopperStore

FLUSH_BATCH = 100_000
"""Rows read from the store per part."""


def log_schema(arm_type: type, with_group: bool, with_cogs: bool) -> pa.Schema:
    """The Parquet schema of the decision log; ``item_id`` and ``item_group`` hold arm labels
    (``int64`` or ``string``); ``item_group`` only for a policy over item groups, ``unit_cost``
    only for a service that records the cost of goods (then on every purchase, as the schema
    requires)."""
    label = pa.int64() if arm_type is int else pa.string()
    fields = [
        pa.field("user_id", pa.string()),
        pa.field("timestamp", pa.timestamp("us")),
        pa.field("event", pa.string()),
        pa.field("item_id", label),
        pa.field("item_group", label),
        pa.field("price", pa.float64()),
        pa.field("quantity", pa.float64()),
        pa.field("coupon", pa.float64()),
        pa.field("unit_cost", pa.float64()),
        pa.field("propensity", pa.float64()),
        pa.field("position", pa.float64()),
        pa.field("session_id", pa.int64()),
        pa.field("decision_id", pa.string()),
        pa.field("policy_version", pa.string()),
    ]
    dropped = {name for name, kept in (("item_group", with_group), ("unit_cost", with_cogs)) if not kept}
    return pa.schema([f for f in fields if f.name not in dropped])


def is_single_file(path: Path) -> bool:
    """The log at ``path`` is one Parquet file (else a folder of parts)."""
    return path.name.lower().endswith(PARQUET_SUFFIXES)


def flush(store: ShopperStore, path: Path, schema: pa.Schema) -> int:
    """Write every row waiting in ``store`` to the log at ``path``; returns how many."""
    written = 0
    while True:
        rows = store.unflushed(FLUSH_BATCH)
        if not rows:
            return written
        first, upto = rows[0][0], rows[-1][0]
        table = _table([row[1:] for row in rows], schema)
        if is_single_file(path):
            if path.exists():
                table = pa.concat_tables([pq.read_table(path).cast(schema), table])
            target = path
        else:
            path.mkdir(parents=True, exist_ok=True)
            target = path / f"part-{first:012d}-{upto:012d}.parquet"
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        store.mark_flushed(upto)
        written += len(rows)


def _table(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    """Store rows (:data:`LOG_COLUMNS` order) as a table of ``schema``."""
    columns = dict(zip(LOG_COLUMNS, zip(*rows)))
    columns["timestamp"] = columns.pop("timestamp_us")
    return pa.table({f.name: pa.array(columns[f.name], f.type) for f in schema}, schema=schema)
