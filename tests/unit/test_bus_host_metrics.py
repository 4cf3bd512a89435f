"""The actor host's per-actor metrics around one step (no NATS server: stub connection and message;
the real-server side is tests/integration/test_bus_process.py, which scrapes an actor process)."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import REGISTRY

from actormesh_runtime.bus.host import ActorHost
from actormesh_runtime.catalog import DEFAULT_ROUTE, ActorName, Subjects
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.screening import screen
from actormesh_runtime.settings import RuntimeSettings

ACTOR = ActorName.DECISION_ROUTER


class StubConnection:
    max_payload = 1024 * 1024
    is_connected = True

    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish(self, subject: str, payload: bytes = b"", **_: Any) -> None:
        self.published.append(subject)


class StubJetStream:
    def __init__(self) -> None:
        self._nc = StubConnection()
        self.published: list[str] = []

    async def publish(self, subject: str, payload: bytes, **_: Any) -> object:
        self.published.append(subject)
        return object()


class StubMsg:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reply = "$JS.ACK.actormesh-t.t-decision_router.1.7.7.1733412345000000000.0"
        self.acked = False

    async def ack(self) -> None:
        self.acked = True


class Gate:
    name = ACTOR

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, envelope: Envelope) -> None:
        self.entered.set()
        await self.release.wait()


def in_flight() -> float | None:
    return REGISTRY.get_sample_value("actormesh_in_flight", {"actor": ACTOR.value})


def processed() -> float:
    return REGISTRY.get_sample_value("actormesh_messages_processed_total", {"actor": ACTOR.value}) or 0.0


async def test_in_flight_counts_the_step_being_handled_and_processed_counts_it_done() -> None:
    text, screening = screen("Where is my order ORD-10002?")
    envelope = Envelope.start(
        session_id="s", customer_email="john.doe@example.com", message=text, screening=screening, budget_s=60
    )
    envelope.slip.index = DEFAULT_ROUTE.index(ACTOR)
    actor = Gate()
    js = StubJetStream()
    host = ActorHost(actor, js._nc, js, Subjects("t"), RuntimeSettings())  # type: ignore[arg-type]
    before = processed()
    msg = StubMsg(envelope.to_bytes())

    step = asyncio.create_task(host._process(msg))  # type: ignore[arg-type]
    await actor.entered.wait()
    assert in_flight() == 1.0
    actor.release.set()
    await step

    assert in_flight() == 0.0
    assert processed() == before + 1
    assert msg.acked
    assert js.published == [Subjects("t").actor(DEFAULT_ROUTE[DEFAULT_ROUTE.index(ACTOR) + 1])]
