"""A small synchronous client of the decision service (standard library only): what a shop's
backend, a test or a simulation calls the service with.

One keep-alive HTTP/1.1 connection; a dropped connection is reopened once per request. A
refused request raises :class:`ServiceError` with the service's status, field and message.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit


class ServiceError(Exception):
    """The service refused a request: HTTP ``status``, the ``field`` at fault and its ``message``."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{status} {field}: {message}")
        self.status, self.field, self.message = status, field, message


class DecisionClient:
    """Client of ``retentionrl serve`` at ``url`` (e.g. ``http://127.0.0.1:8000``).

    :param timeout: seconds to wait for a connection or a reply.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"url must be http://HOST[:PORT], got {url!r}")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self._conn: http.client.HTTPConnection | None = None

    def decide(self, shopper_id: str, time: datetime | str, events: Sequence[dict] = ()) -> dict:
        """``POST /v1/decide``: the decision (arm, coupon, propensity, decision id, ...)."""
        body: dict = {"shopper_id": shopper_id, "time": _iso(time)}
        if events:
            body["events"] = [_event(e) for e in events]
        return self._request("POST", "/v1/decide", body)

    def record(self, events: Sequence[dict]) -> int:
        """``POST /v1/events``: record outcomes, all or none; returns how many."""
        return int(self._request("POST", "/v1/events", {"events": [_event(e) for e in events]})["recorded"])

    def health(self) -> dict:
        """``GET /healthz``."""
        return self._request("GET", "/healthz")

    def policy(self) -> dict:
        """``GET /v1/policy``: the served policy's version, floor, arms and coupon levels."""
        return self._request("GET", "/v1/policy")

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> DecisionClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, path, payload, headers)
                reply = self._conn.getresponse()
                data = json.loads(reply.read() or b"{}")
                break
            except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest):
                self.close()
                if attempt:
                    raise
        if reply.status >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            raise ServiceError(reply.status, str(error.get("field", "")), str(error.get("message", data)))
        return data


def _iso(time: datetime | str) -> str:
    return time.isoformat() if isinstance(time, datetime) else str(time)


def _event(event: dict) -> dict:
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in event.items()}
