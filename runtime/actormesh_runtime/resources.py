"""Per-process resources: what the host gives every actor (`ActorDeps`) and the shared clients in it.

The bus host (`bus.process`, `local.mesh`) creates one `ActorDeps` per process and hands it to each
actor it builds. Clients several actors use (the commerce HTTP pool, the context cache, the LLM
client) live in `ActorDeps.extras`, reference-counted: each actor calls `acquire` in `start()` and
`release` in `stop()`, so actors in one process share one connection pool and the last one out
closes it. A low floor: actors, clients and storage import it; it imports nothing of theirs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from actormesh_runtime.settings import RuntimeSettings

_T = TypeVar("_T")


class Publisher(Protocol):
    """What the bus offers actors that must publish or ask themselves (response_aggregator, the
    escalation lookups of context_retriever and escalation_router)."""

    async def publish_core(self, subject: str, payload: bytes) -> None:
        """Fire-and-forget core NATS publish (results, progress)."""

    async def publish_stream(self, subject: str, payload: bytes, *, msg_id: str) -> bool:
        """Acked JetStream publish, de-duplicated by `msg_id`: True when the stream took it as new,
        False when it already held a message with that id (in its duplicate window)."""

    async def request(self, subject: str, payload: bytes, *, timeout_s: float) -> bytes:
        """Core NATS request/reply (escalation lookups); raises on no responder or timeout."""


@dataclass
class ActorDeps:
    """Shared per-process resources, created once by the host and closed by it."""

    settings: RuntimeSettings
    publisher: Publisher
    extras: dict[str, Any] = field(default_factory=dict)
    """Lazily created clients (HTTP, cache, LLM), shared through `acquire`/`release`."""
    whole_mesh: bool = False
    """Every actor of the mesh runs in this process, and only here (`actormesh dev`): state kept in the
    process is then seen by every actor that reads or changes it."""


@dataclass
class _Entry:
    resource: Any
    close: Callable[[], Awaitable[None]]
    users: int = 0


def acquire(
    deps: ActorDeps, key: str, factory: Callable[[], _T], close: Callable[[_T], Awaitable[None]]
) -> _T:
    """The resource stored under `key`, created by `factory` on first use."""
    entry = deps.extras.get(key)
    if not isinstance(entry, _Entry):
        resource = factory()
        entry = _Entry(resource, lambda: close(resource))
        deps.extras[key] = entry
    entry.users += 1
    result: _T = entry.resource
    return result


async def release(deps: ActorDeps, key: str) -> None:
    """Drop one user of `key`; the last one closes the resource."""
    entry = deps.extras.get(key)
    if not isinstance(entry, _Entry):
        return
    entry.users -= 1
    if entry.users <= 0:
        del deps.extras[key]
        await entry.close()
