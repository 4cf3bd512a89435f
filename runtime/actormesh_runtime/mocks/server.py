"""Serve the three mock apps with uvicorn inside the current event loop.

Used by the local mesh (`actormesh ask`/`dev`), by `actormesh mocks` and by integration tests:
`handle = await serve_mocks("127.0.0.1", MockPorts(0, 0, 0))` binds random ports (0) or the given
ones, returns once all three accept connections, and `await handle.stop()` shuts them down.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import uvicorn
from fastapi import FastAPI

from actormesh_runtime.catalog import Env, Ports
from actormesh_runtime.mocks.apps import build_apps
from actormesh_runtime.mocks.state import MockState
from actormesh_runtime.net import bind_tcp

_STARTUP_TIMEOUT_S = 10.0


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone: the embedding process (mesh, CLI, tests) owns them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MockPorts(NamedTuple):
    customers: int = Ports.CUSTOMER_API
    orders: int = Ports.ORDERS_API
    tracking: int = Ports.TRACKING_API


@dataclass
class MocksHandle:
    """Running mock APIs: their URLs, their shared state (tests may inspect or reset it), and `stop()`."""

    host: str
    ports: MockPorts
    state: MockState
    _servers: list[_EmbeddedServer] = field(default_factory=list, repr=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    def _url(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    @property
    def customer_api_url(self) -> str:
        return self._url(self.ports.customers)

    @property
    def orders_api_url(self) -> str:
        return self._url(self.ports.orders)

    @property
    def tracking_api_url(self) -> str:
        return self._url(self.ports.tracking)

    def env(self) -> dict[str, str]:
        """The environment variables that point actors at these APIs."""
        return {
            Env.CUSTOMER_API_URL: self.customer_api_url,
            Env.ORDERS_API_URL: self.orders_api_url,
            Env.TRACKING_API_URL: self.tracking_api_url,
        }

    async def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._servers.clear()
        self._tasks.clear()

    async def wait(self) -> None:
        """Until the servers stop (after `stop()`, or if one of them fails)."""
        await asyncio.gather(*self._tasks)


def _bind(host: str, port: int) -> socket.socket:
    sock = bind_tcp(host, port)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _bind_all(host: str, ports: MockPorts) -> list[socket.socket]:
    """Bind all three or none: a port already in use closes the ones bound before it."""
    bound: list[socket.socket] = []
    try:
        for port in ports:
            bound.append(_bind(host, port))
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound


async def serve_mocks(
    host: str = "127.0.0.1",
    ports: MockPorts | None = None,
    *,
    state: MockState | None = None,
) -> MocksHandle:
    """Start the customers, orders and tracking apps on `host`; a port of 0 picks a free one."""
    shared = state or MockState()
    apps = build_apps(shared)
    wanted = ports or MockPorts()
    sockets = _bind_all(host, wanted)
    bound = MockPorts(*(int(s.getsockname()[1]) for s in sockets))
    handle = MocksHandle(host=host, ports=bound, state=shared)
    named: list[tuple[str, FastAPI]] = [
        ("customers", apps.customers),
        ("orders", apps.orders),
        ("tracking", apps.tracking),
    ]
    for (name, app), sock in zip(named, sockets, strict=True):
        config = uvicorn.Config(
            app,
            log_level="warning",
            log_config=None,  # uvicorn's records go through the process's handler (JSON in pods)
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = _EmbeddedServer(config)
        handle._servers.append(server)
        handle._tasks.append(asyncio.create_task(server.serve(sockets=[sock]), name=f"mock-{name}"))
    await _wait_started(handle)
    return handle


async def _wait_started(handle: MocksHandle) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STARTUP_TIMEOUT_S
    while not all(s.started for s in handle._servers):
        failed = [t for t in handle._tasks if t.done()]
        if failed or loop.time() > deadline:
            await handle.stop()
            raise RuntimeError("mock APIs did not start")
        await asyncio.sleep(0.01)
