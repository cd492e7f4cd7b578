"""Benchmark of the decision service: ``POST /v1/decide`` over loopback HTTP at 1 and at 32
concurrent clients, beside the same decisions as a bare in-process call (the limit), then
SIGTERM under load.

    python experiments/benchmarks/bench_serve.py [--policy DIR] [--requests 3000]
        [--clients 32] [--out runs/bench_serve]

Without ``--policy`` it trains a small PPO in the ground-truth world first (64-64 MLP, as
the defaults; 20,000 steps: what is timed is serving, not the policy's quality).

1. ``retentionrl serve`` runs in a subprocess (one uvicorn worker, SQLite store, decision log
   folder); the load generator is this process, on the same 2 cores: an asyncio HTTP/1.1
   client over keep-alive connections, its requests built before the clock starts. Each
   request is a returning shopper (64 per client, each deciding on a later day than before),
   so every decision reads and writes a history.
2. ``in-process``: the same request pattern through :meth:`DecisionService.decide` on its own
   store, no HTTP: what the service costs by itself.
3. SIGTERM while 32 clients load the server: decisions answered (HTTP 200) against
   impressions in the flushed log (they must be equal), ``retentionrl data describe`` on the
   log, and the audit of its propensities against the served policy on the replayed history.

It prints one table (p50 / p99 latency in ms, decisions per second, and the in-process
call's rate over each HTTP row's: the cost of HTTP) and the SIGTERM counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import train
from retentionrl.serve.audit import audit_decision_log
from retentionrl.serve.policy import ServedPolicy
from retentionrl.serve.server import free_port, open_service

T0 = datetime(2024, 1, 1, 9, 0, 0)
SHOPPERS_PER_CLIENT = 64


def requests_of(client: int, n: int) -> list[tuple[str, datetime]]:
    """The ``(shopper, time)`` of a client's ``n`` decisions: 64 shoppers in turn, a day apart."""
    return [(f"c{client}-s{i % SHOPPERS_PER_CLIENT}", T0 + timedelta(days=i // SHOPPERS_PER_CLIENT)) for i in range(n)]


def http_request(shopper: str, when: datetime) -> bytes:
    body = json.dumps({"shopper_id": shopper, "time": when.isoformat()}).encode()
    head = f"POST /v1/decide HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def _client(
    port: int, requests: list[bytes], latencies: list[float], answered: list[str], errors: list[int]
) -> None:
    """Send ``requests`` one after another on one keep-alive connection; stop when it closes."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    try:
        for request in requests:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = next(int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status == 200:
                answered.append(json.loads(body)["decision_id"])
            else:
                errors.append(status)
    except (OSError, asyncio.IncompleteReadError):
        pass  # the server went away (SIGTERM): this client's in-flight request got no answer
    finally:
        writer.close()


def load(port: int, per_client: list[list[bytes]]) -> tuple[np.ndarray, list[str], list[int], float]:
    """Run one client per request list, concurrently; latencies (s), decision ids answered, error statuses, wall time."""
    latencies: list[float] = []
    answered: list[str] = []
    errors: list[int] = []

    async def run() -> None:
        await asyncio.gather(*(_client(port, requests, latencies, answered, errors) for requests in per_client))

    start = time.perf_counter()
    asyncio.run(run())
    return np.array(latencies), answered, errors, time.perf_counter() - start


def start_server(policy: Path, folder: Path, port: int) -> subprocess.Popen:
    """``retentionrl serve`` on ``port``, its state in ``folder``; returns once /healthz answers."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "retentionrl",
        "serve",
        "--policy",
        str(policy),
        "--port",
        str(port),
        "--seed",
        "0",
    ]
    command += ["--store", str(folder / "store.sqlite"), "--decision-log", str(folder / "log")]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read() if server.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start within 120 s")


def row(mode: str, clients: int, latencies: np.ndarray, seconds: float, bare_rate: float | None) -> list[str]:
    ms = latencies * 1e3
    rate = len(latencies) / seconds
    ratio = f"{bare_rate / rate:.2f}" if bare_rate is not None else "1.00"
    p50, p99 = np.percentile(ms, [50, 99])
    return [mode, str(clients), str(len(latencies)), f"{p50:.2f}", f"{p99:.2f}", f"{rate:,.0f}", ratio]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--policy", type=Path, default=None, help="a trained policy folder (default: train one in the world)"
    )
    parser.add_argument("--requests", type=int, default=3000, help="decisions per measurement")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients of the loaded measurement")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_serve"))
    args = parser.parse_args()
    policy = args.policy
    if policy is None:
        policy = args.out / "policy"
        if not (policy / "policy.json").exists():
            config = TrainConfig(algo="ppo", simulator="world", num_envs=64, total_steps=20_000, device="cpu", seed=0)
            train(config, policy, progress=False)

    # the limit: the same request pattern as a bare Python call, no HTTP
    bare_dir = args.out / "in_process"
    shutil.rmtree(bare_dir, ignore_errors=True)
    service = open_service(policy, store=bare_dir / "store.sqlite", decision_log=bare_dir / "log", seed=0)
    bare = []
    for shopper, when in requests_of(0, 200) + requests_of(1, args.requests):
        start = time.perf_counter()
        service.decide(shopper, when)
        bare.append(time.perf_counter() - start)
    bare_latencies = np.array(bare[200:])
    bare_seconds = float(bare_latencies.sum())
    bare_rate = len(bare_latencies) / bare_seconds
    service.store.close()

    port = free_port()
    server = start_server(policy, args.out / "server", port)
    rows = [row("in-process", 1, bare_latencies, bare_seconds, None)]
    try:
        load(port, [[http_request(*r) for r in requests_of(99, 200)]])  # warm-up: imports, caches, first connections
        one, _, errors_one, seconds = load(port, [[http_request(*r) for r in requests_of(0, args.requests)]])
        rows.append(row("HTTP", 1, one, seconds, bare_rate))
        per = max(1, args.requests // args.clients)
        many, _, errors_many, seconds = load(
            port, [[http_request(*r) for r in requests_of(100 + c, per)] for c in range(args.clients)]
        )
        rows.append(row("HTTP", args.clients, many, seconds, bare_rate))
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)

    head = ["decide", "clients", "decisions", "p50 ms", "p99 ms", "decisions/s", "in-process rate / this"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(f"policy {policy} ({os.cpu_count()} CPUs); one uvicorn worker; the load generator shares the machine")
    for r in [head, *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    if errors_one or errors_many:
        print(f"errors: {len(errors_one) + len(errors_many)} non-200 answers ({sorted(set(errors_one + errors_many))})")

    # SIGTERM under load: every answered decision must be in the flushed log
    port = free_port()
    folder = args.out / "sigterm"
    server = start_server(policy, folder, port)
    per_client = [[http_request(*r) for r in requests_of(200 + c, 100_000)] for c in range(args.clients)]

    def stop_later() -> None:
        time.sleep(3.0)
        server.send_signal(signal.SIGTERM)

    threading.Thread(target=stop_later, daemon=True).start()
    _, answered, errors, _ = load(port, per_client)
    out, err = server.communicate(timeout=120)
    describe = subprocess.run(
        [sys.executable, "-m", "retentionrl", "data", "describe", str(folder / "log"), "--no-plot"],
        capture_output=True,
        text=True,
    )
    audit = audit_decision_log(folder / "log", ServedPolicy(policy))
    logged = audit.n_impressions
    print(
        f"SIGTERM under {args.clients} clients: {len(answered)} decisions answered, {logged} impressions in the log "
        f"({'equal' if logged == len(answered) else 'DIFFERENT'}; {len(errors)} non-200); server exit {server.returncode}; "
        f"`data describe` exit {describe.returncode}; propensities vs the served policy on the replayed history: "
        f"max |diff| {audit.max_abs_diff:.1e} over {audit.n_checked} decisions"
    )
    if describe.returncode != 0:
        print(describe.stderr)


if __name__ == "__main__":
    main()
