"""`actormesh actor NAME`: run one actor until SIGTERM (what each actor Deployment runs)."""

from __future__ import annotations

import argparse
import asyncio

from actormesh_runtime.catalog import ActorName

HELP = "Run one actor (what each actor Deployment runs)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from actormesh_runtime.commands.options import add_bus_options

    parser.add_argument("name", choices=[a.value for a in ActorName], help="actor to run")
    add_bus_options(parser)
    parser.add_argument("--http-port", type=int, help="/healthz /readyz /metrics port (0 = random)")


def run(args: argparse.Namespace) -> int:
    from actormesh_runtime.bus.process import run_actor
    from actormesh_runtime.commands.options import BUS_OPTIONS, settings_from
    from actormesh_runtime.observability.logging import configure_logging
    from actormesh_runtime.observability.tracing import configure_tracing

    settings = settings_from(args, {**BUS_OPTIONS, "http_port": "actor_http_port"})
    configure_logging(settings)
    configure_tracing(settings, service=args.name.replace("_", "-"))
    return asyncio.run(run_actor(ActorName(args.name), settings))
