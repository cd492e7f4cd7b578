"""World logs: schema, determinism, and propensities recomputed from the log alone."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from retentionrl.interactions.history import HistoryFeatures
from retentionrl.interactions.schema import EVENT_TYPES
from retentionrl.simulators.policy_registry import make_policy
from retentionrl.simulators.world.config import WORLD_VERSION, WorldConfig
from retentionrl.simulators.world.logging_policies import SoftmaxPolicy
from retentionrl.simulators.world.logs import write_world_logs

CONFIG = WorldConfig()
SPACE = CONFIG.action_space


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> tuple:
    path = tmp_path_factory.mktemp("logs") / "world.parquet"
    summary = write_world_logs(CONFIG, 1500, 60, 7, path)
    return path, summary, pd.read_parquet(path)


def test_same_seed_same_bytes_other_seed_other_bytes(log, tmp_path):
    path, _, _ = log
    again, other = tmp_path / "again.parquet", tmp_path / "other.parquet"
    write_world_logs(CONFIG, 1500, 60, 7, again)
    write_world_logs(CONFIG, 1500, 60, 8, other)
    assert sha256(again) == sha256(path)
    assert sha256(other) != sha256(path)


def test_log_follows_the_interactions_schema(log):
    path, summary, df = log
    assert list(df.columns[:4]) == ["user_id", "timestamp", "event", "item_id"]
    assert set(df["event"]) <= set(EVENT_TYPES)
    assert summary.n_events == len(df) and summary.n_visits == (df["event"] == "impression").sum()
    imp, buy = df[df["event"] == "impression"], df[df["event"] == "purchase"]
    assert (
        imp["propensity"].between(0, 1, inclusive="right").all()
        and df.loc[df.event != "impression", "propensity"].isna().all()
    )
    assert set(imp["coupon"]) <= set(SPACE.coupon_levels)
    assert (buy["price"] > 0).all() and set(buy["quantity"]) <= {1.0 + k for k in range(CONFIG.max_extra_units + 1)}
    margin = 1.0 - buy["unit_cost"] / buy["price"]  # the group's gross margin, from the log alone
    assert margin.between(0.15, 0.75).all() and df.loc[df.event != "purchase", "unit_cost"].isna().all()
    assert (margin.groupby(buy["item_group"]).std().fillna(0.0) < 1e-3).all()
    assert (df.groupby(["user_id", "session_id"])["event"].first() == "impression").all()
    days = (imp["timestamp"] - pd.Timestamp("2024-01-01")).dt.days
    assert days.min() >= 0 and days.max() < 60
    assert df["user_id"].nunique() == 1500  # every shopper makes a first visit in the window
    meta = pq.read_schema(path).metadata
    assert WorldConfig.from_json(meta[b"retentionrl.world_config"]) == CONFIG
    assert meta[b"retentionrl.world_version"] == str(WORLD_VERSION).encode()


def replay(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observation, flat action, logged propensity) per impression, rebuilt from the log only."""
    key = ["user_id", "session_id"]
    imp = df[df["event"] == "impression"][[*key, "timestamp", "item_group", "coupon", "propensity"]]
    clicked = df[df["event"] == "click"][key].assign(click=True)
    buy = df[df["event"] == "purchase"].assign(
        spend=lambda d: d["price"] * d["quantity"], redeemed=lambda d: d["coupon"] > 0
    )
    v = (
        imp.merge(clicked, on=key, how="left")
        .merge(buy[[*key, "spend", "redeemed"]], on=key, how="left")
        .fillna({"click": False, "spend": 0.0, "redeemed": False})
    )
    v["purchase"] = v["spend"] > 0
    v["n"] = v.groupby("user_id")["session_id"].transform("size")
    v = v.sort_values(["n", "user_id", "session_id"], ascending=[False, True, True], ignore_index=True)
    nxt = v.groupby("user_id")["timestamp"].shift(-1)
    v["gap"] = ((nxt - v["timestamp"]).dt.total_seconds() / 86_400).fillna(np.inf)
    history = HistoryFeatures(SPACE, CONFIG.horizon_days)
    obs = np.empty((len(v), len(history.names)), dtype=np.float32)
    history.reset(int((v["session_id"] == 0).sum()))
    for k in range(int(v["session_id"].max()) + 1):
        rows = np.flatnonzero(v["session_id"].to_numpy() == k)  # running shoppers: a prefix
        history.keep_rows(np.arange(history.n) < rows.size)
        obs[rows] = history.features()
        s = v.iloc[rows]
        out = SimpleNamespace(
            click=s["click"].to_numpy(bool),
            purchase=s["purchase"].to_numpy(bool),
            redeemed=s["redeemed"].to_numpy(bool),
            spend=s["spend"].to_numpy(float),
        )
        history.update(s["item_group"].to_numpy(), SPACE.coupon_index(s["coupon"].to_numpy()), out, s["gap"].to_numpy())
    action = SPACE.encode(v["item_group"].to_numpy(), SPACE.coupon_index(v["coupon"].to_numpy()))
    return obs, action, v["propensity"].to_numpy()


