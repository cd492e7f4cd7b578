"""The holdout comparison (`retentionrl simulator holdout`): every customer scored by every model,
H by the stated rule, bad input refused, files written."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from retentionrl.cli.main import app
from retentionrl.interactions.horizon import horizon_from_gaps
from retentionrl.interactions.io import read_events
from retentionrl.simulators.fidelity import holdout as holdout_module
from retentionrl.simulators.fidelity.holdout import HoldoutConfig, run_holdout

START = pd.Timestamp("2023-01-01")


def _purchase_log(n: int = 300, days: int = 240, seed: int = 0) -> pd.DataFrame:
    """Pareto/NBD-like shoppers: first purchase in the first 60 days, then Poisson purchases at
    a gamma-distributed rate until an exponential lifetime ends; spend gamma per purchase."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n):
        t = rng.uniform(0, 60)
        rate, death = rng.gamma(1.0, 1 / 30), t + rng.exponential(150)
        while t < min(days, death):
            rows.append((f"u{user}", START + pd.Timedelta(days=t), rng.gamma(2.0, 10.0)))
            t += rng.exponential(1 / rate)
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp", "price"])
    return frame.assign(event="purchase", item_id="i", quantity=1.0)


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("holdout") / "purchases.csv"
    _purchase_log().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def report(log_path):
    config = HoldoutConfig(cutoff=START + pd.Timedelta(days=150), holdout_days=84, epochs=2, replicas=4, device="cpu")
    return run_holdout(read_events(log_path), config)


def test_every_calibration_customer_is_scored_by_every_model(log_path, report):
    events = read_events(log_path).events
    cutoff = START + pd.Timedelta(days=150)
    known = events.loc[events["timestamp"] < cutoff, "user_id"].unique()
    assert report.customers == len(known) == len(report.per_customer)
    assert list(report.scores.index) == ["simulator", "BG/NBD", "Pareto/NBD", "zero"]
    days = events.assign(day=events["timestamp"].dt.normalize()).drop_duplicates(["user_id", "day"])
    window = days[(days["day"] >= cutoff) & (days["day"] < cutoff + pd.Timedelta(days=84))]
    assert report.actual_visits == window["user_id"].isin(known).sum() > 0  # purchase days of known customers
    for name in ("simulator", "BG/NBD", "Pareto/NBD"):
        column = report.per_customer[f"{name} visits"]
        assert np.isfinite(column).all() and report.scores.loc[name, "total"] == pytest.approx(column.sum())
    assert report.scores.loc["zero", "mae"] == pytest.approx(report.actual_visits / report.customers)
    assert report.scores.loc["zero", "total_error"] == -1.0
    # the weekly curves add up to the totals (12 whole weeks)
    assert len(report.weekly) == 12 and report.weekly["actual"].sum() == report.actual_visits
    for name in ("simulator", "BG/NBD", "Pareto/NBD"):
        assert report.weekly[name].sum() == pytest.approx(report.scores.loc[name, "total"], rel=1e-9)
    assert report.actual_spend == pytest.approx(report.per_customer["actual_spend"].sum())


def test_horizon_follows_the_stated_rule_on_calibration_data_only(log_path, report):
    events = read_events(log_path).events
    cal = events.loc[events["timestamp"] < START + pd.Timedelta(days=150)]
    # a visit is a purchase day, starting at its first purchase: the gaps are between those starts
    starts = cal.groupby(["user_id", cal["timestamp"].dt.normalize()])["timestamp"].min().sort_index()
    gaps = starts.groupby(level="user_id").diff().dropna() / pd.Timedelta("1D")
    span = (START + pd.Timedelta(days=150) - cal["timestamp"].min()) / pd.Timedelta("1D")
    assert report.horizon_days == horizon_from_gaps(gaps.to_numpy(), span)
    assert "0.9-quantile" in report.horizon_rule


def test_a_model_without_a_finite_forecast_fails_the_run_with_the_count(log_path, monkeypatch):
    broken = replace(
        holdout_module.BTYD_MODELS[0],
        expected=lambda model, x, t_x, T, days: np.where(x == 0, np.nan, 1.0),
    )
    monkeypatch.setattr(holdout_module, "BTYD_MODELS", (broken,))
    config = HoldoutConfig(cutoff=START + pd.Timedelta(days=150), holdout_days=84, epochs=1, replicas=2, device="cpu")
    with pytest.raises(ValueError, match=r"BG/NBD.*no finite forecast for \d+ of \d+ customers"):
        run_holdout(read_events(log_path), config)


@pytest.mark.parametrize(
    ("cutoff", "days", "match"),
    [(START - pd.Timedelta(days=1), 30, "inside the log"), (START + pd.Timedelta(days=200), 80, "at most")],
)
def test_a_split_outside_the_log_is_refused(log_path, cutoff, days, match):
    with pytest.raises(ValueError, match=match):
        run_holdout(read_events(log_path), HoldoutConfig(cutoff=cutoff, holdout_days=days, epochs=1, device="cpu"))


def test_cli_writes_the_tables_and_refuses_bad_options(log_path, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["simulator", "holdout", "--logs", str(log_path), "--cutoff", "2023-05-31", "--out", str(out)]
    result = runner.invoke(app, [*args, "--holdout-days", "84", "--epochs", "1", "--replicas", "2", "--horizon", "30"])
    assert result.exit_code == 0, result.output
    assert "H = 30 days (given)" in result.output and "Pareto/NBD" in result.output
    saved = json.loads((out / "holdout.json").read_text())
    assert saved["horizon_days"] == 30 and set(saved["scores"]) == {"simulator", "BG/NBD", "Pareto/NBD", "zero"}
    assert len(pd.read_parquet(out / "forecasts.parquet")) == saved["customers"]
    assert (out / "holdout.png").stat().st_size > 0
    bad = runner.invoke(app, [*args, "--cutoff", "yesterday-ish"])
    assert bad.exit_code == 2 and "--cutoff" in bad.output
    bad = runner.invoke(app, [*args, "--horizon", "ninety"])
    assert bad.exit_code == 2 and "--horizon" in bad.output
