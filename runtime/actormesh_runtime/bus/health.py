"""The per-process HTTP endpoint of actor (and history) processes: /healthz, /readyz, /metrics.

Deliberately tiny — `asyncio.start_server` and a request-line parser — because actor processes must
stay small (no web framework). Kubernetes probes and Prometheus are the only clients.
- /healthz: 200 while the event loop answers.
- /readyz: 200 when `readiness()` returns nothing missing, else 503 with one missing item per line.
- /metrics: the default Prometheus registry in text exposition format.
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

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


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
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
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
        if method not in {"GET", "HEAD"}:
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
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            parts = request_line.decode("latin-1").split()
            # Drain headers; probes send no body.
            while await asyncio.wait_for(reader.readline(), timeout=5) not in (b"\r\n", b"\n", b""):
                pass
            if len(parts) < 2:
                return
            status, ctype, body = self.respond(parts[0].upper(), parts[1])
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if parts[0].upper() == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
