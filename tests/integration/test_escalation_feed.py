"""The gateway's escalation feed on a real nats-server: one socket that stopped reading (a console left
open on a sleeping laptop) holds neither the NATS callback nor any other socket's events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from prometheus_client import REGISTRY

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.escalations import AgentReply, EscalationEvent
from actormesh_runtime.gateway.escalation_feed import OUTBOX_FRAMES, EscalationFeed, PersonReply
from tests.support.envelopes import JOHN
from tests.support.eventually import eventually_async
from tests.support.history_events import escalated

pytestmark = pytest.mark.integration

EVENTS = OUTBOX_FRAMES + 44


def dropped(kind: str) -> float:
    return REGISTRY.get_sample_value("actormesh_gateway_socket_events_dropped_total", {"socket": kind}) or 0.0


async def test_a_socket_that_stopped_reading_holds_no_other_socket(
    nats_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    subjects = Subjects("feed-test")
    ticket = escalated(JOHN, "I want a human", session="s-feed").escalation
    assert ticket is not None
    nc = await nats.connect(nats_server)
    feed = EscalationFeed(subjects)
    await feed.start(nc)
    frames: list[dict[str, Any]] = []
    replies: list[PersonReply] = []

    async def asleep(frame: dict[str, Any]) -> None:  # its send never completes
        await asyncio.Event().wait()

    async def console(frame: dict[str, Any]) -> None:
        frames.append(frame)

    async def chat(reply: PersonReply) -> None:
        replies.append(reply)

    before = dropped("agent")
    feed.add_agent(asleep)
    feed.add_agent(console)
    feed.add_session("s-feed", chat)
    try:
        for n in range(EVENTS):
            reply = AgentReply(agent="ann", text=f"reply {n}", at=datetime.now(UTC))
            event = EscalationEvent(
                type="escalation.updated", change="replied", escalation=ticket, reply=reply
            )
            await nc.publish(subjects.escalations_updated, event.model_dump_json().encode())
        await nc.flush()

        async def all_delivered() -> bool:
            return len(frames) == EVENTS and len(replies) == EVENTS

        await eventually_async(all_delivered, what="every event at the reading sockets", timeout_s=30)
        assert [r.text for r in replies] == [f"reply {n}" for n in range(EVENTS)]  # in order
        # The sleeping console took one event and holds it; its outbox filled and the rest were dropped.
        assert dropped("agent") - before == EVENTS - 1 - OUTBOX_FRAMES
        # Said once for the stuck socket, not once per event it missed.
        warned = [r for r in caplog.records if r.getMessage().startswith("escalation events not sent")]
        assert len(warned) == 1
    finally:
        feed.remove_agent(asleep)
        feed.remove_agent(console)
        feed.remove_session("s-feed", chat)
        await feed.stop()
        await nc.close()
