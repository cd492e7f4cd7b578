"""The closed loop's world-to-service driver (experiments/closed_loop.py) against the real service:
world shoppers call ``retentionrl serve`` over HTTP, SIGTERM stops it, and the decision log
holds exactly what the client received and what the world produced."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the decision service needs FastAPI: pip install 'retentionrl[serve]'")
pytest.importorskip("uvicorn", reason="the decision service needs uvicorn: pip install 'retentionrl[serve]'")

from experiments.closed_loop import drive_world, impressions_in, running_service  # noqa: E402
from retentionrl.agents.config import TrainConfig  # noqa: E402
from retentionrl.agents.training import train  # noqa: E402
from retentionrl.interactions.io import read_events  # noqa: E402
from retentionrl.serve.policy import ServedPolicy  # noqa: E402

SHOPPERS, DAYS = 40, 30
START = datetime(2024, 3, 1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A tiny PPO trained in the world, served to world shoppers; the drive and the service's folder."""
    root = tmp_path_factory.mktemp("closed_loop")
    policy = root / "policy"
    train(
        TrainConfig(
            algo="ppo", simulator="world", num_envs=4, total_steps=512, ppo_batch_size=256, device="cpu", seed=0
        ),
        policy,
        progress=False,
    )
    folder = root / "round1"
    with running_service(policy, folder, seed=0) as client:
        drive = drive_world(
            client,
            SHOPPERS,
            DAYS,
            1,
            start=START,
            prefix="t-",
            check=ServedPolicy(policy, client.policy()["min_propensity"]),
        )
    return drive, folder


def test_every_decision_received_is_logged_with_its_propensity(served) -> None:
    drive, folder = served
    impressions = impressions_in(folder / "decision_log.parquet")
    assert drive.decisions == len(impressions) == len(drive.propensities)
    logged = dict(zip(impressions["decision_id"], impressions["propensity"]))
    assert logged == drive.propensities  # exact: the same floats
    # the service rebuilt each shopper's observation from events alone: the world's own, to the bit
    assert drive.max_propensity_gap == 0.0
    assert (folder / "service.txt").read_text().count(f"stopped: {drive.decisions} decisions served") == 1


def test_decision_log_reads_as_an_event_log_with_the_worlds_outcomes(served) -> None:
    drive, folder = served
    log = read_events(folder / "decision_log.parquet")
    events = log.events
    counts = events["event"].value_counts()
    assert log.n_users == SHOPPERS  # every shopper's first visit is a decision
    assert counts["impression"] == drive.decisions
    assert counts.get("click", 0) == drive.clicks > 0
    assert counts.get("purchase", 0) == drive.purchases > 0
    purchases = events[events["event"] == "purchase"]
    assert purchases["quantity"].sum() == pytest.approx(drive.units)
    assert (purchases["price"] * purchases["quantity"]).sum() == pytest.approx(drive.spend)
    assert int((purchases["coupon"] > 0).sum()) == drive.redeemed
    assert purchases["unit_cost"].notna().all()
    # each shopper's visits are numbered 0, 1, ... and fall inside the window, at one time of day
    imp = events[events["event"] == "impression"].sort_values(["user_id", "timestamp"])
    assert (imp.groupby("user_id")["session_id"].apply(lambda s: list(s) == list(range(len(s))))).all()
    assert imp["timestamp"].min() >= pd.Timestamp(START)
    assert imp["timestamp"].max() < pd.Timestamp(START) + pd.Timedelta(days=DAYS)
    seconds_of_day = (imp["timestamp"] - imp["timestamp"].dt.normalize()).dt.total_seconds()
    assert (seconds_of_day.groupby(imp["user_id"]).nunique() == 1).all()
    # every outcome lies inside its own visit: after its decision, before the shopper's next one
    visit_so_far = events["session_id"].where(events["event"] == "impression").groupby(events["user_id"]).ffill()
    assert (visit_so_far == events["session_id"]).all()


def test_a_service_that_does_not_start_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "not_a_policy").mkdir()
    with pytest.raises(RuntimeError, match="exited with status"):
        with running_service(tmp_path / "not_a_policy", tmp_path / "service", seed=0):
            pass
