"""A running gateway stack for integration tests: `LocalMesh` (mock APIs, nine actors) on a given
nats-server, the history service, and N gateway replicas served by uvicorn on random ports.

Each replica has its own NATS connection and instance id, exactly as separate pods would.
`slow_factory` wraps one actor so it sleeps before handling (the timeout-path tests);
`failing_factory` makes one actor fail permanently, quoting the envelope's text in its error;
`counting` counts the chain runs per message id (at the route's first actor), and can hold each run
until a test lets it go; `NatsLink` is a hop to nats-server that a replica cannot pass until it opens.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection

from actormesh_runtime.actors.base import Actor
from actormesh_runtime.bus.process import ActorFactory, default_factory
from actormesh_runtime.catalog import DEFAULT_ROUTE, ActorName
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.errors import PermanentError
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.server import GatewayServer
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.local.mesh import LocalMesh
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings
from tests.support.eventually import eventually_async

JOHN, JANE, BOB = "john.doe@example.com", "jane.smith@example.com", "bob.wilson@example.com"


def stack_settings(nats_url: str, tmp_path: Path, **overrides: Any) -> RuntimeSettings:
    values: dict[str, Any] = {
        "mesh_name": f"gw{uuid.uuid4().hex[:10]}",
        "nats_url": nats_url,
        "sqlite_db_path": str(tmp_path / "history.db"),
        "request_timeout_s": 20.0,
        "processing_timeout_s": 10.0,
        "ack_wait_s": 15.0,
        "rate_limit_requests": 0,  # tests poll fast from one address; test_gateway_limits.py sets it
        "gateway_anonymous": True,  # tests about auth pass jwt_secret, which turns auth on
    }
    values.update(overrides)
    return RuntimeSettings(**values)


class SlowActor:
    """Delegates to a real actor after sleeping `delay_s` (once per message id)."""

    def __init__(self, inner: Actor, delay_s: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.delay_s = delay_s

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def handle(self, envelope: Envelope) -> None:
        await asyncio.sleep(self.delay_s)
        await self.inner.handle(envelope)


def slow_factory(slow: ActorName, delay_s: float) -> ActorFactory:
    def build(name: ActorName, deps: ActorDeps) -> Actor:
        actor = default_factory(name, deps)
        return SlowActor(actor, delay_s) if name == slow else actor  # type: ignore[return-value]

    return build


class FailingActor(SlowActor):
    """Raises a permanent error that quotes the (screened) message, as a careless actor might."""

    async def handle(self, envelope: Envelope) -> None:
        raise PermanentError(f"cannot handle {envelope.message!r}")


def failing_factory(failing: ActorName) -> ActorFactory:
    def build(name: ActorName, deps: ActorDeps) -> Actor:
        actor = default_factory(name, deps)
        return FailingActor(actor, 0.0) if name == failing else actor  # type: ignore[return-value]

    return build


class CountingActor(SlowActor):
    """The route's first actor, counting the messages it handles (a chain run each), optionally held
    (until `gate` is set) or slow, so a retry arrives while the first attempt is still in flight."""

    def __init__(
        self, inner: Actor, runs: Counter[str], delay_s: float, gate: asyncio.Event | None = None
    ) -> None:
        super().__init__(inner, delay_s)
        self.runs = runs
        self.gate = gate

    async def handle(self, envelope: Envelope) -> None:
        self.runs[envelope.message_id] += 1
        if self.gate is not None:
            await self.gate.wait()
        await super().handle(envelope)


def counting(runs: Counter[str], delay_s: float = 0.0, *, gate: asyncio.Event | None = None) -> ActorFactory:
    def build(name: ActorName, deps: ActorDeps) -> Actor:
        actor = default_factory(name, deps)
        if name != DEFAULT_ROUTE[0]:
            return actor
        return CountingActor(actor, runs, delay_s, gate)  # type: ignore[return-value]

    return build


class NatsLink:
    """A TCP hop in front of nats-server that closes every connection until `open()`, then carries
    them through: a replica pointed at `url` starts (serves HTTP and sockets) but cannot reach NATS
    yet, as when its NetworkPolicy or the NATS Service's endpoints lag behind the pod."""

    def __init__(self, nats_url: str) -> None:
        upstream = urlsplit(nats_url)
        self.upstream = (upstream.hostname or "127.0.0.1", upstream.port or 4222)
        self._open = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"nats://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def open(self) -> None:
        self._open.set()

    async def __aenter__(self) -> NatsLink:
        self._server = await asyncio.start_server(self._carry, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open.is_set():
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes from `reader` to `writer` until either side ends; then both directions end."""
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@dataclass
class Stack:
    mesh: LocalMesh
    servers: list[GatewayServer]
    history: HistoryService | None

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    @property
    def url(self) -> str:
        return self.servers[0].url


async def wait_ready(url: str, timeout_s: float = 30.0) -> None:
    async with httpx.AsyncClient(timeout=5) as client:

        async def ready() -> bool:
            return (await client.get(f"{url}/api/ready")).status_code == 200

        await eventually_async(ready, what=f"{url} ready", timeout_s=timeout_s, ignoring=(httpx.HTTPError,))


@asynccontextmanager
async def gateway_stack(
    settings: RuntimeSettings,
    *,
    replicas: int = 1,
    history: bool = True,
    factory: ActorFactory = default_factory,
) -> AsyncIterator[Stack]:
    async with LocalMesh(settings, nats_url=settings.nats_url, factory=factory) as mesh:
        service = await mesh.enter_context(HistoryService(mesh.settings)) if history else None
        servers = []
        for _ in range(replicas):
            server = await mesh.enter_context(GatewayServer(create_app(mesh.settings), port=0))
            servers.append(server)
        for server in servers:
            await wait_ready(server.url)
        yield Stack(mesh, servers, service)


async def poll_json(client: httpx.AsyncClient, url: str, *, timeout_s: float = 30.0, **kwargs: Any) -> Any:
    """GET `url` until it answers 200 (e.g. a result or transcript that is still being written)."""

    async def answered() -> httpx.Response | None:
        response = await client.get(url, **kwargs)
        return response if response.status_code == 200 else None

    response = await eventually_async(answered, what=f"{url} to answer 200", timeout_s=timeout_s)
    return response.json()


async def frame_of(ws: ClientConnection, kind: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """The next frame of type `kind` on a gateway socket (others skipped)."""

    async def next_one() -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame

    return await asyncio.wait_for(next_one(), timeout=timeout_s)


async def mock_state(stack: Stack) -> dict[str, Any]:
    """What the mock commerce APIs hold: order statuses, records (requests, refunds), effects."""
    assert stack.mesh.mocks is not None
    async with httpx.AsyncClient(timeout=10) as client:
        return dict((await client.get(f"{stack.mesh.mocks.orders_api_url}/_test/state")).json())
