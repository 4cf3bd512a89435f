"""CPU per call of each rules-mode actor's `handle`, off the bus (no NATS, no HTTP).

Uses the real envelopes captured from the mesh run (one per mix kind), so every actor sees the
data it sees in production. context_retriever is timed on a cache hit (the steady state of the
mix); execution_coordinator is left out (its cost is the HTTP call, see the profile).
"""

from __future__ import annotations

import time
from typing import Any

from actormesh_runtime.actors.registry import build_actor
from actormesh_runtime.catalog import DEFAULT_ROUTE, ERROR_ROUTE, ActorName
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings
from actormesh_runtime.storage.cache import acquire_context_cache, release_context_cache

# Every actor on the default route, then the error handler's escalation_router, in the order they run.
TIMED: tuple[ActorName, ...] = DEFAULT_ROUTE[:-1] + ERROR_ROUTE


class _NullPublisher:
    async def publish_core(self, subject: str, payload: bytes) -> None:
        pass

    async def publish_stream(self, subject: str, payload: bytes, *, msg_id: str) -> bool:
        return True

    async def request(self, subject: str, payload: bytes, *, timeout_s: float) -> bytes:
        # Like a mesh without a history service: escalation lookups fail fast and the actors fall back.
        raise ConnectionError("no responders")


async def actor_costs(captured: dict[str, bytes], calls: int = 300) -> dict[str, Any]:
    """Microseconds per `handle` call, averaged over the captured envelopes."""
    # whole_mesh: the one-process mesh's in-memory cache, pre-filled below (context_retriever's hit path).
    settings = RuntimeSettings(mesh_name="bench-actors")
    deps = ActorDeps(settings=settings, publisher=_NullPublisher(), whole_mesh=True)
    envelopes = [Envelope.from_bytes(raw) for raw in captured.values()]
    cache = acquire_context_cache(deps)
    try:
        for envelope in envelopes:
            if envelope.context is not None and envelope.context.found:
                context = envelope.context.model_copy(update={"errors": []})
                await cache.put(context, (await cache.read(context.email)).generation)
        costs: dict[str, float] = {}
        for name in TIMED:
            actor = build_actor(name, deps)
            await actor.start()
            try:
                costs[name.value] = await _time(actor.handle, envelopes, name, calls)
            finally:
                await actor.stop()
    finally:
        await release_context_cache(deps)
    return {
        "us_per_call": costs,
        "sum_default_route_us": round(sum(costs.values()) - costs["escalation_router"], 1),
    }


async def _time(handle: Any, envelopes: list[Envelope], name: ActorName, calls: int) -> float:
    copies = []
    for envelope in envelopes:
        copy = envelope.model_copy(deep=True)
        if name in copy.slip.steps:
            copy.slip.index = copy.slip.steps.index(name)
        copies.append(copy)
    for copy in copies:  # warm (lazy imports, compiled patterns)
        await handle(copy)
    started = time.process_time()
    for i in range(calls):
        await handle(copies[i % len(copies)])
    return round((time.process_time() - started) / calls * 1e6, 1)
