"""`python -m bench.noop_actor NAME`: `actormesh actor NAME` hosting an actor that does nothing (the
aggregator only answers the caller): the processes of bench target `host-only-mp`, which separates
what the actor host and its pull feed cost per hop in the one-process-per-actor layout from what
the actors themselves do (their logic, and their own I/O: Redis, HTTP, the history event)."""

from __future__ import annotations

import sys

from actormesh_runtime.bus.process import ActorProcess, install_stop_signals
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.commands import eventloop
from actormesh_runtime.settings import RuntimeSettings

from .mesh import noop_factory


async def _serve(names: list[ActorName], settings: RuntimeSettings) -> int:
    process = ActorProcess(names, settings, factory=noop_factory, freeze_heap=True)  # as `actormesh actor`
    install_stop_signals(process.stop_event)
    return await process.run()


if __name__ == "__main__":
    config = RuntimeSettings()  # from the environment, as `actormesh actor` reads it
    actors = [ActorName(n) for n in sys.argv[1].split(",")]
    sys.exit(eventloop.run(_serve(actors, config), config.event_loop))
