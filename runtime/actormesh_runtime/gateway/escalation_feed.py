"""Escalation events for this gateway replica's sockets: agents' live queue and customers' agent replies.

Every replica subscribes (core NATS) to `escalations.created` and `escalations.updated`, which the
history service publishes after each committed change. Whichever replica an agent's reply was posted
to, every replica receives the event and hands it to its own sockets: agent consoles (`/ws/agent`)
get every event; a customer's chat sockets (`/ws`) get `agent_reply` for their session only, and
only when the record is that customer's. Core NATS is best effort: a socket that was disconnected
when the reply came reads it afterwards from the conversation history (the reply is a stored turn).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.msg import Msg
from pydantic import ValidationError

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.escalations import EscalationEvent

log = logging.getLogger(__name__)

Listener = Callable[[EscalationEvent], Awaitable[None]]


class EscalationFeed:
    """Fans the mesh's escalation events out to this replica's listeners."""

    def __init__(self, subjects: Subjects) -> None:
        self.subjects = subjects
        self._subs: list[Any] = []
        self._agents: set[Listener] = set()
        self._sessions: dict[str, set[Listener]] = {}

    async def start(self, nc: Any) -> None:
        for subject in self.subjects.escalation_event_subjects:
            self._subs.append(await nc.subscribe(subject, cb=self._on_event))

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()

    def add_agent(self, listener: Listener) -> None:
        self._agents.add(listener)

    def remove_agent(self, listener: Listener) -> None:
        self._agents.discard(listener)

    def add_session(self, session_id: str, listener: Listener) -> None:
        self._sessions.setdefault(session_id, set()).add(listener)

    def remove_session(self, session_id: str, listener: Listener) -> None:
        listeners = self._sessions.get(session_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._sessions[session_id]

    @property
    def listeners(self) -> int:
        return len(self._agents) + sum(len(s) for s in self._sessions.values())

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = EscalationEvent.model_validate_json(msg.data)
        except ValidationError:
            log.warning("invalid escalation event ignored", extra={"subject": msg.subject})
            return
        targets = list(self._agents)
        if event.change == "replied":
            targets += list(self._sessions.get(event.escalation.session_id, ()))
        for listener in targets:
            try:
                await listener(event)
            except Exception:  # one broken socket must not starve the others
                log.exception("escalation event listener failed")
