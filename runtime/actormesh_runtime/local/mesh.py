"""`LocalMesh`: NATS (embedded, or an existing server), the mock commerce APIs and the nine actors,
all hosted in one event loop. An async context manager.

`actormesh ask` uses it as is; `actormesh dev` adds the history service and the gateway with
`await mesh.enter_context(...)` (those are stopped first, before the actors drain). Integration
tests use it to run full conversations through the real actors.

Every actor gets the same `ActorDeps`, so per-process clients (HTTP, cache) are shared, exactly
as they would be in one actor process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from actormesh_runtime.actors.base import Actor
from actormesh_runtime.bus.approval_executor import ApprovalExecutor
from actormesh_runtime.bus.connection import connect, open_bus, reach_nats
from actormesh_runtime.bus.fusion import Colocated
from actormesh_runtime.bus.host import ActorHost
from actormesh_runtime.bus.process import ActorFactory, default_factory
from actormesh_runtime.bus.publish import BusPublisher
from actormesh_runtime.catalog import ADMIN_USER, NATS_USERS, ActorName, Subjects, nats_permissions
from actormesh_runtime.embedded_nats import EmbeddedNats, NatsUser
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCAL_DRAIN_GRACE_S = 5.0
"""Local shutdown is interactive (Ctrl-C): drain briefly, unlike a pod's full grace period."""


