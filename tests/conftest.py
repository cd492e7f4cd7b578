"""Shared fixtures: small event logs the tests write themselves, and the CLI run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test when the shared folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/data/{'/'.join(parts)} not present: shared datasets are only on the project's machines")
    return path


def small_log() -> pd.DataFrame:
    """Two shoppers, hand-made: the visit and trajectory tests compute on it by hand."""
    t = pd.Timestamp("2024-01-01 10:00:00")
    rows = [
        # user a: visit 1 (impression, click, purchase with coupon), visit 2 two hours later
        ("a", t, "impression", "i1", None, None, 0.10, 0.25),
        ("a", t + pd.Timedelta("1min"), "click", "i1", None, None, None, None),
        ("a", t + pd.Timedelta("5min"), "purchase", "i1", 20.0, 2.0, 0.10, None),
        ("a", t + pd.Timedelta("2h"), "impression", "i2", None, None, 0.0, 0.5),
        ("a", t + pd.Timedelta("2h5min"), "view", "i3", None, None, None, None),
        # user b: one visit with a purchase at full price, then a cancellation
        ("b", t + pd.Timedelta("1D"), "impression", "i3", None, None, 0.0, 0.125),
        ("b", t + pd.Timedelta("1D2min"), "purchase", "i3", 10.0, 1.0, 0.0, None),
        ("b", t + pd.Timedelta("3D"), "cancel", "i3", 10.0, 1.0, None, None),
    ]
    return pd.DataFrame(
        rows, columns=["user_id", "timestamp", "event", "item_id", "price", "quantity", "coupon", "propensity"]
    )


@pytest.fixture
def small_log_path(tmp_path: Path) -> Path:
    """The small log as a Parquet file."""
    path = tmp_path / "events.parquet"
    small_log().to_parquet(path, index=False)
    return path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``retentionrl ARGS`` in a fresh interpreter in ``cwd``, through ``main()`` as the script runs it."""
    return subprocess.run(
        [sys.executable, "-m", "retentionrl.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"},
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line of a run that failed on bad input, checked: exit status 2, no
    other line on stderr, no traceback anywhere."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def btyd_customers(n: int, seed: int, mean_repeats: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A BTYD calibration summary of ``n`` made-up customers: repeat purchases ``x`` ~
    Poisson(``mean_repeats``), age ``T`` ~ U(30, 300) days, recency uniform in (0, T) when
    ``x`` > 0, else 0."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(mean_repeats, n).astype(float)
    T = rng.uniform(30, 300, n)
    return x, np.where(x > 0, rng.uniform(0, 1, n) * T, 0.0), T
