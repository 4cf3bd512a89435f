"""`actormesh gateway`: serve the HTTP/WebSocket gateway until SIGTERM/SIGINT (each gateway replica).

NATS may come up after the gateway: /api/health answers at once, /api/ready says 503 until NATS is
connected and the stream exists.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actormesh_runtime.settings import RuntimeSettings

HELP = "Run the HTTP/WebSocket gateway."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from actormesh_runtime.commands.options import add_bus_options

    parser.add_argument("--host", help="listen address (default: $HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: $PORT or 8000)")
    add_bus_options(parser)


async def serve(settings: RuntimeSettings) -> int:
    from actormesh_runtime.bus.process import install_stop_signals
    from actormesh_runtime.gateway.app import create_app
    from actormesh_runtime.gateway.server import GatewayServer
    from actormesh_runtime.heap import freeze_after_start

    stop = asyncio.Event()
    install_stop_signals(stop)
    graceful = int(settings.request_timeout_s) + 5  # a rolling update lets waiting chats finish
    app = create_app(settings)  # AuthNotConfigured: refuse before binding anything
    server = GatewayServer(
        app,
        host=settings.host,
        port=settings.port,
        graceful_shutdown_s=graceful,
    )
    async with server:
        freeze_after_start("gateway")  # listening; not ready before NATS is connected
        url = server.url
        print(f"ActorMesh gateway on {url} (chat: {url}/widget, agent console: {url}/console)", flush=True)
        await stop.wait()
    return 0


def run(args: argparse.Namespace) -> int:
    from actormesh_runtime.commands import eventloop
    from actormesh_runtime.commands.options import BUS_OPTIONS, settings_from
    from actormesh_runtime.gateway.auth import AuthNotConfigured
    from actormesh_runtime.observability.logging import configure_logging
    from actormesh_runtime.observability.tracing import configure_tracing

    settings = settings_from(args, {**BUS_OPTIONS, "host": "host", "port": "port"})
    configure_logging(settings)
    configure_tracing(settings, service="gateway")
    try:
        return eventloop.run(serve(settings), settings.event_loop)
    except AuthNotConfigured as exc:
        print(f"actormesh gateway: refusing to start: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"actormesh gateway: cannot serve on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
