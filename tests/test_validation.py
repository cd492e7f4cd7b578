"""Loading and validating event logs: clean logs load, bad ones fail by name and row."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retentionrl.core.errors import LogError
from retentionrl.interactions.io import read_events
from tests.conftest import small_log


def _write(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


def test_clean_log_loads_sorted_with_schema_types(small_log_path: Path) -> None:
    log = read_events(small_log_path, "events")
    ev = log.events
    assert len(ev) == 8 and log.n_users == 2
    assert ev["timestamp"].dtype == "datetime64[ns]"
    assert list(ev["event"].cat.categories) == ["impression", "view", "click", "cart", "purchase", "cancel"]
    assert (ev.groupby("user_id")["timestamp"].diff().dropna() >= pd.Timedelta(0)).all()
    assert log.report.n_duplicates == 0 and log.report.n_out_of_order == 0


def test_csv_and_parquet_give_the_same_events(tmp_path: Path) -> None:
    a = read_events(_write(small_log(), tmp_path / "e.csv"), "events").events
    b = read_events(_write(small_log(), tmp_path / "e.parquet"), "events").events
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_duplicates_and_unsorted_rows_are_counted_not_lost(tmp_path: Path) -> None:
    df = small_log()
    shuffled = pd.concat([df.iloc[[4, 0, 1]], df.iloc[[1]], df.iloc[[2, 3, 5, 6, 7]]])  # row 1 twice
    log = read_events(_write(shuffled, tmp_path / "e.parquet"), "events")
    assert log.report.n_duplicates == 1
    # user a's rows in file order: 4 (2h5min), 0, 1, 1(dup), 2, 3 -> 0, 1, 2 and 3 come after a later time
    assert log.report.n_out_of_order == 4
    assert len(log.events) == len(df)
    pd.testing.assert_frame_equal(
        log.events.reset_index(drop=True), read_events(_write(df, tmp_path / "f.parquet"), "events").events
    )


def test_event_names_are_matched_case_and_space_blind(tmp_path: Path) -> None:
    df = small_log()
    df.loc[0, "event"] = " Impression "
    assert read_events(_write(df, tmp_path / "e.parquet"), "events").events["event"].iloc[0] == "impression"


def _mutations() -> list[tuple[str, object, str]]:
    def drop_user(df: pd.DataFrame) -> pd.DataFrame:
        return df.drop(columns="user_id")

    def null_item(df: pd.DataFrame) -> pd.DataFrame:
        df["item_id"] = df["item_id"].astype(object)
        df.loc[2, "item_id"] = None
        return df

    def setter(column: str, row: int, value: object):
        def mutate(df: pd.DataFrame) -> pd.DataFrame:
            if isinstance(value, str):  # a text column, as a file with a typo would have
                df[column] = df[column].map(lambda v: None if pd.isna(v) else str(v)).astype(object)
            df.loc[row, column] = value
            return df

        return mutate

    return [
        ("missing user_id", drop_user, r"missing required column\(s\) \['user_id'\]"),
        ("null item", null_item, r"column 'item_id': null in a required column \(1 row; first: row 3"),
        (
            "unknown event",
            setter("event", 4, "wishlist"),
            r"column 'event': unknown event type\(s\) \['wishlist'\].*row 5",
        ),
        (
            "text timestamp",
            setter("timestamp", 3, "yesterday"),
            r"column 'timestamp': cannot parse.*row 4 \('yesterday'\)",
        ),
        ("negative price", setter("price", 2, -1.0), r"column 'price': negative price.*row 3 \(-1.0\)"),
        (
            "propensity 0",
            setter("propensity", 0, 0.0),
            r"column 'propensity': propensity outside \(0, 1\].*row 1 \(0.0\)",
        ),
        ("propensity 1.5", setter("propensity", 3, 1.5), r"column 'propensity': propensity outside.*row 4 \(1.5\)"),
        (
            "nan propensity",
            setter("propensity", 5, np.nan),
            r"column 'propensity': missing on an impression row.*row 6",
        ),
        ("inf price", setter("price", 6, np.inf), r"column 'price': infinite value.*row 7"),
        ("coupon 1", setter("coupon", 2, 1.0), r"column 'coupon': coupon must be a discount fraction.*row 3"),
        ("quantity 0", setter("quantity", 6, 0.0), r"column 'quantity': quantity must be > 0.*row 7"),
        ("text price", setter("price", 2, "ten"), r"column 'price': not a number.*row 3 \('ten'\)"),
        ("negative unit cost", setter("unit_cost", 6, -2.0), r"column 'unit_cost': negative unit cost.*row 7 \(-2.0\)"),
        ("nan unit cost", setter("unit_cost", 2, np.nan), r"column 'unit_cost': missing on a purchase row.*row 3"),
        ("inf unit cost", setter("unit_cost", 2, np.inf), r"column 'unit_cost': infinite value.*row 3"),
        ("text unit cost", setter("unit_cost", 6, "cheap"), r"column 'unit_cost': not a number.*row 7 \('cheap'\)"),
    ]


def _costed_log() -> pd.DataFrame:
    """The small log with a unit cost on its purchase rows (rows 3 and 7)."""
    df = small_log()
    df["unit_cost"] = [None, None, 12.0, None, None, None, 4.0, None]
    return df


def test_unit_cost_is_read_as_a_number(tmp_path: Path) -> None:
    log = read_events(_write(_costed_log(), tmp_path / "e.csv"), "events")
    np.testing.assert_array_equal(log.events["unit_cost"].to_numpy()[[2, 6]], [12.0, 4.0])
    assert log.records_cogs and not read_events(_write(small_log(), tmp_path / "f.csv"), "events").records_cogs


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize(("label", "mutate", "message"), _mutations(), ids=[m[0] for m in _mutations()])
def test_invalid_log_names_file_column_and_row(tmp_path: Path, suffix: str, label: str, mutate, message: str) -> None:
    path = _write(mutate(_costed_log()), tmp_path / f"bad{suffix}")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(LogError, match=message) as info:
        read_events(path, "events")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_many_bad_rows_are_counted_and_the_first_shown(tmp_path: Path) -> None:
    df = small_log()
    df.loc[[0, 3, 5], "propensity"] = 2.0
    with pytest.raises(LogError, match=r"\(3 rows; first: row 1 \(2.0\), row 4 \(2.0\), row 6 \(2.0\)\)"):
        read_events(_write(df, tmp_path / "e.parquet"), "events")


def test_timezones_are_converted_to_utc(tmp_path: Path) -> None:
    df = small_log()
    df["timestamp"] = df["timestamp"].dt.tz_localize("Europe/Paris")
    log = read_events(_write(df, tmp_path / "e.parquet"), "events")
    assert log.events["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 09:00:00")


def test_unix_seconds_are_read_as_times(tmp_path: Path) -> None:
    df = small_log()
    df["timestamp"] = (df["timestamp"] - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s")
    log = read_events(_write(df, tmp_path / "e.csv"), "events")
    assert log.events["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 10:00:00")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("cut.parquet", None, r"cannot read parquet file \(truncated or corrupt\?\)"),
        ("log.json", b"{}", r"unknown file type"),
        ("missing.parquet", "absent", r"no such file"),
    ],
)
def test_unreadable_files_raise_one_error_naming_the_file(
    tmp_path: Path, small_log_path: Path, name: str, content: bytes | str | None, message: str
) -> None:
    path = tmp_path / name
    if content is None:
        path.write_bytes(small_log_path.read_bytes()[:-40])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(LogError, match=message) as info:
        read_events(path, "events")
    assert str(path) in str(info.value)


def test_a_folder_of_parquet_parts_reads_as_one_log(tmp_path: Path) -> None:
    df = small_log()
    folder = tmp_path / "parts"
    folder.mkdir()
    _write(df.iloc[:3], folder / "part-2.parquet")
    _write(df.iloc[3:], folder / "part-1.parquet")
    (folder / ".part-3.parquet.tmp").write_bytes(b"an atomic write in progress")  # hidden: not a part
    whole = read_events(_write(df, tmp_path / "e.parquet"), "events").events
    pd.testing.assert_frame_equal(read_events(folder).events, whole, check_dtype=False)

    _write(df.assign(price=df["price"].astype(str)).iloc[:2], folder / "part-0.parquet")
    with pytest.raises(LogError, match="do not share one schema") as info:
        read_events(folder)
    assert str(folder) in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LogError, match="no Parquet parts"):
        read_events(empty, "events")
