"""Escalation and approval events for this gateway replica's sockets: agents' live queue and the
replies people send customers.

Every replica subscribes (core NATS) to the event subjects (`Subjects.escalation_event_subjects`),
which the history service publishes after each committed change. Whichever replica an agent acted
through, every replica receives the event and hands it to its own sockets: agent consoles
(`/ws/agent`) get every event as a frame; a customer's chat sockets (`/ws`) get what a person told
that session's customer (an escalation reply, an approval decision or its result), and only when the
record is that customer's. Core NATS is best effort: a socket that was disconnected when the reply
came reads it afterwards from the conversation history (every such reply is a stored turn).

Each socket has an outbox of its own (`Outbox`): the NATS callback only queues the event, and one
task per socket sends. Sent in the callback, one socket that stopped reading (a laptop asleep with the
console open, a dead network path) held every event of the replica — every other agent's queue and
every customer's person reply — until the ping timeout closed it, and NATS, its callback stuck, began
dropping the subscription's messages as a slow consumer. A socket that falls `OUTBOX_FRAMES` behind
misses the events after that (counted), as a disconnected one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from nats.aio.msg import Msg
from prometheus_client import Counter
from pydantic import ValidationError

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.escalations import EscalationEvent
from actormesh_runtime.history.approval_ops import ApprovalEvent

log = logging.getLogger(__name__)
T = TypeVar("T")

OUTBOX_FRAMES = 256
"""Events waiting for one socket: far more than a live console or chat ever has queued."""
DROPPED = Counter(
    "actormesh_gateway_socket_events_dropped_total",
    "Escalation and approval events not sent to a socket that had stopped reading (its outbox was full)",
    ["socket"],
)


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


class Outbox(Generic[T]):
    """Items for one listener, delivered in order by a task of its own; `offer` never waits."""

    def __init__(self, deliver: Callable[[T], Awaitable[None]], kind: str) -> None:
        self._deliver = deliver
        self._kind = kind
        self._queue: asyncio.Queue[T] = asyncio.Queue(OUTBOX_FRAMES)
        self._dropping = False
        """Dropping since the outbox filled: logged once, not once per event of a stuck socket."""
        self._task = asyncio.create_task(self._run(), name=f"escalation-feed-{kind}")

    def offer(self, item: T) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            DROPPED.labels(self._kind).inc()
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "escalation events not sent: the socket stopped reading", extra={"socket": self._kind}
                )

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            self._dropping = False
            try:
                await self._deliver(item)
            except Exception:  # one broken socket must not stop its outbox
                log.exception("escalation event listener failed")

    def close(self) -> None:
        self._task.cancel()


class EscalationFeed:
    """Fans the mesh's escalation and approval events out to this replica's listeners."""

    def __init__(self, subjects: Subjects) -> None:
        self.subjects = subjects
        self._subs: list[Any] = []
        self._agents: dict[AgentListener, Outbox[dict[str, Any]]] = {}
        self._sessions: dict[str, dict[SessionListener, Outbox[PersonReply]]] = {}

    async def start(self, nc: Any) -> None:
        for subject in self.subjects.escalation_event_subjects:
            self._subs.append(await nc.subscribe(subject, cb=self._on_event))

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        outboxes: list[Outbox[Any]] = [*self._agents.values()]
        outboxes += [o for listeners in self._sessions.values() for o in listeners.values()]
        for outbox in outboxes:
            outbox.close()
        self._agents.clear()
        self._sessions.clear()

    def add_agent(self, listener: AgentListener) -> None:
        self._agents[listener] = Outbox(listener, "agent")

    def remove_agent(self, listener: AgentListener) -> None:
        outbox = self._agents.pop(listener, None)
        if outbox is not None:
            outbox.close()

    def add_session(self, session_id: str, listener: SessionListener) -> None:
        self._sessions.setdefault(session_id, {})[listener] = Outbox(listener, "chat")

    def remove_session(self, session_id: str, listener: SessionListener) -> None:
        listeners = self._sessions.get(session_id)
        if listeners is not None:
            outbox = listeners.pop(listener, None)
            if outbox is not None:
                outbox.close()
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
        for agent in self._agents.values():
            agent.offer(frame)
        if told is not None:
            for session in self._sessions.get(told.session_id, {}).values():
                session.offer(told)
