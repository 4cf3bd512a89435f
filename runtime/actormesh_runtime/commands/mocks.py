"""`actormesh mocks`: serve the mock customers, orders and tracking APIs until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TYPE_CHECKING

from actormesh_runtime.catalog import Ports

if TYPE_CHECKING:
    from actormesh_runtime.settings import RuntimeSettings

HELP = "Run the mock customer, orders and tracking APIs."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=None, help="Interface to listen on (default: HOST, else 127.0.0.1)."
    )
    parser.add_argument("--customers-port", type=int, default=Ports.CUSTOMER_API, help="0 = random.")
    parser.add_argument("--orders-port", type=int, default=Ports.ORDERS_API, help="0 = random.")
    parser.add_argument("--tracking-port", type=int, default=Ports.TRACKING_API, help="0 = random.")


async def _serve(args: argparse.Namespace, settings: RuntimeSettings) -> None:
    from actormesh_runtime.mocks.server import MockPorts, serve_mocks
    from actormesh_runtime.observability.logging import configure_logging

    configure_logging(settings)
    host = args.host or settings.host
    ports = MockPorts(args.customers_port, args.orders_port, args.tracking_port)
    handle = await serve_mocks(host, ports)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    for name, value in handle.env().items():
        print(f"{name}={value}", flush=True)
    stopped = asyncio.ensure_future(handle.wait())
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({stopped, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        await handle.stop()


def run(args: argparse.Namespace) -> int:
    from actormesh_runtime.commands import eventloop
    from actormesh_runtime.settings import RuntimeSettings

    settings = RuntimeSettings()
    try:
        eventloop.run(_serve(args, settings), settings.event_loop)
    except OSError as exc:
        print(f"actormesh mocks: {exc}", file=sys.stderr)
        return 1
    return 0