class LocalMesh:
    """Start with `async with LocalMesh(settings) as mesh:`; `mesh.settings` then points at what runs.

    - `nats_url`: use that server instead of starting an embedded one (`data_dir` then unused); one
      that does not accept a connection raises `bus.connection.NatsUnreachable`;
    - `data_dir`: where the embedded server keeps JetStream (default: a temporary directory);
    - `mocks`: serve the mock APIs in-process on random ports and point the actors at them;
    - `actors`: which actors to host (default: all nine); `factory` builds them (tests swap it).
    """

    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        nats_url: str | None = None,
        data_dir: Path | None = None,
        mocks: bool = True,
        actors: Iterable[ActorName] | None = None,
        factory: ActorFactory = default_factory,
        drain_grace_s: float = LOCAL_DRAIN_GRACE_S,
        nats_users: bool = False,
    ) -> None:
        self.settings = settings
        self._nats_users = nats_users
        self._passwords: dict[str, str] = {}
        self._nats_url = nats_url
        self._data_dir = data_dir
        self._serve_mocks = mocks
        self._actor_names = list(actors) if actors is not None else list(ActorName)
        self._factory = factory
        self._drain_grace_s = drain_grace_s
        self._stack = AsyncExitStack()
        self.subjects = Subjects(settings.mesh_name)
        self.embedded: EmbeddedNats | None = None
        self.mocks: Any = None
        """The running `actormesh_runtime.mocks.server.MocksHandle` (state, URLs), when `mocks`."""
        self.nc: NATS | None = None
        self.actors: dict[ActorName, Actor] = {}
        self.hosts: dict[ActorName, ActorHost] = {}

    # ------------------------------------------------------------ access

    @property
    def js(self) -> JetStreamContext:
        if self.nc is None:
            raise RuntimeError("LocalMesh is not started")
        return self.nc.jetstream()

    @property
    def nats_url(self) -> str:
        return self.settings.nats_url

    def missing(self) -> list[str]:
        """Readiness of the whole mesh (empty = every actor's consumer is bound and NATS connected)."""
        if self.nc is None:
            return ["nats not connected"]
        problems: list[str] = []
        for name in self._actor_names:
            host = self.hosts.get(name)
            problems += host.missing() if host else [f"actor {name.value} not started"]
        return sorted(set(problems))

    async def enter_context(self, cm: AbstractAsyncContextManager[T]) -> T:
        """Run another service inside the mesh's lifetime; it is stopped before the actors."""
        return await self._stack.enter_async_context(cm)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> LocalMesh:
        try:
            await self._start_nats()
            await self._start_mocks()
            self.nc = await open_bus(self.settings, name=f"local-mesh-{self.settings.mesh_name}")
            self._stack.push_async_callback(self._close_connection)
            await self._start_actors()
        except BaseException:
            await self._stack.aclose()
            raise
        log.info("local mesh ready", extra={"mesh": self.settings.mesh_name, "nats": self.settings.nats_url})
        return self

    async def stop(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> LocalMesh:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _start_nats(self) -> None:
        if self._nats_url:
            self.settings = self.settings.model_copy(update={"nats_url": self._nats_url})
            # The mesh's own connections reconnect forever (right once running: NATS restarts), so a
            # server that is not there at all would hold the start up with no end; asked once, it is
            # an error naming the server.
            probe = await reach_nats(self.settings, name=f"local-mesh-{self.settings.mesh_name}-probe")
            await probe.close()
            return
        data_dir = self._data_dir
        if data_dir is None:
            data_dir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="actormesh-nats-"))
            # Removed off the event loop: a JetStream store can hold many files.
            self._stack.push_async_callback(asyncio.to_thread, shutil.rmtree, data_dir, ignore_errors=True)
        users: list[NatsUser] = []
        if self._nats_users:
            # Fresh passwords per run: they live only in this process and the server's 0600 config.
            self._passwords = {user: secrets.token_urlsafe(24) for user in NATS_USERS}
            direct = self.settings.direct_hops
            users = [
                NatsUser(nats_permissions(self.subjects, u, direct_hops=direct), pw)
                for u, pw in self._passwords.items()
            ]
        self.embedded = EmbeddedNats(data_dir, users=users, monitor=True)
        self._stack.push_async_callback(self.embedded.astop)
        starting = asyncio.ensure_future(self.embedded.astart())
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            # Stopped while starting (Ctrl-C): the fork runs in a thread a cancel does not stop, so the
            # stop registered above could look before the process exists and leave it running.
            await asyncio.wait({starting})
            if not starting.cancelled():
                starting.exception()  # retrieved: how the start ended does not matter any more
            raise
        update: dict[str, object] = {"nats_url": self.embedded.url}
        if not self.settings.nats_monitor_urls:  # the history service reads the server's own figures
            update["nats_monitor_urls"] = self.embedded.monitor_url
        self.settings = self.settings.model_copy(update=update)
        if self._passwords:
            self.settings = self.settings_for(ADMIN_USER)  # the mesh's own connection: streams, tools

    def settings_for(self, component: str) -> RuntimeSettings:
        """The settings `component` (an actor name, `gateway`, `history`, `admin`) connects with: its own
        NATS user when the embedded server runs with users (`nats_users=True`), else the mesh's."""
        if not self._passwords:
            return self.settings
        return self.settings.model_copy(
            update={"nats_user": component, "nats_password": self._passwords[component]}
        )

    async def _start_mocks(self) -> None:
        if not self._serve_mocks:
            return
        from actormesh_runtime.mocks.server import MockPorts, serve_mocks

        self.mocks = await serve_mocks("127.0.0.1", MockPorts(0, 0, 0))
        self._stack.push_async_callback(self.mocks.stop)
        self.settings = self.settings.model_copy(
            update={
                "customer_api_url": self.mocks.customer_api_url,
                "orders_api_url": self.mocks.orders_api_url,
                "tracking_api_url": self.mocks.tracking_api_url,
            }
        )

    async def _start_actors(self) -> None:
        assert self.nc is not None
        shared = ActorDeps(settings=self.settings, publisher=BusPublisher(self.nc, self.js), whole_mesh=True)
        connections: dict[ActorName, NATS] = {}
        for name in self._actor_names:
            if self._passwords:  # each actor as its own NATS user, limited to its own subjects
                own = await connect(self.settings_for(name.value), name=f"local-{name.value}")
                self._stack.push_async_callback(_drain, own)  # pushed first: closed after everything
                connections[name] = own
            else:
                connections[name] = self.nc
        for name in self._actor_names:
            nc = connections[name]
            # One extras dict for all: per-process clients (HTTP, cache, LLM) stay shared; only the
            # publishing connection is each actor's own.
            deps = shared if nc is self.nc else replace(shared, publisher=BusPublisher(nc, nc.jetstream()))
            actor = self._factory(name, deps)
            await actor.start()
            self._stack.push_async_callback(actor.stop)
            self.actors[name] = actor
        # All hosts drain together, before any actor stops: nothing is forwarded to a stopped inbox.
        self._stack.push_async_callback(self._stop_hosts)
        colocated = Colocated() if self.settings.hop_fusion else None
        for name, actor in self.actors.items():  # all built (in the fusion group) before any fetches
            nc = connections[name]
            self.hosts[name] = ActorHost(
                actor, nc, nc.jetstream(), self.subjects, self.settings, colocated=colocated
            )
        for host in self.hosts.values():
            await host.start()
        coordinator = ActorName.EXECUTION_COORDINATOR
        if coordinator in self.actors:  # approved actions run beside it, as in its own pod
            executor = ApprovalExecutor(connections[coordinator], self.subjects, shared)
            await executor.start()
            self._stack.push_async_callback(executor.stop)

    async def _stop_hosts(self) -> None:
        await asyncio.gather(*(h.stop(self._drain_grace_s) for h in self.hosts.values()))

    async def _close_connection(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
            self.nc = None


async def _drain(nc: NATS) -> None:
    with contextlib.suppress(Exception):
        await nc.drain()
