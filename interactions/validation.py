"""Validation of an event log against :mod:`retentionrl.interactions.schema`.

:func:`validate_events` checks a raw DataFrame and returns a clean copy, sorted by
``(user_id, timestamp)``, or raises a :class:`~retentionrl.core.errors.LogError` naming the
column and the first offending rows (numbered from 1, header not counted, in the order
of the input). The checks, in order:

1. every required column is present;
2. no null in a required column;
3. ``event`` is one of :data:`~retentionrl.interactions.schema.EVENT_TYPES` (case-insensitive);
4. ``timestamp`` parses (ISO-8601 text, datetimes, or numbers as Unix seconds);
5. numeric optional columns hold finite numbers: ``price >= 0``, ``quantity > 0``,
   ``unit_cost >= 0``, ``0 <= coupon < 1``, ``0 < propensity <= 1`` (required on
   ``impression`` rows when the column exists), ``position >= 0``; ``price`` and
   ``unit_cost`` are required on ``purchase`` rows when the column exists.

Exact duplicate rows are removed and counted; rows out of time order within a shopper are
counted and sorted. Nothing is dropped without being counted in :class:`LoadReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from retentionrl.core.errors import LogError
from retentionrl.interactions.schema import EVENT_TYPES, NUMERIC_COLUMNS, REQUIRED_COLUMNS


@dataclass
class LoadReport:
    """What loading did to a log: counts of everything removed or reordered.

    :param source: the file the log came from.
    :param format: the adapter used (``events``, ``online-retail``, ...).
    :param n_rows_read: data rows in the file.
    :param dropped: rows an adapter removed before validation, by reason.
    :param n_duplicates: exact duplicate rows removed (the first copy is kept).
    :param n_out_of_order: rows whose timestamp is earlier than the shopper's previous row.
    :param n_events: events kept.
    :param world_version: the ``retentionrl.world_version`` entry of a Parquet log's schema
        metadata (logs written by the ground-truth world); ``None`` for any other log.
    """

    source: str
    format: str
    n_rows_read: int
    dropped: dict[str, int] = field(default_factory=dict)
    n_duplicates: int = 0
    n_out_of_order: int = 0
    n_events: int = 0
    world_version: str | None = None


def _fail(source: str, column: str, message: str, bad: np.ndarray, values: pd.Series) -> None:
    if bad.any():
        raise LogError.for_rows(source, message, column, bad, values)


def parse_timestamps(values: pd.Series, source: str) -> pd.Series:
    """Timestamps as tz-naive UTC ``datetime64``; unparseable entries raise a LogError.

    Callers convert to nanoseconds: every stage computes time gaps on ``datetime64[ns]``.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.astype("float64")
        _fail(source, "timestamp", "not a finite Unix time", ~np.isfinite(numbers.to_numpy()), values)
        return pd.to_datetime(numbers, unit="s")
    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601", utc=True)
    _fail(source, "timestamp", "cannot parse as an ISO-8601 time", parsed.isna().to_numpy(), values)
    return parsed.dt.tz_localize(None)


def _numeric(df: pd.DataFrame, column: str, source: str) -> np.ndarray:
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce")
    _fail(source, column, "not a number", (values.isna() & raw.notna()).to_numpy(), raw)
    array = values.to_numpy(dtype="float64", na_value=np.nan)
    _fail(source, column, "infinite value", np.isinf(array), raw)
    return array


