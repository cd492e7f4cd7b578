"""Helpers the dataset adapters share: null checks, one-hot encoding, finding a table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from retentionrl.core.errors import LogError
from retentionrl.interactions.schema import EVENT_TYPES
from retentionrl.interactions.tables import CSV_SUFFIXES, PARQUET_SUFFIXES


def check_not_null(frame: pd.DataFrame | pa.Table, columns: Sequence[str], source: str | Path) -> None:
    """Raise :class:`LogError` naming the first column with nulls and its first null rows.

    Row numbers are positions in ``frame`` (0-based; the error shows them 1-based).
    """
    for column in columns:
        if isinstance(frame, pa.Table):
            chunked = frame.column(column)
            if chunked.null_count == 0:
                continue
            null = chunked.is_null().to_numpy(zero_copy_only=False)
        else:
            null = frame[column].isna().to_numpy()
        if null.any():
            raise LogError.for_rows(source, "missing value", column, null)


def one_hot(frame: pd.DataFrame, columns: Sequence[str], *, drop_first: bool) -> tuple[np.ndarray, list[str]]:
    """One-hot encode ``columns`` (levels in sorted order) as float64, names ``"column=level"``.

    :param drop_first: drop each column's first level, as obp does for OBD contexts.
    """
    if not columns:
        return np.empty((len(frame), 0)), []
    dummies = pd.get_dummies(
        frame[list(columns)].astype(str),
        columns=list(columns),
        prefix_sep="=",
        drop_first=drop_first,
        dtype=np.float64,
    )
    return dummies.to_numpy(), [str(c) for c in dummies.columns]


def find_table(folder: Path, name: str) -> Path | None:
    """The file ``name.<parquet|pq|csv|csv.gz|tsv>`` in ``folder`` (first found), or ``None``."""
    for suffix in PARQUET_SUFFIXES + CSV_SUFFIXES:
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def event_column(values: np.ndarray | str, length: int) -> pd.Categorical:
    """An ``event`` column as a categorical over all of :data:`~retentionrl.interactions.schema.EVENT_TYPES`
    (one byte a row; logs from different adapters concatenate without losing the dtype)."""
    return pd.Categorical(np.broadcast_to(np.asarray(values), (length,)), categories=EVENT_TYPES)


def parse_timestamps(column: pd.Series, name: str, source: str | Path) -> pd.Series:
    """``column`` as datetimes: kept when it already is, text parsed otherwise (the format is
    inferred from the first value); unparseable values raise :class:`LogError`."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return column
    parsed = pd.to_datetime(column, errors="coerce")
    bad = (parsed.isna() & column.notna()).to_numpy()
    if bad.any():
        raise LogError.for_rows(source, "not a date", name, bad, column)
    return parsed


def numbers(column: pd.Series, name: str, source: str | Path) -> np.ndarray:
    """``column`` as float64; a null, text or infinite value raises :class:`LogError`."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        raise LogError.for_rows(source, "not a finite number", name, bad, column)
    return values
