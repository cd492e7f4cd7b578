"""The fidelity report: metric math by hand, the BG/NBD summary, teacher forcing, the report files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from retentionrl.cli.simulator import simulator_app
from retentionrl.simulators.fidelity.bgnbd import calibration_holdout_summary, sample_future_visits
from retentionrl.simulators.fidelity.metrics import binary_metrics, log_loss, reliability
from retentionrl.simulators.learned.hazard import sample_gap_days
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs
from retentionrl.simulators.world.probabilities import write_world_logs_with_truth
from tests.test_learned_simulator import toy_simulator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_reliability_and_ece_by_hand():
    pred = np.array([0.1, 0.15, 0.8, 0.9, 1.0])
    label = np.array([0, 1, 1, 1, 1])
    rel = reliability(pred, label, bins=10)
    assert rel.count.tolist() == [0, 2, 0, 0, 0, 0, 0, 0, 1, 2]  # 1.0 falls in the last bin
    np.testing.assert_allclose(rel.mean_pred[[1, 8, 9]], [0.125, 0.8, 0.95])
    np.testing.assert_allclose(rel.observed[[1, 8, 9]], [0.5, 1.0, 1.0])
    # (2 * |0.125 - 0.5| + 1 * 0.2 + 2 * 0.05) / 5
    assert rel.ece == pytest.approx((0.75 + 0.2 + 0.1) / 5)
    metrics = binary_metrics(pred, label)
    assert metrics["brier"] == pytest.approx((0.01 + 0.85**2 + 0.04 + 0.01 + 0.0) / 5)
    assert metrics["auc"] == pytest.approx(1.0)  # every positive scores above the negative
    assert log_loss(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match="probabilities"):
        reliability(np.array([1.5]), np.array([1]))


def test_calibration_holdout_summary_by_hand():
    t0 = pd.Timestamp("2024-01-01")
    days = {"a": [0, 10, 20, 35, 70], "b": [5], "c": [40]}  # c arrives in the holdout: not in the table
    visits = pd.DataFrame(
        [(u, t0 + pd.Timedelta(days=d)) for u, ds in days.items() for d in ds], columns=["user_id", "start"]
    )
    table = calibration_holdout_summary(visits, t0 + pd.Timedelta(days=30), t0 + pd.Timedelta(days=60))
    assert table.index.tolist() == ["a", "b"]
    np.testing.assert_allclose(table["frequency_cal"], [2, 0])
    np.testing.assert_allclose(table["recency_cal"], [20, 0])
    np.testing.assert_allclose(table["T_cal"], [30, 25])
    np.testing.assert_allclose(table["frequency_holdout"], [1, 0])  # day 70 is past the holdout
    np.testing.assert_allclose(table["duration_holdout"], [30, 30])


def test_conditional_gap_sampling_respects_the_lower_bound():
    logits = torch.cat([torch.full((4000, 1), -60.0), torch.full((4000, 30), -2.0)], dim=1)  # no churn logit
    after = torch.tensor([0, 3, 10, 30] * 1000)
    gap = sample_gap_days(logits, torch.rand(4000, generator=torch.Generator().manual_seed(0)), after)
    finite = torch.isfinite(gap)
    assert torch.all(gap[finite] > after[finite].float())
    assert torch.all(~finite[after == 30])  # nothing left within the horizon: churn
    # memoryless constant hazard: the gap beyond the bound has the unconditional law
    extra = (gap - after.float())[finite & (after == 10)]
    assert abs(float((extra == 1).float().mean()) - float(torch.sigmoid(torch.tensor(-2.0)))) < 0.04


def test_observe_moves_the_state_as_the_model_does_on_the_logged_sequence():
    sim = toy_simulator()
    n, k = 5, 4
    rng = np.random.default_rng(0)
    obs = sim.reset(n, seed=0)
    feats, arms, coupons, outs = [], [], [], []
    for step in range(k):
        actions = rng.integers(0, sim.action_space.n_actions, n)
        arm, ci = sim.action_space.decode(actions)
        purchase = rng.random(n) < 0.5
        outcome = SimpleNamespace(
            click=purchase | (rng.random(n) < 0.3),
            purchase=purchase,
            redeemed=purchase & (ci > 0),
            spend=np.where(purchase, 20.0, 0.0),
        )
        gap = np.full(n, np.nan) if step == k - 1 else rng.integers(1, 20, n).astype(float)
        feats.append(obs)
        arms.append(arm)
        coupons.append(np.asarray(sim.action_space.coupon_levels)[ci] / 0.2)
        obs, out = sim.observe(actions, outcome, gap, min_gap_days=np.full(n, 5.5) if step == k - 1 else None)
        outs.append(
            np.stack(
                [coupons[-1], outcome.click, outcome.purchase, outcome.redeemed, np.log1p(outcome.spend / 50.0)], 1
            )
        )
        np.testing.assert_array_equal(out.purchase, purchase)
    assert np.all(out.gap_days > 5.5)  # drawn given no return in the first 5.5 days
    inputs = (
        torch.tensor(np.stack(feats, 1)),
        torch.tensor(np.stack([np.full(n, 3), *arms[:-1]], 1)),
        torch.tensor(np.stack([np.zeros((n, 5)), *outs[:-1]], 1)).float(),
        torch.tensor(np.stack(arms, 1)),
        torch.tensor(np.stack(coupons, 1)).float(),
    )
    from retentionrl.simulators.learned.sequence_model import VisitInputs

    _, last = sim.model.rnn(VisitInputs(*inputs))
    torch.testing.assert_close(sim.state, last, rtol=1e-5, atol=1e-5)


def test_world_truth_is_recorded_for_the_same_log(tmp_path):
    truth = write_world_logs_with_truth(WorldConfig(), 150, 30, 3, tmp_path / "a.parquet")
    write_world_logs(WorldConfig(), 150, 30, 3, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    events = pd.read_parquet(tmp_path / "a.parquet")
    impressions = events.loc[events["event"] == "impression"]
    assert len(truth) == len(impressions)
    clicks = events.loc[events["event"] == "click"].groupby(["user_id", "session_id"]).size()
    clicked = truth.set_index(["user_id", "session_id"]).index.isin(clicks.index)
    assert clicked.sum() == len(clicks)  # every click lies on a recorded visit
    # calibration of the truth: mean true probability vs the realised rate (binomial noise)
    assert abs(truth["p_click"].mean() - clicked.mean()) < 4 * np.sqrt(0.25 / len(truth))


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("report")
    log = tmp / "world.parquet"
    write_world_logs(WorldConfig(), 200, 60, 0, log)
    runner = CliRunner()
    fit = runner.invoke(
        simulator_app,
        ["fit", "--logs", str(log), "--out", str(tmp / "model"), "--epochs", "1", "--device", "cpu", "--no-progress"],
    )
    assert fit.exit_code == 0, fit.output
    result = runner.invoke(
        simulator_app, ["report", "--model", str(tmp / "model"), "--logs", str(log), "--out", str(tmp / "out")]
    )
    assert result.exit_code == 0, result.output
    return tmp / "out", log


def test_report_has_every_metric_valid_pngs_and_no_user_id(report_dir):
    out, log = report_dir
    html = (out / "report.html").read_text()
    for name in (
        "auc",
        "log_loss",
        "brier",
        "ece",
        "concordance",
        "BG/NBD",
        "population",
        "last value",
        "held-out users",
        "later window",
        "return_30",
        "active at day 90",
        "Model card",
        "learned",
        "Gross margin per arm",
    ):
        assert name in html, name
    assert "&lt;" not in html.split("<body>")[0]  # the template itself is not escaped away
    ids = pd.read_parquet(log, columns=["user_id"])["user_id"].unique()
    text = html + (out / "report.json").read_text()
    assert not [u for u in ids if u in text]
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 4
    import matplotlib.image

    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC and png.name in html
        assert matplotlib.image.imread(png).ndim == 3
    assert hashlib.sha256((out / "report.html").read_bytes()).hexdigest()  # written in full


def test_bgnbd_predictive_draws_average_to_its_conditional_expectation():
    from lifetimes import BetaGeoFitter

    model = BetaGeoFitter()
    model.params_ = pd.Series({"r": 0.8, "alpha": 20.0, "a": 0.6, "b": 2.5})
    x, t_x, big_t = (
        np.array([0.0, 3.0, 10.0, 4.0]),
        np.array([0.0, 60.0, 170.0, 20.0]),
        np.array([90.0, 90.0, 180.0, 200.0]),
    )
    draws = sample_future_visits(model, x, t_x, big_t, 60.0, replicas=40_000, seed=0)
    assert draws.shape == (4, 40_000) and np.all(draws == np.round(draws)) and draws.min() >= 0
    expected = model.conditional_expected_number_of_purchases_up_to_time(60.0, x, t_x, big_t)
    se = draws.std(axis=1) / np.sqrt(draws.shape[1])
    assert np.all(np.abs(draws.mean(axis=1) - expected) < 4 * se)
    # the long-lapsed shopper (4 visits, none in the last 180 days) is mostly gone
    assert (draws[3] == 0).mean() > (draws[2] == 0).mean()
