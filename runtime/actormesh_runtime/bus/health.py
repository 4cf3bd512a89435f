"""The per-process HTTP endpoint of actor (and history) processes: /healthz, /readyz, /metrics.

Deliberately tiny — `asyncio.start_server` and a request-line parser — because actor processes must
stay small (no web framework). Kubernetes probes and Prometheus are the only clients.
- /healthz: 200 while the event loop answers.
- /readyz: 200 when `readiness()` returns nothing missing, else 503 with one missing item per line.
- /metrics: the default Prometheus registry in text exposition format.
One request per connection. A request or header line over `MAX_LINE_BYTES` is answered 414 or 431;
a head not complete within `HEAD_TIMEOUT_S` is closed without an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

Readiness = Callable[[], list[str]]
"""Returns what is missing (e.g. "nats not connected"); empty means ready."""

_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
MAX_LINE_BYTES = 64 * 1024
"""asyncio's default stream limit, stated: a probe's lines are a few dozen bytes."""
HEAD_TIMEOUT_S = 5.0
"""For the request line and every header together: a probe sends them at once."""
DISCARD_S = 5.0
"""How long the input a request leaves unread is drained after the response (a client that has its
response closes sooner)."""
METHODS = ("GET", "HEAD")


class _LineTooLong(Exception):
    """A request or header line over MAX_LINE_BYTES; `status` is the answer (414 or 431)."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(what)
        self.status = status
        self.body = f"{what} longer than {MAX_LINE_BYTES} bytes\n".encode()


class HealthServer:
    def __init__(
        self,
        readiness: Readiness,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.readiness = readiness
        self.host = host
        self.port = port
        self.registry = registry
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_LINE_BYTES)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("health server listening", extra={"address": f"{self.host}:{self.port}"})
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None

    def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request; pure, so it is unit-tested directly."""
        path = path.split("?", 1)[0]
        if method not in METHODS:
            return 405, "text/plain", b"method not allowed\n"
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            missing = self.readiness()
            if missing:
                return 503, "text/plain", ("\n".join(missing) + "\n").encode()
            return 200, "text/plain", b"ready\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        return 404, "text/plain", b"not found\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await self._response_to(reader)
            if response is None:
                return
            writer.write(response)
            await writer.drain()
            await _discard(reader, writer)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _response_to(self, reader: asyncio.StreamReader) -> bytes | None:
        """The whole response to the connection's one request; None: not HTTP, close without one."""
        try:
            # One deadline for the whole head: a line at a time, each in time, never ends otherwise.
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                parts = await _read_head(reader)
        except _LineTooLong as exc:
            return _response(exc.status, "text/plain", exc.body)
        if len(parts) < 2:
            return None
        method = parts[0].upper()
        status, ctype, body = self.respond(method, parts[1])
        return _response(status, ctype, body, head_only=method == "HEAD")


async def _read_head(reader: asyncio.StreamReader) -> list[str]:
    """The request line's words, once the headers are read and dropped."""
    request_line = await _read_line(reader, 414, "request line")
    while await _read_line(reader, 431, "header line") not in (b"\r\n", b"\n", b""):
        pass
    return request_line.decode("latin-1").split()


async def _read_line(reader: asyncio.StreamReader, status: int, what: str) -> bytes:
    try:
        return await reader.readline()
    except ValueError:  # how `readline` reports a line over the stream's limit
        raise _LineTooLong(status, what) from None


def _response(status: int, ctype: str, body: bytes, *, head_only: bool = False) -> bytes:
    allow = f"Allow: {', '.join(METHODS)}\r\n" if status == 405 else ""
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n{allow}Connection: close\r\n\r\n"
    )
    return head.encode() + (b"" if head_only else body)


async def _discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read and drop what the client may still be sending (a body no route reads, the rest of an
    over-long line): closing a socket with unread input resets the connection, and the reset can
    destroy the response before the client has read it."""
    writer.write_eof()
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(DISCARD_S):
            while await reader.read(MAX_LINE_BYTES):
                pass