def test_logged_propensities_are_exact(log):
    _, _, df = log
    obs, action, logged = replay(df)
    probs = make_policy("softmax", CONFIG).action_probs(obs)
    np.testing.assert_allclose(probs[np.arange(len(action)), action], logged, rtol=1e-12)


def test_replayed_observations_equal_the_worlds(tmp_path):
    """A softmax reading every feature: exact propensities mean the whole observation replays."""
    rng = np.random.default_rng(0)
    d = len(HistoryFeatures(SPACE, CONFIG.horizon_days).names)
    policy = SoftmaxPolicy(SPACE, rng.normal(size=(d, SPACE.n_actions)), rng.normal(size=SPACE.n_actions))
    write_world_logs(CONFIG, 800, 90, 3, tmp_path / "w.parquet", logging_policy=policy)
    obs, action, logged = replay(pd.read_parquet(tmp_path / "w.parquet"))
    np.testing.assert_allclose(policy.action_probs(obs)[np.arange(len(action)), action], logged, rtol=1e-12)


@pytest.mark.parametrize("name", ("uniform", "epsilon-greedy"))
def test_other_logging_policies_log_exact_propensities(name, tmp_path):
    write_world_logs(CONFIG, 400, 45, 1, tmp_path / "w.parquet", logging_policy=name)
    obs, action, logged = replay(pd.read_parquet(tmp_path / "w.parquet"))
    np.testing.assert_allclose(make_policy(name, CONFIG).action_probs(obs)[np.arange(len(action)), action], logged)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_users": 0}, "n_users"), ({"days": 0}, "days"), ({"logging_policy": "nope"}, "unknown policy 'nope'")],
)
def test_invalid_arguments(kwargs, match, tmp_path):
    args = {"n_users": 10, "days": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        write_world_logs(
            CONFIG,
            args["n_users"],
            args["days"],
            0,
            tmp_path / "x.parquet",
            logging_policy=args.get("logging_policy", "softmax"),
        )
    assert not (tmp_path / "x.parquet").exists()


def cli_app():
    try:
        from retentionrl.cli.main import app
    except ImportError:  # the data CLI is written in parallel; test the world group alone
        from retentionrl.cli.world import world_app as app

        return app, []
    return app, ["world"]


def test_cli_logs_and_evaluate(tmp_path):
    app, prefix = cli_app()
    runner = CliRunner()
    out = tmp_path / "cli.parquet"
    result = runner.invoke(
        app,
        [
            *prefix,
            "logs",
            "--users",
            "200",
            "--days",
            "30",
            "--seed",
            "4",
            "--out",
            str(out),
            "--logging-policy",
            "epsilon-greedy",
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and "events" in result.output
    result = runner.invoke(app, [*prefix, "evaluate", "--policy", "never-coupon", "--users", "300", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "never-coupon" in result.output and "profit" in result.output and "95%" in result.output
    result = runner.invoke(app, [*prefix, "evaluate", "--policy", "bogus"])
    assert result.exit_code == 2 and "bogus" in result.output


def test_logs_of_world_v1_are_refused_by_name(log, tmp_path):
    """A log that carries a world config but no world version was written by world v1."""
    from retentionrl.cli.simulator import simulator_app
    from retentionrl.interactions.io import read_events
    from retentionrl.simulators.learned.fit import FitConfig, fit_simulator
    from retentionrl.simulators.world.config import WorldVersionError

    path, _, _ = log
    table = pq.read_table(path)
    meta = {k: v for k, v in table.schema.metadata.items() if k != b"retentionrl.world_version"}
    old = tmp_path / "v1.parquet"
    pq.write_table(table.replace_schema_metadata(meta), old)
    before = old.read_bytes()
    assert read_events(old).report.world_version == "1"
    with pytest.raises(WorldVersionError, match="made by world v1; this code is world v2"):
        fit_simulator(read_events(old), FitConfig(epochs=1, device="cpu"))
    result = CliRunner().invoke(
        simulator_app, ["fit", "--logs", str(old), "--out", str(tmp_path / "m"), "--epochs", "1"]
    )
    assert result.exit_code != 0 and "world v1" in str(result.exception or result.output)
    assert old.read_bytes() == before  # the input is left as it was
