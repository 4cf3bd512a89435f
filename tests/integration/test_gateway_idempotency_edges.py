"""`Gateway.start_chat` with an `Idempotency-Key` at its edges, on a real nats-server (no actors: these
chats are only published, never answered): a request cancelled mid-way leaves nothing pending, a
publish the stream already had still records the key, racing attempts agree on their session, and a
history store that does not answer does not hold the request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actormesh_runtime.envelope import ProgressEvent
from actormesh_runtime.gateway import service
from actormesh_runtime.gateway.auth import Principal
from actormesh_runtime.gateway.idempotency import IdempotencyRecord, idempotent_message_id
from actormesh_runtime.gateway.inflight import InFlight
from actormesh_runtime.gateway.models import ChatRequest
from actormesh_runtime.gateway.service import Gateway, Submitted
from actormesh_runtime.gateway.ws import ChatSocket
from tests.support.envelopes import final_result
from tests.support.eventually import eventually_async
from tests.support.gateway import JOHN, stack_settings

pytestmark = pytest.mark.integration

ANYONE = Principal()
GUARD_S = 30.0
"""A margin against a hang, not a measurement."""


@pytest.fixture
async def gateway(nats_server: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = Gateway(stack_settings(nats_server, tmp_path))
    await gw.start()
    assert await gw.wait_ready(GUARD_S), "the gateway did not connect"
    try:
        yield gw
    finally:
        await gw.stop()


def ask(text: str = "Where is my order ORD-10002?") -> ChatRequest:
    return ChatRequest(message=text, customer_email=JOHN)


def ignore(_: ProgressEvent) -> None:
    pass


async def start(gw: Gateway, key: str, request: ChatRequest | None = None) -> Submitted:
    outcome = await asyncio.wait_for(
        gw.start_chat(ANYONE, request or ask(), key, session_as_sent=None, on_progress=ignore), GUARD_S
    )
    assert isinstance(outcome, Submitted)
    return outcome


async def test_a_request_cancelled_while_its_key_is_recorded_leaves_nothing_pending(gateway: Gateway) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    written: list[str] = []
    real_set = gateway.sessions.set_keyed

    async def slow_set(message_id: str, record: dict[str, Any], ttl_s: float) -> None:
        entered.set()
        await release.wait()
        await real_set(message_id, record, ttl_s)
        written.append(message_id)

    gateway.sessions.set_keyed = slow_set  # type: ignore[method-assign]
    task = asyncio.ensure_future(
        gateway.start_chat(ANYONE, ask(), "cancelled-1", session_as_sent=None, on_progress=ignore)
    )
    await asyncio.wait_for(entered.wait(), GUARD_S)
    task.cancel()  # the WebSocket closed: ChatSocket.run cancels its chats
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gateway.replies.in_flight == 0, "the cancelled request's wait stayed pending"
    assert not gateway.replies._listeners, "its progress listener stayed registered"
    release.set()
    message_id = idempotent_message_id(JOHN, "cancelled-1")
    # The write finishes on its own: a retry must not publish again.
    await eventually_async(lambda: bool(written), what="the record written after all")
    assert written == [message_id]


async def test_a_publish_the_stream_already_had_still_records_the_key(gateway: Gateway) -> None:
    calls = 0
    real_set = gateway.sessions.set_keyed

    async def lost_once(message_id: str, record: dict[str, Any], ttl_s: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first attempt's write is lost (Redis away at that moment)
            return
        await real_set(message_id, record, ttl_s)

    gateway.sessions.set_keyed = lost_once  # type: ignore[method-assign]
    first = await start(gateway, "lost-record")
    gateway.replies.abandon(first.pending)
    again = await start(gateway, "lost-record")
    gateway.replies.abandon(again.pending)

    assert (first.duplicate, again.duplicate) == (False, True)
    record = await gateway.sessions.get_keyed(idempotent_message_id(JOHN, "lost-record"))
    assert record is not None, "the retry that met the stream's copy did not record the key"
    assert record["session_id"] == first.session_id


async def test_attempts_without_a_session_agree_on_one(gateway: Gateway) -> None:
    async def never_kept(message_id: str, record: dict[str, Any], ttl_s: float) -> None:
        pass  # both attempts get past the record check, as two racing ones do

    gateway.sessions.set_keyed = never_kept  # type: ignore[method-assign]
    first = await start(gateway, "racing")
    second = await start(gateway, "racing")
    for submitted in (first, second):
        gateway.replies.abandon(submitted.pending)
    assert second.duplicate
    assert first.session_id == second.session_id, "an attempt reported a session nothing was sent in"


async def test_a_history_store_that_does_not_answer_does_not_hold_the_request(gateway: Gateway) -> None:
    async def hung(message_id: str) -> Any:
        await asyncio.Event().wait()

    assert gateway.history is not None
    gateway.history.result = hung  # type: ignore[method-assign]
    submitted = await start(gateway, "slow-history")  # the GUARD_S wait_for fails if it hangs
    gateway.replies.abandon(submitted.pending)
    assert submitted.message_id == idempotent_message_id(JOHN, "slow-history")


class StalledSocket:
    """A WebSocket whose `accepted` frame never finishes sending (a client that stopped reading)."""

    def __init__(self) -> None:
        self.stalled = asyncio.Event()

    async def send_text(self, text: str) -> None:
        if '"type": "accepted"' in text:
            self.stalled.set()
            await asyncio.Event().wait()


async def test_a_socket_chat_cancelled_while_accepted_is_sent_leaves_nothing_pending(
    gateway: Gateway,
) -> None:
    socket = StalledSocket()
    chat = ChatSocket(
        socket,  # type: ignore[arg-type]
        gateway,
        ANYONE,
        "sess-stalled",
        session_as_sent="sess-stalled",
        auth=False,
        customers=InFlight(limit=8),
    )
    request = ChatRequest(
        message="Where is my order ORD-10002?", customer_email=JOHN, session_id="sess-stalled"
    )
    task = asyncio.ensure_future(chat._chat(request, "stalled-1"))
    await asyncio.wait_for(socket.stalled.wait(), GUARD_S)
    task.cancel()  # the socket closed: ChatSocket.run cancels its chats
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gateway.replies.in_flight == 0, "the chat's wait stayed pending"
    assert not gateway.replies._listeners


async def test_a_duplicate_attempt_does_not_replace_the_record_of_the_first(gateway: Gateway) -> None:
    message_id = idempotent_message_id(JOHN, "two-sockets")
    now = datetime.now(UTC)
    first = IdempotencyRecord(fingerprint="f", session_id="sess-socket-one", submitted_at=now)
    racing = IdempotencyRecord(fingerprint="f", session_id="sess-socket-two", submitted_at=now)
    await gateway._record_key(message_id, first, only_if_absent=False)
    await gateway._record_key(message_id, racing, only_if_absent=True)  # its publish was a duplicate
    kept = await gateway.sessions.get_keyed(message_id)
    assert kept is not None
    assert kept["session_id"] == "sess-socket-one"


async def test_a_request_cancelled_while_its_publish_is_acknowledged_keeps_its_late_result(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = asyncio.Event()

    async def acked_never(js: Any, subjects: Any, envelope: Any) -> Any:
        await real_submit(js, subjects, envelope)  # in the stream; the acknowledgement never comes
        published.set()
        await asyncio.Event().wait()

    real_submit = service.submit
    monkeypatch.setattr(service, "submit", acked_never)
    task = asyncio.ensure_future(
        gateway.start_chat(ANYONE, ask(), "cancelled-publish", session_as_sent=None, on_progress=ignore)
    )
    await asyncio.wait_for(published.wait(), GUARD_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    message_id = idempotent_message_id(JOHN, "cancelled-publish")
    assert gateway.replies.in_flight == 0
    assert not gateway.replies._listeners
    gateway.replies._on_result(final_result(message_id))  # the chain answers after all
    assert gateway.replies.late_result(message_id) is not None, "GET /api/messages/{id} would 404"
