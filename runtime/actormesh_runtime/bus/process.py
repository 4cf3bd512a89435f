"""One actor as a whole process: what `actormesh actor NAME` (each actor Deployment) runs.

`actormesh actor A,B,...` hosts several actors in one process on one connection: the steps of a
route that follow each other there are chained in memory (hop fusion, `bus.fusion`; docs/bus.md).

Start-up: health server first (so /healthz answers and /readyz explains while NATS is unreachable),
connect with retries, provision streams and the consumer, start the actor and its host. Shutdown
on SIGTERM/SIGINT (or `stop`): drain the host within `drain_grace_s`, stop the actor, flush and
close the connection, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from nats.aio.client import Client as NATS

from actormesh_runtime.actors.base import Actor
from actormesh_runtime.cancellation import cancel_until_done
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.heap import freeze_after_start
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings

from .approval_executor import ApprovalExecutor
from .connection import connect, open_bus
from .fusion import Colocated
from .health import HealthServer
from .host import ActorHost
from .publish import BusPublisher

log = logging.getLogger(__name__)

ActorFactory = Callable[[ActorName, ActorDeps], Actor]
CONNECT_RETRY_S = (0.5, 1.0, 2.0, 5.0)


def default_factory(name: ActorName, deps: ActorDeps) -> Actor:
    from actormesh_runtime.actors.registry import build_actor  # imports only that actor's module

    return build_actor(name, deps)


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT set `stop` (a second signal is ignored: the drain is already under way)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def connect_with_retry(settings: RuntimeSettings, stop: asyncio.Event, *, name: str) -> NATS | None:
    """Connect, retrying with backoff until connected or `stop` is set (then None)."""
    attempt = 0
    while not stop.is_set():
        connecting = asyncio.create_task(connect(settings, name=name))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({connecting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not connecting.done():
            await cancel_until_done(connecting)
            if not connecting.cancelled() and connecting.exception() is None:
                with contextlib.suppress(Exception):  # it connected as it was stopped
                    await connecting.result().close()
            return None
        try:
            return connecting.result()
        except Exception as exc:
            delay = CONNECT_RETRY_S[min(attempt, len(CONNECT_RETRY_S) - 1)]
            log.warning("nats not reachable, retrying", extra={"error": repr(exc), "retry_in_s": delay})
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    return None


class ActorProcess:
    """State of one actor process, readable by the health server at any moment."""

    def __init__(
        self,
        names: ActorName | list[ActorName],
        settings: RuntimeSettings,
        factory: ActorFactory = default_factory,
        *,
        freeze_heap: bool = False,
    ):
        """`freeze_heap`: freeze the start-up heap before the hosts take work (`heap`); the command
        does, tests running the process inside their own do not."""
        self.freeze_heap = freeze_heap
        self.names = [names] if isinstance(names, ActorName) else list(dict.fromkeys(names))
        self.settings = settings
        self.factory = factory
        self.stop_event = asyncio.Event()
        self.nc: NATS | None = None
        self.hosts: list[ActorHost] = []
        self.health = HealthServer(self.missing, host=settings.host, port=settings.actor_http_port)

    @property
    def label(self) -> str:
        return ",".join(n.value for n in self.names)

    def missing(self) -> list[str]:
        if self.nc is None:
            return ["nats not connected"]
        bound = {h.name for h in self.hosts}
        problems = [f"consumer {n.value} not bound" for n in self.names if n not in bound]
        # Once each, however many hosts report it (every host of the process says "nats not connected").
        return list(dict.fromkeys([*problems, *(m for h in self.hosts for m in h.missing())]))

    async def run(self) -> int:
        await self.health.start()
        try:
            return await self._serve()
        finally:
            await self.health.stop()

    async def _serve(self) -> int:
        nc = await connect_with_retry(self.settings, self.stop_event, name=f"actor-{self.label}")
        if nc is None:
            return 0
        self.nc = nc
        try:
            await open_bus(self.settings, nc=nc)
            async with contextlib.AsyncExitStack() as stack:
                await self._start_hosts(nc, stack)
                await self.stop_event.wait()
                in_flight = sum(h.in_flight for h in self.hosts)
                log.info("draining", extra={"actor": self.label, "in_flight": in_flight})
                # Together, before any actor stops: a chain never reaches a stopped actor.
                await asyncio.gather(*(h.stop() for h in self.hosts))
        finally:
            with contextlib.suppress(Exception):
                await nc.drain()
            self.nc = None
        return 0

    async def _start_hosts(self, nc: NATS, stack: contextlib.AsyncExitStack) -> None:
        js = nc.jetstream()
        subjects = Subjects(self.settings.mesh_name)
        # One deps for all: per-process clients (HTTP pool, cache) are shared, as in LocalMesh.
        deps = ActorDeps(settings=self.settings, publisher=BusPublisher(nc, js))
        colocated = Colocated() if self.settings.hop_fusion and len(self.names) > 1 else None
        actors = []
        for name in self.names:
            actor = self.factory(name, deps)
            await actor.start()
            stack.push_async_callback(actor.stop)
            actors.append(actor)
        # Every host is built (and in the fusion group) before the first one fetches.
        hosts = [ActorHost(actor, nc, js, subjects, self.settings, colocated=colocated) for actor in actors]
        if self.freeze_heap:
            freeze_after_start(f"actor {self.label}")
        for host in hosts:
            await host.start()
            self.hosts.append(host)
        if ActorName.EXECUTION_COORDINATOR in self.names:  # approved actions run where orders may change
            executor = ApprovalExecutor(nc, subjects, deps)
            await executor.start()
            stack.push_async_callback(executor.stop)


async def run_actor(names: ActorName | list[ActorName], settings: RuntimeSettings) -> int:
    """Entry point of `actormesh actor NAME[,NAME...]`: run until SIGTERM/SIGINT, drain, return 0."""
    process = ActorProcess(names, settings, freeze_heap=True)
    install_stop_signals(process.stop_event)
    return await process.run()
