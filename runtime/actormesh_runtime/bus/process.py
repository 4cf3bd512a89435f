"""One actor as a whole process: what `actormesh actor NAME` (each actor Deployment) runs.

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
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings

from .approval_executor import ApprovalExecutor
from .connection import connect, open_bus
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
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
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

    def __init__(self, name: ActorName, settings: RuntimeSettings, factory: ActorFactory = default_factory):
        self.name = name
        self.settings = settings
        self.factory = factory
        self.stop_event = asyncio.Event()
        self.nc: NATS | None = None
        self.host: ActorHost | None = None
        self.health = HealthServer(self.missing, host=settings.host, port=settings.actor_http_port)

    def missing(self) -> list[str]:
        if self.nc is None:
            return ["nats not connected"]
        if self.host is None:
            return [f"consumer {self.name.value} not bound"]
        return self.host.missing()

    async def run(self) -> int:
        await self.health.start()
        try:
            return await self._serve()
        finally:
            await self.health.stop()

    async def _serve(self) -> int:
        nc = await connect_with_retry(self.settings, self.stop_event, name=f"actor-{self.name.value}")
        if nc is None:
            return 0
        self.nc = nc
        try:
            await open_bus(self.settings, nc=nc)
            js = nc.jetstream()
            subjects = Subjects(self.settings.mesh_name)
            deps = ActorDeps(settings=self.settings, publisher=BusPublisher(nc, js))
            actor = self.factory(self.name, deps)
            await actor.start()
            executor = (
                ApprovalExecutor(nc, subjects, deps) if self.name is ActorName.EXECUTION_COORDINATOR else None
            )
            try:
                self.host = ActorHost(actor, nc, js, subjects, self.settings)
                await self.host.start()
                if executor is not None:  # approved actions run where order changes are allowed
                    await executor.start()
                await self.stop_event.wait()
                log.info("draining", extra={"actor": self.name.value, "in_flight": self.host.in_flight})
                if executor is not None:
                    await executor.stop()
                await self.host.stop()
            finally:
                await actor.stop()
        finally:
            with contextlib.suppress(Exception):
                await nc.drain()
            self.nc = None
        return 0


async def run_actor(name: ActorName, settings: RuntimeSettings) -> int:
    """Entry point of `actormesh actor NAME`: run until SIGTERM/SIGINT, drain, return 0."""
    process = ActorProcess(name, settings)
    install_stop_signals(process.stop_event)
    return await process.run()
