"""Escalation and approval events for this gateway replica's sockets: agents' live queue and the
replies people send customers.

Every replica subscribes (core NATS) to the event subjects (`Subjects.escalation_event_subjects`),
which the history service publishes after each committed change. Whichever replica an agent acted
through, every replica receives the event and hands it to its own sockets: agent consoles
(`/ws/agent`) get every event as a frame; a customer's chat sockets (`/ws`) get what a person told
that session's customer (an escalation reply, an approval decision or its result), and only when the
record is that customer's. Core NATS is best effort: a socket that was disconnected when the reply
came reads it afterwards from the conversation history (every such reply is a stored turn).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.aio.msg import Msg
from pydantic import ValidationError

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.escalations import EscalationEvent
from actormesh_runtime.history.approval_ops import ApprovalEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PersonReply:
    """What a person told a customer, for that session's sockets."""

    session_id: str
    customer_email: str
    ref: str
    agent: str
    text: str
    at: datetime


AgentListener = Callable[[dict[str, Any]], Awaitable[None]]
SessionListener = Callable[[PersonReply], Awaitable[None]]


def _parse(msg: Msg, subjects: Subjects) -> tuple[dict[str, Any], PersonReply | None] | None:
    """The console frame of an event and the customer reply in it, if any (None: not an event)."""
    try:
        if msg.subject in (subjects.approvals_created, subjects.approvals_updated):
            approval = ApprovalEvent.model_validate_json(msg.data)
            frame: dict[str, Any] = {
                "type": approval.type,
                "change": approval.change,
                "approval": approval.approval.model_dump(mode="json"),
            }
            record, reply = approval.approval, approval.reply
            told = (
                PersonReply(
                    record.session_id,
                    record.customer_email,
                    record.ref or record.id,
                    reply.agent,
                    reply.text,
                    reply.at,
                )
                if reply is not None
                else None
            )
            return frame, told
        event = EscalationEvent.model_validate_json(msg.data)
    except ValidationError:
        log.warning("invalid escalation event ignored", extra={"subject": msg.subject})
        return None
    frame = {
        "type": event.type,
        "change": event.change,
        "escalation": event.escalation.model_dump(mode="json"),
    }
    esc, reply = event.escalation, event.reply
    told = (
        PersonReply(esc.session_id, esc.customer.email, esc.ref, reply.agent, reply.text, reply.at)
        if reply is not None and event.change == "replied"
        else None
    )
    return frame, told


class EscalationFeed:
    """Fans the mesh's escalation and approval events out to this replica's listeners."""

    def __init__(self, subjects: Subjects) -> None:
        self.subjects = subjects
        self._subs: list[Any] = []
        self._agents: set[AgentListener] = set()
        self._sessions: dict[str, set[SessionListener]] = {}

    async def start(self, nc: Any) -> None:
        for subject in self.subjects.escalation_event_subjects:
            self._subs.append(await nc.subscribe(subject, cb=self._on_event))

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()

    def add_agent(self, listener: AgentListener) -> None:
        self._agents.add(listener)

    def remove_agent(self, listener: AgentListener) -> None:
        self._agents.discard(listener)

    def add_session(self, session_id: str, listener: SessionListener) -> None:
        self._sessions.setdefault(session_id, set()).add(listener)

    def remove_session(self, session_id: str, listener: SessionListener) -> None:
        listeners = self._sessions.get(session_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._sessions[session_id]

    @property
    def listeners(self) -> int:
        return len(self._agents) + sum(len(s) for s in self._sessions.values())

    async def _on_event(self, msg: Msg) -> None:
        parsed = _parse(msg, self.subjects)
        if parsed is None:
            return
        frame, told = parsed
        for agent in list(self._agents):
            await self._call(agent(frame))
        if told is not None:
            for session in list(self._sessions.get(told.session_id, ())):
                await self._call(session(told))

    @staticmethod
    async def _call(delivery: Awaitable[None]) -> None:
        try:
            await delivery
        except Exception:  # one broken socket must not starve the others
            log.exception("escalation event listener failed")
