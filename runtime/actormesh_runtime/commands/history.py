"""`actormesh history`: the conversation-history service, the single writer of the SQLite store.

Consumes history events from JetStream (durable consumer: nothing is lost while it restarts) and
answers reads over NATS request/reply. Serves /healthz, /readyz and /metrics on ACTOR_HTTP_PORT.
Run exactly one (in Kubernetes: a one-replica StatefulSet with a volume for SQLITE_DB_PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actormesh_runtime.settings import RuntimeSettings

HELP = "Run the conversation-history service (the single SQLite writer)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from actormesh_runtime.commands.options import add_bus_options

    parser.add_argument(
        "--db", help="SQLite file (default: $SQLITE_DB_PATH or ./.actormesh/conversations.db)"
    )
    add_bus_options(parser)
    parser.add_argument("--http-port", type=int, help="/healthz /readyz /metrics port (0 = random)")


async def serve(settings: RuntimeSettings) -> int:
    from actormesh_runtime.bus.health import HealthServer
    from actormesh_runtime.bus.process import connect_with_retry, install_stop_signals
    from actormesh_runtime.history.service import HistoryService
    from actormesh_runtime.settings import RuntimeSettings

    assert isinstance(settings, RuntimeSettings)
    stop = asyncio.Event()
    install_stop_signals(stop)
    service: HistoryService | None = None

    def missing() -> list[str]:
        return service.missing() if service is not None else ["nats not connected"]

    health = HealthServer(missing, host=settings.host, port=settings.actor_http_port)
    await health.start()
    try:
        nc = await connect_with_retry(settings, stop, name=f"actormesh-history-{settings.mesh_name}")
        if nc is None:
            return 0
        try:
            service = HistoryService(settings, nc=nc)
            async with service:
                await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await nc.drain()
    finally:
        await health.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    from actormesh_runtime.commands.options import BUS_OPTIONS, settings_from
    from actormesh_runtime.observability.logging import configure_logging
    from actormesh_runtime.observability.tracing import configure_tracing

    options = {**BUS_OPTIONS, "db": "sqlite_db_path", "http_port": "actor_http_port"}
    settings = settings_from(args, options)
    configure_logging(settings)
    configure_tracing(settings, service="history")
    return asyncio.run(serve(settings))
