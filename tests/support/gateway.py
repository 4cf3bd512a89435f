"""A running gateway stack for integration tests: `LocalMesh` (mock APIs, nine actors) on a given
nats-server, the history service, and N gateway replicas served by uvicorn on random ports.

Each replica has its own NATS connection and instance id, exactly as separate pods would.
`slow_factory` wraps one actor so it sleeps before handling (the timeout-path tests);
`failing_factory` makes one actor fail permanently, quoting the envelope's text in its error.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from actormesh_runtime.actors.base import Actor
from actormesh_runtime.bus.process import ActorFactory, default_factory
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.errors import PermanentError
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.server import GatewayServer
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.local.mesh import LocalMesh
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings

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
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            try:
                if (await client.get(f"{url}/api/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} not ready after {timeout_s}s")
            await asyncio.sleep(0.05)


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
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get(url, **kwargs)
        if response.status_code == 200:
            return response.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}: still {response.status_code} after {timeout_s}s: {response.text}")
        await asyncio.sleep(0.1)
