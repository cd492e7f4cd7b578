"""``retentionrl serve``: a trained policy as an HTTP decision service with a decision log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retentionrl.serve import DEFAULT_MIN_PROPENSITY


def serve_command(
    policy: Annotated[Path, typer.Option("--policy", help="A trained policy folder (retentionrl train's OUT).")],
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    store: Annotated[
        Path,
        typer.Option("--store", dir_okay=False, help="SQLite file of shoppers' histories and decisions (WAL mode)."),
    ] = Path("retentionrl_store.sqlite"),
    decision_log: Annotated[
        Path,
        typer.Option(
            "--decision-log",
            help="Where decisions and outcomes are logged: a .parquet file, or a folder of Parquet parts.",
        ),
    ] = Path("decision_log"),
    min_propensity: Annotated[
        float,
        typer.Option(
            "--min-propensity",
            min=0.0,
            help="Exploration floor: every action keeps at least this probability (at most 1 / number of actions).",
        ),
    ] = DEFAULT_MIN_PROPENSITY,
    id_key_file: Annotated[
        Path | None,
        typer.Option(
            "--id-key-file",
            dir_okay=False,
            help="Key of the shopper-id hash (default: STORE.key; created when missing).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the action sampling (default: fresh entropy).")
    ] = None,
    flush_seconds: Annotated[
        float, typer.Option("--flush-seconds", min=1.0, help="Write the decision log at least this often.")
    ] = 60.0,
    record_cogs: Annotated[
        bool,
        typer.Option(
            "--record-cogs", help="Purchases carry unit_cost (cost of goods), logged for profit; required on each."
        ),
    ] = False,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request (slower).")] = False,
) -> None:
    """Serve a trained policy over HTTP: POST /v1/decide, POST /v1/events; OpenAPI page at /docs.

    Every decision is logged with the probability it was sampled with, so the log feeds
    `retentionrl simulator fit`, `ope` and `certify` as it is. SIGTERM or Ctrl-C finish the
    requests in flight and flush the log.
    """
    from retentionrl.serve.server import check_can_listen, open_service, run_server

    check_can_listen(host, port)  # before the store is opened: a port in use changes nothing
    service = open_service(
        policy,
        store=store,
        decision_log=decision_log,
        min_propensity=min_propensity,
        id_key_file=id_key_file,
        seed=seed,
        record_cogs=record_cogs,
    )
    typer.echo(
        f"serving {policy} (version {service.policy.version}, floor {service.policy.min_propensity:g}) on "
        f"http://{host}:{port} (OpenAPI: /docs); store {store}; decision log {decision_log}"
    )
    run_server(
        service,
        host,
        port,
        flush_seconds=flush_seconds,
        access_log=access_log,
        on_shutdown=lambda: typer.echo(
            f"stopped: {service.served} decisions served; decision log flushed to {decision_log}"
        ),
    )
