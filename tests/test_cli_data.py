"""``retentionrl data describe`` as a user runs it: in a subprocess, reading real files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import error_line, run_cli, shared_file, small_log


def test_describe_prints_summary_and_writes_plot(tmp_path: Path, small_log_path: Path) -> None:
    result = run_cli("data", "describe", str(small_log_path), "--horizon", "2.5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "users        2" in out and "visits       3  (a visit = session)" in out
    assert "1 churned (no return within 2.5 days), 1 censored" in out
    png = tmp_path / "retention_events.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _missing_user(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns="user_id")


def _zero_propensity(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[3, "propensity"] = 0.0
    return df


def _text_timestamp(df: pd.DataFrame) -> pd.DataFrame:
    df["timestamp"] = df["timestamp"].astype(str)
    df.loc[5, "timestamp"] = "last tuesday"
    return df


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_missing_user, "missing required column(s) ['user_id']"),
        (_zero_propensity, "column 'propensity': propensity outside (0, 1] (1 row; first: row 4 (0.0))"),
        (
            _text_timestamp,
            "column 'timestamp': cannot parse as an ISO-8601 time (1 row; first: row 6 ('last tuesday'))",
        ),
    ],
)
def test_malformed_file_fails_in_one_line_and_is_not_touched(
    tmp_path: Path, suffix: str, mutate, expected: str
) -> None:
    path = tmp_path / f"bad{suffix}"
    frame = mutate(small_log())
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    line = error_line(run_cli("data", "describe", str(path), cwd=tmp_path))
    assert expected in line and str(path) in line
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert not list(tmp_path.glob("*.png"))


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    line = error_line(run_cli("data", "describe", str(tmp_path / "nope.csv"), cwd=tmp_path))
    assert line == f"error: {tmp_path / 'nope.csv'}: no such file"


def test_online_retail_counts_customers_and_excluded_rows(tmp_path: Path) -> None:
    path = shared_file("online_retail", "online_retail.parquet")
    result = run_cli("data", "describe", str(path), "--no-plot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(format: online-retail)" in result.stdout
    assert "users        4,372" in result.stdout
    assert "excluded   135,080 rows without CustomerID" in result.stdout


def test_bandit_dataset_summary(tmp_path: Path) -> None:
    path = shared_file("obd", "bts", "all")
    result = run_cli("data", "describe", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "actions                80" in result.stdout and "reward_mean            0.0042" in result.stdout
