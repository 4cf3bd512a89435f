"""`Idempotency-Key`: the derived message id, the request fingerprint, the record's place in the session
store, and the reply router serving two waiters of one message id (a retry while the first waits)."""

from __future__ import annotations

import asyncio
import re

import pytest

from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.envelope import ProgressEvent, new_message_id
from actormesh_runtime.gateway.idempotency import (
    idempotent_message_id,
    idempotent_session_id,
    request_fingerprint,
    valid_key,
)
from actormesh_runtime.gateway.models import SESSION_RE, ChatRequest
from actormesh_runtime.gateway.reply_router import ReplyRouter
from actormesh_runtime.ids import digest_hex
from actormesh_runtime.settings import RuntimeSettings
from actormesh_runtime.storage.session import open_session_store
from tests.support.envelopes import final_result

MESSAGE_ID = re.compile(r"msg-[a-f][0-9a-f]{30}[a-f]")


def test_the_derived_message_id_is_stable_customer_scoped_and_shaped_like_a_random_one() -> None:
    first = idempotent_message_id("john.doe@example.com", "k-1")
    assert first == idempotent_message_id("john.doe@example.com", "k-1"), "every attempt, every replica"
    assert first == idempotent_message_id("  John.Doe@EXAMPLE.com\n", "k-1"), "email normalised"
    assert first != idempotent_message_id("jane.smith@example.com", "k-1"), "another customer's key"
    assert first != idempotent_message_id("john.doe@example.com", "k-2")
    assert MESSAGE_ID.fullmatch(first), first
    assert MESSAGE_ID.fullmatch(new_message_id()), "the same format as a random message id"


def test_derived_hex_never_holds_a_card_length_digit_run() -> None:
    for n in range(3000):
        value = digest_hex(str(n).encode())
        assert re.fullmatch(r"[a-f][0-9a-f]{30}[a-f]", value), value
        assert not re.search(r"[0-9]{13}", value), value


def test_the_fingerprint_covers_message_customer_and_session_as_sent() -> None:
    request = ChatRequest(message="Where is ORD-10002?", customer_email="John.Doe@example.com")
    same = ChatRequest(message="Where is ORD-10002?", customer_email="john.doe@example.com ")
    other = ChatRequest(message="Where is ORD-10003?", customer_email="john.doe@example.com")
    assert request_fingerprint(request, None) == request_fingerprint(same, None)
    assert request_fingerprint(request, None) == request_fingerprint(request, "")
    assert request_fingerprint(request, None) != request_fingerprint(other, None)
    assert request_fingerprint(request, None) != request_fingerprint(request, "sess-1")


@pytest.mark.parametrize("key", ["", "a" * 129, "with space", "ünï", "a/b", 7, None])
def test_a_malformed_key_is_refused(key: object) -> None:
    assert not valid_key(key)


@pytest.mark.parametrize("key", ["a", "a" * 128, "0f8fad5b-d9cb-469f-a165-70867728950e", "x_y.z:1"])
def test_a_well_formed_key_is_taken(key: str) -> None:
    assert valid_key(key)


async def test_a_key_record_never_shares_a_key_with_a_session() -> None:
    store = open_session_store(RuntimeSettings(mesh_name="m"))
    await store.set("idempotency:msg-a", {"customer_email": "a@b.co"})
    await store.set_keyed("msg-a", {"fingerprint": "f"}, ttl_s=60)
    assert await store.get("idempotency:msg-a") == {"customer_email": "a@b.co"}
    assert await store.get_keyed("msg-a") == {"fingerprint": "f"}
    assert await store.get("msg-a") is None
    await store.close()


async def test_two_waiters_of_one_message_both_get_the_result() -> None:
    router = ReplyRouter(Subjects("m"), "gw-1")
    first = router.expect("msg-a", "a@b.co")
    second = router.expect("msg-a", "a@b.co")
    waits = asyncio.gather(router.wait(first, 5), router.wait(second, 5))
    await asyncio.sleep(0)
    router._on_result(final_result("msg-a"))
    answers = await waits
    assert [a.message_id for a in answers] == ["msg-a", "msg-a"]
    assert router.in_flight == 0


async def test_one_waiter_leaving_does_not_drop_the_other() -> None:
    router = ReplyRouter(Subjects("m"), "gw-1")
    first = router.expect("msg-a", "a@b.co")
    second = router.expect("msg-a", "a@b.co")
    with pytest.raises(TimeoutError):
        await router.wait(first, 0.01)  # the first request's client gave up
    router.abandon(first)  # abandoning twice changes nothing
    assert router.in_flight == 1
    assert router.late_result("msg-a") is None
    router._on_result(final_result("msg-a"))
    assert (await router.wait(second, 5)).message_id == "msg-a"
    assert router.in_flight == 0


async def test_the_result_is_kept_for_later_only_once_every_waiter_left() -> None:
    router = ReplyRouter(Subjects("m"), "gw-1")
    first = router.expect("msg-a", "a@b.co")
    second = router.expect("msg-a", "a@b.co")
    router.abandon(first)
    router.abandon(second)
    router._on_result(final_result("msg-a"))
    assert router.late_result("msg-a") is not None


async def test_each_waiter_keeps_its_own_progress_listener() -> None:
    router = ReplyRouter(Subjects("m"), "gw-1")
    seen_first: list[ProgressEvent] = []
    seen_second: list[ProgressEvent] = []
    router.listen("msg-a", seen_first.append)
    router.listen("msg-a", seen_second.append)
    event = ProgressEvent(message_id="msg-a", actor=ActorName.SENTIMENT_ANALYZER, status="done", ms=1)
    router._on_progress(event)
    router.unlisten("msg-a", seen_first.append)
    router._on_progress(event)
    assert (len(seen_first), len(seen_second)) == (1, 2)


def test_the_derived_session_is_stable_and_with_auth_on_needs_the_secret() -> None:
    message_id = idempotent_message_id("john.doe@example.com", "k-1")
    anonymous = idempotent_session_id(message_id, None)
    keyed = idempotent_session_id(message_id, "s" * 32)
    assert anonymous == idempotent_session_id(message_id, None)
    assert keyed == idempotent_session_id(message_id, "s" * 32)
    # Computable from an email and a guessed key only without a secret: another customer could
    # otherwise claim the session first and have every attempt refused.
    assert keyed not in (anonymous, idempotent_session_id(message_id, "t" * 32))
    assert SESSION_RE.fullmatch(keyed)
