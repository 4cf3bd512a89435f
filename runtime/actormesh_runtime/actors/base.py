"""The contract between an actor and the bus that hosts it (`actormesh_runtime.bus.host`).

An actor is an object with a `name` and an async `handle(envelope)` that enriches the envelope in
place: it writes its own section, and a router may call `envelope.slip.replace_remaining(...)`.
The host does everything else: decode, deadline check, timeout, trace entry, advancing the slip,
publishing to the next step with a de-duplication id, progress events, acks and redelivery, the
error path and the dead-letter stream.

`handle` may raise `TransientError` (retried by redelivery) or `PermanentError` (error path now).
It must be safe to run twice for the same envelope (at-least-once delivery): side effects carry
idempotency keys derived from `envelope.message_id`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from actormesh_runtime.catalog import ActorName
from actormesh_runtime.resources import ActorDeps

if TYPE_CHECKING:
    from actormesh_runtime.envelope import Envelope


class PlainActor:
    """Base for an actor that opens no client of its own: `start`/`stop` have nothing to do.

    Subclasses set `name`, implement `handle`, and override `__init__`/`start` only when they need to.
    """

    def __init__(self, deps: ActorDeps) -> None:
        self.deps = deps

    async def start(self) -> None:
        """Nothing to open."""

    async def stop(self) -> None:
        """Nothing to close."""


class Actor(Protocol):
    name: ClassVar[ActorName]

    async def start(self) -> None:
        """Open per-process clients (one HTTP client, one cache, ...). Called once."""

    async def stop(self) -> None:
        """Close what `start` opened."""

    async def handle(self, envelope: Envelope) -> None:
        """Enrich `envelope` in place. Raise TransientError / PermanentError on failure."""
