"""The health endpoint's routing (pure; the socket side is covered by the integration tests)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter

from actormesh_runtime.bus.health import HealthServer
from actormesh_runtime.bus.process import ActorProcess
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.settings import RuntimeSettings


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


class _Host:
    def __init__(self, name: ActorName, missing: list[str]) -> None:
        self.name = name
        self._missing = missing

    def missing(self) -> list[str]:
        return self._missing


def test_a_multi_actor_process_names_each_problem_once() -> None:
    process = ActorProcess([ActorName.INTENT_ANALYZER, ActorName.CONTEXT_RETRIEVER], RuntimeSettings())
    process.nc = object()  # type: ignore[assignment]  # connected once, then lost: the hosts say so
    process.hosts = [
        _Host(ActorName.INTENT_ANALYZER, ["nats not connected", "consumer intent_analyzer not bound"]),
    ]  # type: ignore[list-item]

    assert process.missing() == ["consumer context_retriever not bound", "nats not connected",
                                 "consumer intent_analyzer not bound"]  # fmt: skip
    process.hosts.append(_Host(ActorName.CONTEXT_RETRIEVER, ["nats not connected"]))  # type: ignore[arg-type]
    assert process.missing() == ["nats not connected", "consumer intent_analyzer not bound"]
