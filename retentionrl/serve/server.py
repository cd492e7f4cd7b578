"""Assembling and running the decision service: policy + store + key + log -> uvicorn.

:func:`open_service` builds a :class:`~retentionrl.serve.service.DecisionService` from paths;
:func:`run_server` serves it over HTTP with uvicorn until SIGINT or SIGTERM, then shuts down
gracefully (in-flight requests finish, the decision log is flushed: :mod:`retentionrl.serve.app`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from retentionrl.serve import DEFAULT_MIN_PROPENSITY
from retentionrl.serve.policy import ServedPolicy
from retentionrl.serve.service import DecisionService
from retentionrl.serve.store import SQLiteStore, load_or_create_key

SERVE_EXTRA = "pip install 'retentionrl[serve]'"


def open_service(
    policy_dir: str | Path,
    *,
    store: str | Path,
    decision_log: str | Path | None,
    min_propensity: float = DEFAULT_MIN_PROPENSITY,
    id_key_file: str | Path | None = None,
    seed: int | None = None,
    record_cogs: bool = False,
) -> DecisionService:
    """The service of the policy in ``policy_dir`` with its state in the SQLite file ``store``
    (its folder, and the decision log's, are created when missing).

    :param record_cogs: purchases carry their cost of goods (:class:`DecisionService`).
    :param id_key_file: the pseudonymisation key (created when missing); default
        ``<store>.key`` beside the store, so a restarted service maps shoppers to the same keys.
    :raises InputError: a folder that is not a trained policy, a store of another contract, a
        key file holding no key.
    :raises ValueError: ``min_propensity`` out of range.
    """
    policy = ServedPolicy(policy_dir, min_propensity)
    store = Path(store)
    for folder in {store.parent, *([Path(decision_log).parent] if decision_log is not None else [])}:
        folder.mkdir(parents=True, exist_ok=True)
    key = load_or_create_key(id_key_file if id_key_file is not None else store.with_name(store.name + ".key"))
    contract = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(policy.contract).items()}
    contract["record_cogs"] = record_cogs  # the log's columns: one store, one log schema
    return DecisionService(
        policy, SQLiteStore(store, contract), key, decision_log=decision_log, seed=seed, record_cogs=record_cogs
    )


def run_server(
    service: DecisionService,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    flush_seconds: float = 60.0,
    flush_rows: int = 50_000,
    access_log: bool = False,
    on_shutdown: Callable[[], None] | None = None,
) -> None:
    """Serve ``service`` until SIGINT / SIGTERM (module docstring); ``on_shutdown`` is called
    once the log is flushed (uvicorn then re-raises the signal: the process ends by it).

    :raises ImportError: FastAPI or uvicorn is not installed (the ``serve`` extra).
    :raises OSError: the address cannot be listened on (a port in use, an unknown host).
    """
    try:
        import uvicorn

        from retentionrl.serve.app import create_app
    except ImportError as exc:
        raise ImportError(f"serving needs FastAPI and uvicorn ({exc.name} is missing): {SERVE_EXTRA}") from None
    check_can_listen(host, port)
    app = create_app(service, flush_seconds=flush_seconds, flush_rows=flush_rows, on_shutdown=on_shutdown)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=access_log,
        timeout_graceful_shutdown=30,
        server_header=False,
        proxy_headers=False,  # the service does not read client addresses: no X-Forwarded-* rewriting per request
    )
    uvicorn.Server(config).run()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (the OS's choice), for tests and
    benchmarks that start a service; another process may take it before it is used."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def check_can_listen(host: str, port: int) -> None:
    """Bind ``host:port`` once, as uvicorn will, so that a port in use is one clear error
    before the service starts (uvicorn would log it and exit with status 3).

    :raises OSError: naming the address.
    """
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