def _check_numeric(df: pd.DataFrame, source: str) -> None:
    events = df["event"].to_numpy()
    rules = {
        "price": (lambda x: x < 0, "negative price", events == "purchase", "missing on a purchase row"),
        "quantity": (lambda x: x <= 0, "quantity must be > 0", None, ""),
        "unit_cost": (lambda x: x < 0, "negative unit cost", events == "purchase", "missing on a purchase row"),
        "coupon": (lambda x: (x < 0) | (x >= 1), "coupon must be a discount fraction in [0, 1)", None, ""),
        "propensity": (
            lambda x: (x <= 0) | (x > 1),
            "propensity outside (0, 1]",
            events == "impression",
            "missing on an impression row",
        ),
        "position": (lambda x: (x < 0) | (x != np.floor(x)), "position must be an integer >= 0", None, ""),
    }
    for column in NUMERIC_COLUMNS:
        if column not in df.columns:
            continue
        array = _numeric(df, column, source)
        is_bad, message, required_on, missing_message = rules[column]
        with np.errstate(invalid="ignore"):
            _fail(
                source,
                column,
                message,
                np.nan_to_num(is_bad(array), nan=False).astype(bool) & ~np.isnan(array),
                df[column],
            )
        if required_on is not None:
            _fail(source, column, missing_message, required_on & np.isnan(array), df[column])
        df[column] = array


def _event_categories(raw: pd.Series, source: str) -> pd.Categorical:
    """``event`` as a categorical over EVENT_TYPES; text is matched case- and space-blind."""
    codes, uniques = pd.factorize(raw)
    names = np.array([str(u).strip().lower() for u in uniques], dtype=object)
    known = np.isin(names, EVENT_TYPES)
    unknown = ~known[codes]
    if unknown.any():
        kinds = sorted(names[~known].tolist())[:5]
        _fail(source, "event", f"unknown event type(s) {kinds}; allowed: {list(EVENT_TYPES)}", unknown, raw)
    category = np.array([EVENT_TYPES.index(n) for n in names], dtype=np.int8)
    return pd.Categorical.from_codes(category[codes], categories=EVENT_TYPES)


def _duplicated_rows(df: pd.DataFrame) -> np.ndarray:
    """Rows equal in every column to an earlier row.

    Rows are hashed first (one vectorized pass); only rows whose hash repeats are compared
    exactly, so a hash collision can never drop a row.
    """
    hashes = pd.util.hash_pandas_object(df, index=False).to_numpy()
    candidates = np.flatnonzero(pd.Series(hashes).duplicated(keep=False).to_numpy())
    duplicated = np.zeros(len(df), dtype=bool)
    if candidates.size:
        duplicated[candidates] = df.iloc[candidates].duplicated().to_numpy()
    return duplicated


def validate_events(raw: pd.DataFrame, source: str, report: LoadReport) -> pd.DataFrame:
    """Check ``raw`` against the schema and return a clean copy sorted by shopper and time.

    ``raw`` is not modified. ``report`` is updated with the duplicate, order and event counts.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise LogError(source, f"missing required column(s) {missing}; the file has {list(raw.columns)}")
    df = raw.reset_index(drop=True).copy()
    for column in REQUIRED_COLUMNS:
        _fail(source, column, "null in a required column", df[column].isna().to_numpy(), df[column])

    df["event"] = _event_categories(df["event"], source)
    df["timestamp"] = parse_timestamps(df["timestamp"], source).astype("datetime64[ns]")
    _check_numeric(df, source)

    duplicated = _duplicated_rows(df)
    report.n_duplicates = int(duplicated.sum())
    if report.n_duplicates:
        df = df.loc[~duplicated].reset_index(drop=True)

    user_codes, _ = pd.factorize(df["user_id"], sort=False)
    times = df["timestamp"].to_numpy().view("int64")
    by_user = np.argsort(user_codes, kind="stable")  # file order kept within each shopper
    users, user_times = user_codes[by_user], times[by_user]
    running_max = pd.Series(user_times).groupby(users).cummax().to_numpy()
    out_of_order = (users[1:] == users[:-1]) & (user_times[1:] < running_max[:-1])
    report.n_out_of_order = int(out_of_order.sum())
    order = np.lexsort((times, user_codes))
    if not np.all(order[1:] > order[:-1]):
        df = df.iloc[order].reset_index(drop=True)
    report.n_events = len(df)
    return df
