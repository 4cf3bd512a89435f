"""Gateway metrics and the ASGI middleware that records them and tags each request with an id.

Routes are labelled by their template (`/api/messages/{message_id}`), never the raw path, so label
cardinality stays bounded. The request id comes from `X-Request-ID` when the caller sends a sane one,
is echoed in the response header, and is attached to every log record of the request. Each request
(but probes and scrapes) is a server span continuing the caller's `traceparent`/`tracestate`, or the
root of a new trace (`observability.tracing`); its log lines carry `trace_id`/`span_id`.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actormesh_runtime.ids import random_hex
from actormesh_runtime.observability import tracing

REQUESTS = Counter(
    "actormesh_gateway_requests",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "actormesh_gateway_request_seconds",
    "HTTP request latency by route template, method and status (a 504 waited; a 422 did not).",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
IN_FLIGHT = Gauge("actormesh_gateway_in_flight", "HTTP requests being served right now.")
WS_CONNECTIONS = Gauge("actormesh_gateway_websocket_connections", "Open WebSocket connections.")
CHATS = Counter(
    "actormesh_gateway_chats", "Chat messages by channel and outcome.", ["channel", "outcome"]
)  # outcome: ok | timeout | unavailable | error

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
log = logging.getLogger("actormesh_runtime.gateway.access")
UNTRACED = ("/api/health", "/api/ready", "/metrics")
"""Probes and scrapes: no span (every few seconds, they would drown the traces that matter)."""


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to records logged while a request is being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


def install_log_filter() -> None:
    """Attach the filter to the root handlers (idempotent), so every logger's records carry the id."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class ObservabilityMiddleware:
    """Pure ASGI (works for streaming and WebSockets): request id, metrics, one access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SANE_ID.match(incoming) else random_hex(32)
        token = REQUEST_ID.set(request_id)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        # The caller's W3C context (a malformed one is ignored: the request starts a new trace).
        parent = tracing.parse_traceparent(
            headers.get(b"traceparent", b"").decode("latin-1"),
            headers.get(b"tracestate", b"").decode("latin-1"),
        )
        try:
            if scope["type"] == "websocket":
                state["trace_parent"] = parent  # each chat on the socket is a span of its own (ws.py)
                await self.app(scope, receive, send)
            elif scope.get("path") in UNTRACED:
                await self._http(scope, receive, send, request_id)
            else:
                with tracing.span(str(scope.get("method", "GET")), parent, kind="server") as span:
                    await self._http(scope, receive, send, request_id, span)
        finally:
            REQUEST_ID.reset(token)

    async def _http(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, span: tracing.Span | None = None
    ) -> None:
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        started = time.perf_counter()
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = str(scope.get("method", "GET"))
            REQUESTS.labels(route, method, str(status["code"])).inc()
            LATENCY.labels(route, method, str(status["code"])).observe(elapsed)
            _access_log(method, scope, status["code"], elapsed)
            if span is not None and tracing.exporting():  # a plain span ignores all of it
                _describe_span(span, method, route, scope, status["code"])


def _describe_span(span: tracing.Span, method: str, route: str, scope: Scope, status: int) -> None:
    """OpenTelemetry's HTTP server conventions: `{method} {route}`, the status, 5xx is an error."""
    span.set_name(f"{method} {route}" if route != "unmatched" else method)
    span.set_attributes(
        {
            "http.request.method": method,
            "http.route": route,
            "url.path": str(scope.get("path", "")),
            "http.response.status_code": status,
        }
    )
    if status >= 500:
        span.record_error(f"HTTP {status}")


def _access_log(method: str, scope: Scope, status: int, elapsed: float) -> None:
    path: Any = scope.get("path", "")
    if path in ("/api/health", "/api/ready", "/metrics"):
        return  # probes every few seconds would drown everything else
    log.info(f"{method} {path} {status}", extra={"status": status, "ms": round(elapsed * 1000, 1)})
