"""The decision service: decisions and their propensities, the store, the decision log, bad
input, the HTTP routes (in process), and the real server process driven over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import load_policy, train
from retentionrl.core.errors import InputError
from retentionrl.interactions.io import read_events
from retentionrl.serve.audit import audit_decision_log
from retentionrl.serve.policy import ServedPolicy
from retentionrl.serve.schemas import Decision, OutcomeEvent
from retentionrl.serve.server import free_port, open_service
from retentionrl.serve.service import DecisionService, RequestError
from tests.conftest import run_cli

T0 = datetime(2024, 3, 1, 9, 0, 0)
NEEDS_SERVE = "needs FastAPI and uvicorn: pip install 'retentionrl[serve]'"


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory) -> Path:
    """A small PPO trained on the world, acting stochastically (every action has its own probability)."""
    out = tmp_path_factory.mktemp("policy")
    config = TrainConfig(
        algo="ppo", simulator="world", num_envs=8, total_steps=1_024, device="cpu", seed=0, deploy="stochastic"
    )
    train(config, out, progress=False)
    return out


def _service(policy_dir: Path, folder: Path, log_name: str = "log", **kwargs) -> DecisionService:
    return open_service(policy_dir, store=folder / "store.sqlite", decision_log=folder / log_name, seed=0, **kwargs)


def _event(decision: Decision, shopper: str, kind: str, time: datetime, event_id: str, **fields) -> OutcomeEvent:
    return OutcomeEvent(
        event_id=event_id, decision_id=decision.decision_id, shopper_id=shopper, event=kind, time=time, **fields
    )


def _drive(service: DecisionService, n_shoppers: int, n_visits: int, seed: int) -> int:
    """Shoppers visiting at random gaps (some past the 90-day horizon: a new lifetime), clicking,
    buying and redeeming at random, outcomes posted either alone or inline with the next decision."""
    rng = np.random.default_rng(seed)
    served = 0
    for s in range(n_shoppers):
        shopper, now, pending = f"shopper-{s}", T0 + timedelta(hours=float(rng.uniform(0, 500))), []
        for k in range(n_visits):
            if pending and not k % 2:
                service.record(pending)
            decision = service.decide(shopper, now, pending if k % 2 else ())
            served += 1
            pending = []
            if rng.random() < 0.5:
                pending.append(_event(decision, shopper, "click", now + timedelta(seconds=30), f"{s}-{k}-c"))
            if rng.random() < 0.4:
                redeemed = bool(decision.coupon > 0 and rng.random() < 0.7)
                for j in range(int(rng.integers(1, 3))):
                    price, quantity = float(rng.uniform(5, 80)), float(rng.integers(1, 4))
                    pending.append(
                        _event(
                            decision,
                            shopper,
                            "purchase",
                            now + timedelta(minutes=5 + j),
                            f"{s}-{k}-p{j}",
                            price=price,
                            quantity=quantity,
                            redeemed=redeemed,
                        )
                    )
            gap = rng.choice([rng.uniform(0.2, 40.0), 90.0, rng.uniform(91.0, 200.0)], p=[0.8, 0.05, 0.15])
            now += timedelta(days=float(gap))
        if pending:
            service.record(pending)
    return served


def test_served_probabilities_keep_the_floor_and_the_trained_policy(policy_dir: Path) -> None:
    floor = 1e-3
    served = ServedPolicy(policy_dir, floor)
    trained = load_policy(policy_dir)
    obs = np.random.default_rng(0).random((200, 31)).astype(np.float32)
    probs = served.action_probs(obs)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert probs.min() >= floor * (1 - 1e-12)
    n = served.action_space.n_actions
    # (1 - A p) pi + p, with pi the torch policy's distribution up to float32 rounding
    assert np.abs((probs - floor) / (1 - n * floor) - trained.action_probs(obs)).max() < 1e-6
    with pytest.raises(ValueError, match="--min-propensity"):
        ServedPolicy(policy_dir, 1.0 / n + 1e-6)


def test_logged_propensities_are_the_served_policys_on_the_replayed_history(policy_dir: Path, tmp_path: Path) -> None:
    service = _service(policy_dir, tmp_path)
    served = _drive(service, n_shoppers=25, n_visits=8, seed=1)
    service.flush()
    audit = audit_decision_log(tmp_path / "log", service.policy)
    assert audit.n_impressions == audit.n_checked == served
    assert audit.max_abs_diff <= 1e-9
    # the replay is not trivially equal: a service that ignored the gap between visits (the
    # lifetime rule) would log propensities the replay contradicts
    blind = _service(policy_dir, tmp_path / "blind")
    blind._observe = lambda record, now: DecisionService._observe(blind, record, record.visit_us + 1 if record else now)  # type: ignore[method-assign]
    _drive(blind, n_shoppers=25, n_visits=8, seed=1)
    blind.flush()
    assert audit_decision_log(tmp_path / "blind" / "log", blind.policy).max_abs_diff > 1e-6  # rounding is 1e-15


def test_the_decision_log_is_an_event_log_the_project_reads(policy_dir: Path, tmp_path: Path) -> None:
    service = _service(policy_dir, tmp_path, log_name="decisions.parquet")
    served = _drive(service, n_shoppers=10, n_visits=5, seed=2)
    service.flush()
    log = read_events(tmp_path / "decisions.parquet")
    events = log.events
    assert (events["event"] == "impression").sum() == served
    impressions = events.loc[events["event"] == "impression"]
    assert impressions["propensity"].between(1e-3 * (1 - 1e-12), 1).all()
    assert not events["user_id"].astype(str).str.startswith("shopper-").any()  # pseudonymised
    result = run_cli("data", "describe", str(tmp_path / "decisions.parquet"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_raw_shopper_ids_never_reach_the_store_or_the_log(policy_dir: Path, tmp_path: Path) -> None:
    service = _service(policy_dir, tmp_path)
    service.decide("alice@example.com", T0)
    service.flush()
    service.store.close()
    for path in [tmp_path / "store.sqlite", *(tmp_path / "log").iterdir()]:
        assert b"alice@example.com" not in path.read_bytes()


def test_a_restarted_service_continues_each_shoppers_history(policy_dir: Path, tmp_path: Path) -> None:
    first = _service(policy_dir, tmp_path)
    a = first.decide("bob", T0)
    first.record([_event(a, "bob", "purchase", T0 + timedelta(minutes=3), "e1", price=20.0)])
    first.store.close()  # stopped without a flush: its rows wait in the store
    second = _service(policy_dir, tmp_path)
    b = second.decide("bob", T0 + timedelta(days=3))
    assert (a.visit, b.visit) == (0, 1)
    assert second.flush() == 3  # the first run's impression and purchase, then this impression
    assert audit_decision_log(tmp_path / "log", second.policy).max_abs_diff <= 1e-9


def _state(service: DecisionService) -> tuple:
    db = service.store._db  # type: ignore[attr-defined]
    return tuple(
        db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("shoppers", "decisions", "events", "log_rows")
    )


@pytest.mark.parametrize(
    ("case", "status", "field"),
    [
        ("earlier time", 422, "time"),
        ("same time as the last decision", 422, "time"),
        ("unknown shopper", 404, "events[0].shopper_id"),
        ("unknown decision", 404, "events[0].decision_id"),
        ("duplicate event", 409, "events[0].event_id"),
        ("duplicate in one request", 409, "events[1].event_id"),
        ("closed decision", 409, "events[0].decision_id"),
        ("decision of another shopper", 422, "events[0].decision_id"),
        ("event before its decision", 422, "events[0].time"),
        ("purchase without a price", 422, "events[0].price"),
        ("click with a price", 422, "events[0].price"),
        ("redeemed without a coupon", 422, "events[0].redeemed"),
        ("item id of the wrong type", 422, "events[0].item_id"),
        ("inline event of another shopper", 422, "events[0].shopper_id"),
        ("unit cost the service does not record", 422, "events[0].unit_cost"),
    ],
)
def test_bad_requests_are_refused_naming_the_field_and_change_nothing(
    policy_dir: Path, tmp_path: Path, case: str, status: int, field: str
) -> None:
    service = _service(policy_dir, tmp_path, min_propensity=0.0)
    first = service.decide("carol", T0)
    service.record([_event(first, "carol", "click", T0 + timedelta(seconds=5), "seen")])
    current = service.decide("carol", T0 + timedelta(days=2))
    other = service.decide("dave", T0)
    later = T0 + timedelta(days=2, minutes=1)
    uncouponed_shopper, uncouponed = next(
        (h, d) for h, d in ((f"h{i}", service.decide(f"h{i}", T0)) for i in range(50)) if d.coupon == 0
    )
    requests = {
        "earlier time": lambda: service.decide("carol", T0 + timedelta(days=1)),
        "same time as the last decision": lambda: service.decide("carol", T0 + timedelta(days=2)),
        "unknown shopper": lambda: service.record([_event(current, "erin", "click", later, "x")]),
        "unknown decision": lambda: service.record(
            [OutcomeEvent(event_id="x", decision_id="nope", shopper_id="carol", event="click", time=later)]
        ),
        "duplicate event": lambda: service.record([_event(current, "carol", "click", later, "seen")]),
        "duplicate in one request": lambda: service.record(
            [_event(current, "carol", "click", later, "new"), _event(current, "carol", "click", later, "new")]
        ),
        "closed decision": lambda: service.record([_event(first, "carol", "click", later, "x")]),
        "decision of another shopper": lambda: service.record([_event(other, "carol", "click", later, "x")]),
        "event before its decision": lambda: service.record(
            [_event(current, "carol", "click", T0 + timedelta(days=1), "x")]
        ),
        "purchase without a price": lambda: service.record([_event(current, "carol", "purchase", later, "x")]),
        "click with a price": lambda: service.record([_event(current, "carol", "click", later, "x", price=3.0)]),
        "redeemed without a coupon": lambda: service.record(
            [_event(uncouponed, uncouponed_shopper, "purchase", later, "x", price=3.0, redeemed=True)]
        ),
        "item id of the wrong type": lambda: service.record(
            [_event(current, "carol", "click", later, "x", item_id="seven")]
        ),
        "unit cost the service does not record": lambda: service.record(
            [_event(current, "carol", "purchase", later, "x", price=3.0, unit_cost=1.0)]
        ),
        "inline event of another shopper": lambda: service.decide(
            "carol", T0 + timedelta(days=3), [_event(other, "dave", "click", later, "x")]
        ),
    }
    before = _state(service)
    with pytest.raises(RequestError) as caught:
        requests[case]()
    assert (caught.value.status, caught.value.field) == (status, field)
    assert _state(service) == before


def test_a_store_of_another_contract_or_a_bad_key_is_refused(policy_dir: Path, tmp_path: Path) -> None:
    _service(policy_dir, tmp_path).store.close()
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        db.execute("UPDATE meta SET value = '{}' WHERE name = 'contract'")
    with pytest.raises(InputError, match="another observation contract"):
        _service(policy_dir, tmp_path)
    (tmp_path / "bad.key").write_text("not hex\n")
    with pytest.raises(InputError, match="bad.key"):
        open_service(policy_dir, store=tmp_path / "other.sqlite", decision_log=None, id_key_file=tmp_path / "bad.key")


def test_http_routes_answer_json_and_name_the_field(policy_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason=NEEDS_SERVE)
    from fastapi.testclient import TestClient

    from retentionrl.serve.app import create_app

    service = _service(policy_dir, tmp_path)
    with TestClient(create_app(service)) as client:
        decision = client.post("/v1/decide", json={"shopper_id": "frank", "time": "2024-03-01T09:00:00+01:00"}).json()
        assert decision["visit"] == 0 and 0 < decision["propensity"] <= 1
        assert client.get("/v1/shoppers/frank").json()["last_time"].startswith("2024-03-01T08:00:00")  # UTC
        event = {
            "event_id": "e",
            "decision_id": decision["decision_id"],
            "shopper_id": "frank",
            "event": "click",
            "time": "2024-03-01T08:01:00Z",
        }
        assert client.post("/v1/events", json={"events": [event]}).json() == {"recorded": 1}
        cases = [
            (
                client.post("/v1/decide", content=b'{"shopper_id": ', headers={"content-type": "application/json"}),
                400,
                "body",
            ),
            (client.post("/v1/decide", json={"shopper_id": "frank", "time": "yesterday"}), 422, "time"),
            (client.post("/v1/decide", json={"shopper_id": "frank"}), 422, "time"),
            (client.post("/v1/decide", json={"shopper_id": "frank", "time": "2024-04-01", "colour": 1}), 422, "colour"),
            (client.post("/v1/events", json={"events": [{**event, "quantity": -1}]}), 422, "events[0].quantity"),
            (client.post("/v1/events", json={"events": [event]}), 409, "events[0].event_id"),
            (client.get("/v1/shoppers/nobody"), 404, "shopper_id"),
        ]
        for response, status, field in cases:
            assert (response.status_code, response.json()["error"]["field"]) == (status, field), response.text
        assert client.get("/healthz").json()["decisions"] == 1
        assert "/v1/decide" in client.get("/openapi.json").json()["paths"]
        assert client.get("/docs").status_code == 200
    assert read_events(tmp_path / "log").events["event"].tolist() == ["impression", "click"]  # flushed at shutdown


def test_the_real_server_serves_over_http_and_sigterm_loses_no_decision(policy_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason=NEEDS_SERVE)
    from retentionrl.serve.client import DecisionClient, ServiceError

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "retentionrl", "serve", "--policy", str(policy_dir), "--port", str(port)]
    command += ["--store", str(tmp_path / "store.sqlite"), "--decision-log", str(tmp_path / "log"), "--seed", "0"]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                DecisionClient(url, timeout=1).health()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    server.stderr.read() if server.stderr else ""
                )
                time.sleep(0.2)
        with DecisionClient(url) as client:
            decision = client.decide("gina", T0)
            with pytest.raises(ServiceError) as refused:
                client.decide("gina", T0 - timedelta(days=1))
            assert (refused.value.status, refused.value.field) == (422, "time")
            event = {
                "event_id": "g1",
                "decision_id": decision["decision_id"],
                "shopper_id": "gina",
                "event": "purchase",
                "time": T0 + timedelta(minutes=2),
                "price": 12.5,
            }
            assert client.record([event]) == 1

        answered: list[list[str]] = [[] for _ in range(8)]
        stop = threading.Event()

        def load(worker: int) -> None:  # one keep-alive client per thread, deciding until the server goes away
            with DecisionClient(url, timeout=5) as client:
                for i in range(100_000):
                    if stop.is_set():
                        return
                    try:
                        answered[worker].append(
                            client.decide(f"load-{worker}-{i % 40}", T0 + timedelta(days=1 + i // 40))["decision_id"]
                        )
                    except (OSError, ServiceError):
                        return

        threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        server.send_signal(signal.SIGTERM)  # under load
        out, err = server.communicate(timeout=60)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert "stopped:" in out, err
    n_answered = sum(map(len, answered))
    assert n_answered > 50  # the load was real
    log = read_events(tmp_path / "log").events
    logged = set(log.loc[log["event"] == "impression", "decision_id"])
    assert logged == {decision["decision_id"], *(d for ids in answered for d in ids)}
    assert audit_decision_log(tmp_path / "log", ServedPolicy(policy_dir)).max_abs_diff <= 1e-9


def test_serve_cli_refuses_bad_input_in_one_line(policy_dir: Path, tmp_path: Path, capsys) -> None:
    from retentionrl.cli.main import main

    cases = [
        (["--policy", str(tmp_path)], f"error: {tmp_path}: not a trained policy folder (no policy.json)"),
        (
            ["--policy", str(policy_dir), "--min-propensity", "0.5"],
            "error: min_propensity (--min-propensity): expected a number in [0, 1/A]",
        ),
    ]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases.append((["--policy", str(policy_dir), "--port", str(port)], f"error: cannot listen on 127.0.0.1:{port}"))
        for args, message in cases:
            with pytest.raises(SystemExit) as exit_info:
                main(["serve", "--store", str(tmp_path / "s.sqlite"), *args])
            err = capsys.readouterr().err
            assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and err.startswith(message), (args, err)
    assert not (tmp_path / "s.sqlite").exists()  # refused before the store is opened


def test_the_decision_log_feeds_simulator_fit_ope_and_certify_as_it_is(
    policy_dir: Path, tmp_path: Path, capsys
) -> None:
    from retentionrl.cli.main import main

    service = _service(policy_dir, tmp_path)
    _drive(service, n_shoppers=80, n_visits=6, seed=3)
    service.flush()
    log = str(tmp_path / "log")  # a folder of Parquet parts
    commands = [
        ["simulator", "fit", "--logs", log, "--out", str(tmp_path / "sim"), "--epochs", "1"],
        ["ope", "--logs", log, "--policy", str(policy_dir), "--out", str(tmp_path / "ope"), "--bootstrap", "20"],
        ["certify", "--logs", log, "--policy", str(policy_dir), "--out", str(tmp_path / "cert")],
    ]
    for command in commands:
        try:
            main(command)  # returns on success
        except SystemExit as exc:
            pytest.fail(f"{command[0]} exited {exc.code}: {capsys.readouterr().err}")
    assert (tmp_path / "sim" / "model.safetensors").exists()
    assert (tmp_path / "ope" / "report.md").exists() and (tmp_path / "cert" / "certificate.json").exists()
