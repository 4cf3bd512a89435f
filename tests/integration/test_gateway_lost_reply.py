"""Found by the soak: a result published while a gateway replica was reconnecting to a restarted
NATS reached nobody (results are core NATS), so its caller waited all of REQUEST_TIMEOUT_S and got a
504 although the conversation was answered and stored. The gateway now also asks the history store
while it waits, so such a caller gets the stored answer within seconds."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import httpx
import pytest

from actormesh_runtime.bus.process import default_factory
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.gateway import service
from actormesh_runtime.resources import ActorDeps, Publisher
from tests.support.gateway import JOHN, gateway_stack, stack_settings

pytestmark = pytest.mark.integration


class ResultsLost:
    """The aggregator's publisher with every core-NATS publish (the result) lost on the way."""

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self.dropped = 0

    async def publish_core(self, subject: str, payload: bytes) -> None:
        self.dropped += 1

    async def publish_stream(self, subject: str, payload: bytes, *, msg_id: str) -> bool:
        return await self.inner.publish_stream(subject, payload, msg_id=msg_id)


async def test_a_result_lost_on_the_wire_is_answered_from_the_history_store(
    nats_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "HISTORY_CHECK_S", 1.0, raising=False)
    lossy: list[ResultsLost] = []

    def factory(name: ActorName, deps: ActorDeps):  # type: ignore[no-untyped-def]
        if name is ActorName.RESPONSE_AGGREGATOR:
            lossy.append(ResultsLost(deps.publisher))
            deps = dataclasses.replace(deps, publisher=lossy[-1])
        return default_factory(name, deps)

    settings = stack_settings(nats_server, tmp_path, request_timeout_s=20.0)
    async with gateway_stack(settings, factory=factory) as stack, httpx.AsyncClient(timeout=30) as client:
        started = time.monotonic()
        reply = await client.post(
            f"{stack.url}/api/chat",
            json={"message": "Where is my order ORD-10002?", "customer_email": JOHN},
        )
        waited = time.monotonic() - started

    assert lossy[0].dropped >= 1, "the result really was lost on the wire"
    assert reply.status_code == 200, reply.text
    assert "ORD-10002" in reply.json()["response"]
    assert waited < 15, "answered from the store well before REQUEST_TIMEOUT_S (20 s)"
