"""Escalation refs and approval ids are 8 hex digits of SHA-256: two messages (two idempotency keys)
may share one. The store once inserted records `INSERT OR IGNORE` on that id, so the second case was
dropped without a word (the customer was told a person would follow up; nobody ever saw it). Now the
store files it under its next candidate id (logged, counted), the history service says whose record
holds a ref the router asks about, and the router takes the next candidate before quoting one.

The colliding inputs are real SHA-256 collisions of the first 8 hex digits, found by brute force
(a birthday search: ~65,000 tries) and hard-coded here; no hash is patched."""

from __future__ import annotations

import logging
import re

import pytest
from prometheus_client import REGISTRY

from actormesh_runtime.actors.escalation_router import EscalationRouter
from actormesh_runtime.approvals import APPROVAL_ID_PATTERN, approval_id
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.envelope import (
    Decision,
    Envelope,
    HistoryEvent,
    Sentiment,
    SentimentLabel,
    Urgency,
)
from actormesh_runtime.escalations import (
    CURSOR_PATTERN,
    REF_PATTERN,
    EscalationLookup,
    LookupAnswer,
    find_refs,
)
from actormesh_runtime.history.erasure import erase_customer
from actormesh_runtime.history.escalation_ops import EscalationOps
from actormesh_runtime.history.store import HistoryStore
from actormesh_runtime.policy.decision import REASON_HUMAN
from actormesh_runtime.priority import Priority
from tests.support.collisions import KEY_A, KEY_B, MSG_A, MSG_B, candidate, hex8
from tests.support.envelopes import JANE, JOHN, FakePublisher, make_deps, make_envelope
from tests.support.history_events import escalated, filed


