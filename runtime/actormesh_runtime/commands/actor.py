"""`actormesh actor NAME`: run one actor until SIGTERM (what each actor Deployment runs).

`actormesh actor A,B,...` runs several in one process, chaining their steps in memory (docs/bus.md).
"""

from __future__ import annotations

import argparse

from actormesh_runtime.catalog import ActorName

HELP = "Run one actor (what each actor Deployment runs), or several co-located: NAME,NAME,..."


def actor_names(value: str) -> list[ActorName]:
    """`NAME[,NAME...]` → actor names; an unknown one is a usage error naming the valid ones."""
    names = []
    for part in value.split(","):
        try:
            names.append(ActorName(part.strip()))
        except ValueError:
            valid = ", ".join(a.value for a in ActorName)
            raise argparse.ArgumentTypeError(f"unknown actor {part.strip()!r} (one of: {valid})") from None
    return names


def actor_list(value: str) -> str:
    """The argument as given (`args.name` stays the text a pod's command carries), checked."""
    actor_names(value)
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from actormesh_runtime.commands.options import add_bus_options

    parser.add_argument(
        "name", type=actor_list, metavar="NAME[,NAME...]", help="actor to run, or several co-located"
    )
    add_bus_options(parser)
    parser.add_argument("--http-port", type=int, help="/healthz /readyz /metrics port (0 = random)")


def run(args: argparse.Namespace) -> int:
    from actormesh_runtime.bus.process import run_actor
    from actormesh_runtime.commands import eventloop
    from actormesh_runtime.commands.options import BUS_OPTIONS, settings_from
    from actormesh_runtime.observability.logging import configure_logging
    from actormesh_runtime.observability.tracing import configure_tracing

    settings = settings_from(args, {**BUS_OPTIONS, "http_port": "actor_http_port"})
    configure_logging(settings)
    names = actor_names(args.name)
    configure_tracing(settings, service="+".join(n.value.replace("_", "-") for n in names))
    return eventloop.run(run_actor(names, settings), settings.event_loop)
