"""The health endpoint's routing (pure; the socket side is covered by the integration tests)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter

from actormesh_runtime.bus.health import HealthServer


def _server(missing: list[str]) -> HealthServer:
    registry = CollectorRegistry()
    Counter("demo_events", "demo", registry=registry).inc()
    return HealthServer(lambda: missing, registry=registry)


@pytest.mark.parametrize(
    ("method", "path", "missing", "status", "body"),
    [
        ("GET", "/healthz", ["nats not connected"], 200, b"ok\n"),
        ("GET", "/readyz", [], 200, b"ready\n"),
        ("GET", "/readyz", ["nats not connected", "consumer x not bound"], 503,
         b"nats not connected\nconsumer x not bound\n"),
        ("GET", "/readyz?verbose=1", [], 200, b"ready\n"),
        ("GET", "/readyz?probe=a?b", [], 200, b"ready\n"),
        ("HEAD", "/healthz", [], 200, b"ok\n"),
        ("GET", "/elsewhere", [], 404, b"not found\n"),
        ("POST", "/healthz", [], 405, b"method not allowed\n"),
    ],
)  # fmt: skip
def test_routes(method: str, path: str, missing: list[str], status: int, body: bytes) -> None:
    got_status, content_type, got_body = _server(missing).respond(method, path)

    assert (got_status, got_body) == (status, body)
    assert content_type.startswith("text/plain")


def test_metrics_in_prometheus_text_format() -> None:
    status, ctype, body = _server([]).respond("GET", "/metrics")

    assert status == 200
    assert ctype.startswith("text/plain")
    assert b"demo_events_total 1.0" in body
