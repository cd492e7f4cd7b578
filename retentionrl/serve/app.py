"""The HTTP face of :class:`~retentionrl.serve.service.DecisionService` (FastAPI).

==========================  ==================================================================
route                       what it does
==========================  ==================================================================
``POST /v1/decide``         choose and log an action for a shopper (:class:`DecideRequest` ->
                            :class:`Decision`)
``POST /v1/events``         record outcomes of decisions, all or none (:class:`EventsRequest`)
``GET /v1/shoppers/{id}``   what the service holds about a shopper (404 when never served)
``GET /v1/policy``          the served policy: version, floor, arms, coupon levels, :math:`H`, :math:`S`
``GET /healthz``            liveness, the policy version, decisions served, log rows unflushed
``GET /docs``               the OpenAPI page (``/openapi.json`` the schema)
==========================  ==================================================================

Errors are JSON, ``{"error": {"field": ..., "message": ...}}``: 400 for a body that is not
JSON, 422 for a field that fails validation, 404 / 409 / 422 as
:class:`~retentionrl.serve.service.RequestError` says; never a 500 for bad input.

Handlers are ``async`` and call the service directly, so requests run one at a time on the
event loop (the service's consistency rests on it); a decision takes well under a
millisecond. The decision log is flushed every ``flush_seconds`` (and when
``flush_rows`` rows wait), at startup (rows a crashed run left in the store) and at shutdown:
on SIGTERM uvicorn stops accepting, lets in-flight requests finish, then the lifespan's exit
flushes, so every decision answered is in the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from retentionrl.serve.schemas import (
    DecideRequest,
    Decision,
    ErrorBody,
    EventsRecorded,
    EventsRequest,
    Health,
    Shopper,
)
from retentionrl.serve.service import DecisionService, RequestError, from_us

_ERRORS: dict[int | str, dict] = {status: {"model": ErrorBody} for status in (400, 404, 409, 422)}


def create_app(
    service: DecisionService,
    *,
    flush_seconds: float = 60.0,
    flush_rows: int = 50_000,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    """The service's FastAPI app (module docstring); at shutdown it flushes the log, closes
    ``service.store`` and then calls ``on_shutdown``."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.flush()
        task = asyncio.create_task(_flush_periodically(service, flush_seconds, flush_rows))
        try:
            yield
        finally:
            task.cancel()
            service.flush()
            service.store.close()
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPI(
        title="retentionrl decision service",
        version=version("retentionrl"),
        description="Serves a trained retention policy and logs every decision with its propensity.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, exc.field, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return _error(400, "body", f"not valid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}")
        loc = [str(part) for part in first.get("loc", ()) if part != "body"]
        return _error(422, _indexed(loc) or "body", str(first.get("msg", "invalid")))

    @app.post("/v1/decide", response_model=Decision, responses=_ERRORS)
    async def decide(request: DecideRequest) -> Response:
        decision = service.decide(request.shopper_id, request.time, request.events)
        if service.unflushed_rows >= flush_rows:
            service.flush()
        # serialised here: the service built a valid Decision, FastAPI need not validate it again
        return Response(decision.model_dump_json(), media_type="application/json")

    @app.post("/v1/events", response_model=EventsRecorded, responses=_ERRORS)
    async def events(request: EventsRequest) -> EventsRecorded:
        return EventsRecorded(recorded=service.record(request.events))

    @app.get("/v1/shoppers/{shopper_id}", response_model=Shopper, responses=_ERRORS)
    async def shopper(shopper_id: str) -> Shopper:
        record = service.shopper(shopper_id)
        return Shopper(
            key=record.key,
            visits=record.n_decisions,
            last_time=from_us(record.last_us),
            open_decision=record.decision_id,
        )

    @app.get("/v1/policy")
    async def policy() -> dict:
        served = service.policy
        contract = served.contract
        return {
            "policy_version": served.version,
            "algo": served.meta["algo"],
            "min_propensity": served.min_propensity,
            "arm_column": contract.arm_column,
            "arms": list(contract.arms),
            "coupon_levels": list(contract.coupon_levels),
            "horizon_days": contract.horizon_days,
            "spend_scale": contract.spend_scale,
        }

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        store = service.store
        return Health(
            status="ok",
            policy_version=service.policy.version,
            decisions=store.count("decisions"),
            unflushed_rows=service.unflushed_rows,
        )

    return app


async def _flush_periodically(service: DecisionService, seconds: float, rows: int) -> None:
    """Flush the decision log every ``seconds`` (checked each second when ``rows`` are waiting)."""
    waited = 0.0
    while True:
        await asyncio.sleep(1.0)
        waited += 1.0
        if waited >= seconds or service.unflushed_rows >= rows:
            service.flush()
            waited = 0.0


def _indexed(loc: list[str]) -> str:
    """``events.0.price`` -> ``events[0].price``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _error(status: int, field: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"field": field, "message": message}}, status_code=status)
