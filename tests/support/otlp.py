"""A local OTLP/HTTP trace receiver for tests: what a collector would receive, decoded.

An HTTP server on a random loopback port (its own thread) accepting `POST /v1/traces` with a protobuf
`ExportTraceServiceRequest` (optionally gzip-compressed), answering as a collector does, and keeping
every span as a `ReceivedSpan` with hex ids, so tests compare them with `traceparent` values.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.eventually import eventually

TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    service: str
    attributes: dict[str, Any]
    status_code: int
    """0 unset, 1 ok, 2 error (OpenTelemetry's `Status.StatusCode`)."""
    events: list[str] = field(default_factory=list)
    status_message: str = ""
    event_attributes: list[dict[str, Any]] = field(default_factory=list)
    """Each event's attributes, in the order of `events` (an exception's type and message)."""


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        service=str(resource.get("service.name")),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        status_code=span.status.code,
                        events=[e.name for e in span.events],
                        status_message=span.status.message,
                        event_attributes=[
                            {a.key: _value(a.value) for a in e.attributes} for e in span.events
                        ],
                    )
                )
    return spans


class OtlpReceiver:
    """`with OtlpReceiver.running() as receiver:`; point OTEL_EXPORTER_OTLP_ENDPOINT at `receiver.url`."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.requests = 0
        self.headers: list[dict[str, str]] = []
        """Each export request's HTTP headers (lower-case names)."""
        self.bad_requests: list[str] = []

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans() if s.trace_id == trace_id]

    def wait_for(self, predicate: Any, *, timeout_s: float = 30.0, what: str) -> list[ReceivedSpan]:
        """The spans received once `predicate(spans)` holds (the failure shows the last spans seen)."""

        def received() -> list[ReceivedSpan] | None:
            spans = self.spans()
            return spans if predicate(spans) else None

        return eventually(received, what=what, timeout_s=timeout_s)

    def _receive(self, body: bytes) -> None:
        spans = decode(body)
        with self._lock:
            self.requests += 1
            self._spans.extend(spans)

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[OtlpReceiver]:
        holder: dict[str, OtlpReceiver] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver = holder["receiver"]
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path != TRACES_PATH or self.headers.get("Content-Type") != "application/x-protobuf":
                    receiver.bad_requests.append(f"{self.path} {self.headers.get('Content-Type')}")
                    self.send_error(404 if self.path != TRACES_PATH else 415)
                    return
                try:
                    receiver._receive(body)
                except Exception as exc:  # a malformed export is the test's finding, not a crash
                    receiver.bad_requests.append(repr(exc))
                    self.send_error(400)
                    return
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads what arrived, not an access log."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        receiver = cls(server)
        holder["receiver"] = receiver
        thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
        thread.start()
        try:
            yield receiver
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
