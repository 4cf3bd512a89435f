"""Run the gateway app under uvicorn inside an already running event loop.

`actormesh gateway`, `actormesh dev` and the integration tests use `GatewayServer`; signals are left
to the caller (uvicorn's own handlers would re-raise the signal after shutdown and kill the process
before the rest of a local mesh has drained).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from actormesh_runtime.gateway.slowclients import slow_client_protocol
from actormesh_runtime.net import bind_tcp
from actormesh_runtime.settings import RuntimeSettings

GRACEFUL_SHUTDOWN_S = 5
DEFAULT_WS_MAX_BYTES = 64 * 1024
"""Default time in-flight requests get to finish on stop; `actormesh gateway` passes
REQUEST_TIMEOUT_S + 5 so a rolling update lets every waiting chat get its answer."""
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
"""The bound on a request's head for an app that is not the gateway's (no MAX_HEADER_BYTES of its own)."""


class _ClientFaultLogFilter(logging.Filter):
    """uvicorn logs a text frame that is not UTF-8 at error level with a traceback (while rightly
    closing the socket with 1007), so any client could fill the log with tracebacks that look like
    our crashes. Such a record is kept as one warning line without the traceback."""

    CLIENT_FAULTS = frozenset({"Invalid UTF-8 sequence received from client."})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in self.CLIENT_FAULTS:
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_client_faults() -> None:
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ClientFaultLogFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_ClientFaultLogFilter())


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class GatewayServer:
    """One uvicorn server on `host:port` (port 0 = any free port; `port` tells which after start)."""

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        graceful_shutdown_s: int = GRACEFUL_SHUTDOWN_S,
        header_read_timeout_s: float | None = None,
        max_header_bytes: int | None = None,
        ws_max_bytes: int | None = None,
    ) -> None:
        self.graceful_shutdown_s = graceful_shutdown_s
        # Unset: the app's own settings, so every way of serving it (`actormesh gateway`, `actormesh
        # dev`) enforces them; `actormesh dev` once left the header deadline off.
        settings = _gateway_settings(app)
        if header_read_timeout_s is None:
            header_read_timeout_s = settings.header_read_timeout_s if settings else 0.0
        if max_header_bytes is None:  # bounded even for an app that is not the gateway's
            max_header_bytes = settings.max_header_bytes if settings else DEFAULT_MAX_HEADER_BYTES
        if ws_max_bytes is None:
            ws_max_bytes = int(settings.ws_max_frame_bytes) if settings else DEFAULT_WS_MAX_BYTES
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            # No logging config of uvicorn's own: its records reach the root handler, so they are
            # JSON lines like everything else when LOG_FORMAT=json.
            log_config=None,
            access_log=False,  # the app's middleware logs requests with their request id
            lifespan="on",
            timeout_graceful_shutdown=graceful_shutdown_s,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
            http=slow_client_protocol(header_read_timeout_s, max_header_bytes),
            # Used only without httptools (then uvicorn parses with h11, which has a bound of its own).
            h11_max_incomplete_event_size=max_header_bytes or None,
            # The WebSocket library refuses a bigger frame from its header (close 1009) before reading
            # it; uvicorn's default (16 MiB) would be read whole and only then checked by the app.
            ws_max_size=ws_max_bytes,
        )
        _quiet_client_faults()
        self.host = host
        self.requested_port = port
        self.server = _QuietServer(config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("gateway server is not listening")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    async def start(self, timeout_s: float = 30.0) -> None:
        """Serve in a background task; return once listening.

        The socket is bound here, not by uvicorn: uvicorn answers a bind failure with `sys.exit`,
        which would tear down the whole event loop instead of raising a plain `OSError`.
        """
        self._socket = _bind(self.host, self.requested_port)
        self._task = asyncio.create_task(self.server.serve(sockets=[self._socket]), name="gateway-uvicorn")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.server.started:
            if self._task.done():
                self._task.result()  # re-raise the startup failure
                raise RuntimeError("gateway server exited during start-up")
            if loop.time() > deadline:
                await self.stop()
                raise RuntimeError(f"gateway server not listening after {timeout_s}s")
            await asyncio.sleep(0.02)

    async def wait(self) -> None:
        """Until the server stops by itself (it does not, unless it crashes)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=self.graceful_shutdown_s + 5)
        except TimeoutError:
            self.server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        finally:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def _gateway_settings(app: FastAPI) -> RuntimeSettings | None:
    """The settings `create_app` keeps on its gateway; None for an app that is not the gateway's."""
    gateway = getattr(app.state, "gateway", None)
    return None if gateway is None else gateway.settings


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port (OSError, e.g. address in use, is the caller's)."""
    sock = bind_tcp(host, port)
    sock.set_inheritable(True)
    return sock
