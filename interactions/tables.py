"""Reading a CSV or Parquet file into a pandas DataFrame, columnar, with clear errors.

Every reader in retentionrl goes through :func:`read_table`, so that a missing,
truncated or corrupt file always raises one :class:`~retentionrl.core.errors.LogError` naming
the file, whatever library failed underneath. The file is opened read-only.

A *folder of Parquet parts* (what a service appends to: ``part-*.parquet`` files, as the
decision log of ``retentionrl serve`` writes them) reads as one table: its ``*.parquet``
files in name order, concatenated; hidden files (an atomic write's temporary file) are not
parts. Parts must share their columns' types; a part that cannot be read is named.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from retentionrl.core.errors import LogError

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise LogError(path, f"unknown file type; expected one of {PARQUET_SUFFIXES + CSV_SUFFIXES}")


def check_file(path: str | Path) -> Path:
    """The path as a :class:`Path`, after checking that it is an existing regular file or a
    folder of Parquet parts (at least one)."""
    path = Path(path)
    if not path.exists():
        raise LogError(path, "no such file")
    if path.is_dir() and not parquet_parts(path):
        raise LogError(path, "is a directory with no Parquet parts (*.parquet), expected a CSV or Parquet file")
    return path


def parquet_parts(folder: Path) -> list[Path]:
    """The Parquet parts of a folder, in name order (hidden files skipped)."""
    return sorted(p for p in folder.glob("*.parquet") if p.is_file() and not p.name.startswith("."))


def column_names(path: str | Path) -> list[str]:
    """The column names of a CSV or Parquet file (or of a folder's first Parquet part), read
    from its header or footer only."""
    path = check_file(path)
    if path.is_dir():
        path = parquet_parts(path)[0]
    kind = _kind(path)
    try:
        if kind == "parquet":
            return list(pq.read_schema(path).names)
        return list(pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=_delimiter(path))).schema.names)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError, ValueError) as exc:
        raise LogError(path, f"cannot read {kind} file (truncated or corrupt?): {_first_line(exc)}") from exc


def _delimiter(path: Path) -> str:
    return "\t" if path.name.lower().endswith(".tsv") else ","


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def read_arrow(path: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Read a CSV (``,`` or, for ``.tsv``, tab separated) or Parquet file as an Arrow table.

    In CSV files an empty field is null, for text columns too.

    :param columns: read only these columns (all when ``None``); a missing one raises.
    """
    path = check_file(path)
    if path.is_dir():
        return _read_parts(path, columns)
    kind = _kind(path)
    if columns is not None:
        _require(path, columns, set(column_names(path)))
    try:
        if kind == "parquet":
            return pq.read_table(path, columns=list(columns) if columns is not None else None)
        return pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter=_delimiter(path)),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(columns) if columns is not None else None, strings_can_be_null=True
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError, ValueError) as exc:
        raise LogError(path, f"cannot read {kind} file (truncated or corrupt?): {_first_line(exc)}") from exc


def _read_parts(folder: Path, columns: Sequence[str] | None) -> pa.Table:
    """The Parquet parts of ``folder`` as one table (module docstring)."""
    tables = [read_arrow(part, columns) for part in parquet_parts(folder)]
    try:
        return pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise LogError(folder, f"its Parquet parts do not share one schema: {_first_line(exc)}") from exc


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`read_arrow` converted to pandas (Arrow-backed strings, numpy numbers)."""
    return read_arrow(path, columns).to_pandas()


def _require(path: Path, wanted: Sequence[str], present: set[str]) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise LogError(path, f"missing column(s) {missing}; the file has {sorted(present)}")