def _collisions(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


HANDOFF = "I want to speak to a person"


def _johns() -> HistoryEvent:
    """John's handoff, message MSG_A: its ref is the one both messages derive first."""
    return escalated(JOHN, HANDOFF, session="s-a", message_id=MSG_A)


def _janes() -> HistoryEvent:
    """Jane's handoff, message MSG_B: its first ref collides with John's."""
    return escalated(JANE, HANDOFF, session="s-b", message_id=MSG_B)


def _handoff(email: str, message_id: str, session: str) -> Envelope:
    envelope = make_envelope(HANDOFF, email, with_context=True)
    envelope.message_id = message_id
    envelope.session_id = session
    envelope.sentiment = Sentiment(label=SentimentLabel.NEUTRAL, score=0.0, urgency=Urgency.LOW)
    envelope.decision = Decision(escalate=True, reasons=[REASON_HUMAN])
    return envelope


def test_the_hard_coded_inputs_really_collide() -> None:
    assert MSG_A != MSG_B
    assert hex8(MSG_A) == hex8(MSG_B) == "d7464c03"
    assert KEY_A != KEY_B
    assert hex8(KEY_A) == hex8(KEY_B) == "5d634f40"
    first = _johns().escalation
    second = _janes().escalation
    assert first is not None
    assert second is not None
    assert first.ref == second.ref == "ESC-d7464c03"
    assert approval_id(KEY_A) == approval_id(KEY_B) == "APR-5d634f40"


# ---------------------------------------------------------------- the store keeps both cases


@pytest.mark.parametrize("one_batch", [False, True], ids=["two-batches", "one-batch"])
async def test_a_colliding_escalation_is_stored_under_the_next_ref_not_dropped(
    store: HistoryStore,
    one_batch: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = (
        _johns(),
        _janes(),
    )
    quoted = "ESC-d7464c03"
    before = _collisions("actormesh_escalation_ref_collisions_total")
    with caplog.at_level(logging.ERROR):
        if one_batch:
            await store.add_events([first, second])
        else:
            await store.add_events([first])
            await store.add_events([second])

    page, _ = await store.escalations.page(None, 50, None)
    by_message = {r.message_id: r for r in page}
    assert set(by_message) == {MSG_A, MSG_B}, "the second case was dropped"
    assert by_message[MSG_A].ref == quoted
    moved = candidate("ESC-", MSG_B, 1)
    assert by_message[MSG_B].ref == moved
    assert by_message[MSG_B].customer.email == JANE
    # The event is renamed too: the announcement after the write names the record as stored.
    assert second.escalation is not None
    assert second.escalation.ref == moved
    assert _collisions("actormesh_escalation_ref_collisions_total") == before + 1
    [logged] = [r for r in caplog.records if "escalation ref collision" in r.getMessage()]
    assert (logged.message_id, logged.held_by_message_id, logged.stored_ref) == (MSG_B, MSG_A, moved)  # type: ignore[attr-defined]

    # A redelivery of the moved case (its event still says the first ref) adds nothing, counts nothing.
    again = _janes()
    assert await store.add_events([again]) == 0
    assert again.escalation is not None
    assert again.escalation.ref == moved
    page, _ = await store.escalations.page(None, 50, None)
    assert sorted(r.ref for r in page) == sorted([quoted, moved])
    assert _collisions("actormesh_escalation_ref_collisions_total") == before + 1
    assert await store.escalations.unannounced([moved]) != []


async def test_a_moved_case_stays_one_case_when_the_ref_it_lost_is_free_again(
    store: HistoryStore,
) -> None:
    """Jane's case was moved to her second ref because John's held the first; John is then erased (or
    his conversation pruned), so the first ref is free. Jane's event again (a redelivery, or a dead-letter
    replay still quoting the first ref) must find her stored case, not file a second one under the freed
    ref (two cases of one message in the queue, and a replay's reclassification missing the open one)."""
    await store.add_events([_johns()])
    await store.add_events([_janes()])
    moved = candidate("ESC-", MSG_B, 1)
    await erase_customer(store, JOHN)

    again = _janes()
    assert again.escalation is not None
    assert again.escalation.ref == "ESC-d7464c03"
    await store.add_events([again])

    page, _ = await store.escalations.page(None, 50, None)
    assert [(r.message_id, r.ref) for r in page] == [(MSG_B, moved)]
    assert again.escalation.ref == moved


async def test_the_moved_customer_never_sees_the_other_case_by_the_quoted_ref(
    store: HistoryStore,
) -> None:
    """Jane was told ESC-d7464c03 (her reply was built before the store knew); John's record holds it.
    Asking about it she learns nothing of John's case (like an unknown ref); her own is found under
    the ref it was stored under, which an agent sees in the queue (and in her conversation)."""
    await store.add_events(
        [
            _johns(),
            _janes(),
        ]
    )
    ops = EscalationOps(store, Subjects("unit"))
    moved = candidate("ESC-", MSG_B, 1)
    question = EscalationLookup(op="status", refs=["ESC-d7464c03", moved], customer_email=JANE)
    answer = await ops.lookup(question.model_dump_json().encode())
    quoted, own = answer.followups
    assert (quoted.ref, quoted.found, quoted.agent) == ("ESC-d7464c03", False, None)
    assert (own.ref, own.found) == (moved, True)


async def test_the_queue_answer_says_whose_record_holds_the_ref(store: HistoryStore) -> None:
    await store.add_events([_johns()])
    ops = EscalationOps(store, Subjects("unit"))

    async def ask(ref: str) -> LookupAnswer:
        question = EscalationLookup(op="queue", priority=Priority.NORMAL, refs=[ref])
        return await ops.lookup(question.model_dump_json().encode())

    assert (await ask("ESC-d7464c03")).ref_message_id == MSG_A
    assert (await ask(candidate("ESC-", MSG_B, 1))).ref_message_id is None


async def test_a_colliding_approval_request_is_stored_under_the_next_id_not_dropped(
    store: HistoryStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = filed(JOHN, "ORD-10001", session="s-a", key=KEY_A)
    second = filed(JOHN, "ORD-10002", session="s-b", key=KEY_B)
    assert [a.id for a in first.approvals] == [a.id for a in second.approvals] == ["APR-5d634f40"]
    before = _collisions("actormesh_approval_id_collisions_total")
    with caplog.at_level(logging.ERROR):
        await store.add_events([first])
        await store.add_events([second])

    records, _ = await store.approvals.page(None, 50, None)
    by_key = {r.idempotency_key: r for r in records}
    assert set(by_key) == {KEY_A, KEY_B}, "the second request was dropped"
    moved = candidate("APR-", KEY_B, 1)
    assert (by_key[KEY_A].id, by_key[KEY_B].id) == ("APR-5d634f40", moved)
    assert by_key[KEY_B].order.order_id == "ORD-10002"
    assert [a.id for a in second.approvals] == [moved]  # renamed for the announcement
    assert _collisions("actormesh_approval_id_collisions_total") == before + 1
    assert any("approval id collision" in r.getMessage() for r in caplog.records)

    again = filed(JOHN, "ORD-10002", session="s-b", key=KEY_B)  # redelivered: nothing new, nothing counted
    await store.add_events([again])
    records, _ = await store.approvals.page(None, 50, None)
    assert sorted(r.id for r in records) == sorted(["APR-5d634f40", moved])
    assert [a.id for a in again.approvals] == [moved]
    assert _collisions("actormesh_approval_id_collisions_total") == before + 1


async def test_a_moved_request_stays_one_request_when_the_id_it_lost_is_free_again(
    store: HistoryStore,
) -> None:
    """As for escalations: the request that held the first id is erased, then the moved request's event
    comes again (quoting the first id). It must find its stored request, not file a second one (two
    pending requests for one action)."""
    await store.add_events([filed(JANE, "ORD-10001", session="s-a", key=KEY_A)])
    await store.add_events([filed(JOHN, "ORD-10002", session="s-b", key=KEY_B)])
    moved = candidate("APR-", KEY_B, 1)
    await erase_customer(store, JANE)

    again = filed(JOHN, "ORD-10002", session="s-b", key=KEY_B)
    assert [a.id for a in again.approvals] == ["APR-5d634f40"]
    await store.add_events([again])

    async with store.reading() as db, db.execute("SELECT id FROM approvals") as cursor:
        stored = [row[0] for row in await cursor.fetchall()]
    assert stored == [moved]
    assert [a.id for a in again.approvals] == [moved]


# ---------------------------------------------------------------- the router avoids quoting a taken ref


def _history_holding(holders: dict[str, str]) -> FakePublisher:
    """A "history service" whose records' refs are `holders` (ref → message id)."""

    def answer(_subject: str, payload: bytes) -> bytes:
        [ref] = EscalationLookup.model_validate_json(payload).refs
        return LookupAnswer(ref_message_id=holders.get(ref)).model_dump_json(exclude_none=True).encode()

    return FakePublisher(answer=answer)


async def test_the_router_quotes_the_next_ref_when_the_first_is_another_messages() -> None:
    publisher = _history_holding({"ESC-d7464c03": MSG_A})
    envelope = _handoff(JANE, MSG_B, "s-b")
    await EscalationRouter(make_deps(publisher=publisher)).handle(envelope)
    esc = envelope.escalation
    assert esc is not None
    assert esc.record is not None
    assert esc.reply is not None
    moved = candidate("ESC-", MSG_B, 1)
    assert esc.reference_id == esc.record.ref == moved
    assert moved in esc.reply
    assert "ESC-d7464c03" not in esc.reply
    asked = [EscalationLookup.model_validate_json(q).refs for _s, q in publisher.requests]
    assert asked == [["ESC-d7464c03"], [moved]]


async def test_a_rerun_of_the_chain_quotes_the_same_ref() -> None:
    moved = candidate("ESC-", MSG_B, 1)
    publisher = _history_holding({"ESC-d7464c03": MSG_A, moved: MSG_B})  # the first run's is stored
    envelope = _handoff(JANE, MSG_B, "s-b")
    await EscalationRouter(make_deps(publisher=publisher)).handle(envelope)
    assert envelope.escalation is not None
    assert envelope.escalation.reference_id == moved


@pytest.mark.parametrize("answers", [True, False], ids=["older-history-service", "no-answer"])
async def test_without_a_word_on_the_holder_the_first_ref_is_quoted(answers: bool) -> None:
    """An older history service says nothing of the holder; no answer at all says nothing either. The
    first ref is quoted (today's behaviour) and the store keeps the record under a free one."""
    publisher = _history_holding({}) if answers else FakePublisher()
    envelope = _handoff(JANE, MSG_B, "s-b")
    await EscalationRouter(make_deps(publisher=publisher)).handle(envelope)
    assert envelope.escalation is not None
    assert envelope.escalation.reference_id == "ESC-d7464c03"


# ---------------------------------------------------------------- longer ids accepted (two-phase rollout)


@pytest.mark.parametrize("digits", [8, 12, 16])
def test_refs_and_ids_of_8_to_16_hex_digits_are_accepted(digits: int) -> None:
    tail = "0123456789abcdef"[:digits]
    assert re.fullmatch(REF_PATTERN, f"ESC-{tail}")
    assert re.fullmatch(APPROVAL_ID_PATTERN, f"APR-{tail}")
    assert re.fullmatch(CURSOR_PATTERN, f"1|2026-01-02T03:04:05.000006Z|ESC-{tail}")
    assert find_refs(f"about ESC-{tail.upper()}, please") == [f"ESC-{tail}"]


@pytest.mark.parametrize("tail", ["0123456", "0123456789abcdef0"], ids=["7", "17"])
def test_refs_and_ids_outside_8_to_16_are_refused(tail: str) -> None:
    assert not re.fullmatch(REF_PATTERN, f"ESC-{tail}")
    assert not re.fullmatch(APPROVAL_ID_PATTERN, f"APR-{tail}")
    assert find_refs(f"about ESC-{tail}") == []
