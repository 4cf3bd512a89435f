"""A replay's answer settles the error escalation of its message's failed run, in the store (a real
SQLite file, events built by the real actors' functions): only an open error escalation, only when the
stored answer is a replay's that answered, in the transaction that stores it, whichever of the two
events is stored last, and once however often either is stored again."""

from __future__ import annotations

from actormesh_runtime.actors.escalation_router import build_escalation
from actormesh_runtime.actors.response_aggregator import build_result
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Decision, DraftResponse, Envelope, ErrorInfo, HistoryEvent
from actormesh_runtime.escalations import REPLAY_SETTLED_NOTE, EscalationRecord, EscalationState
from actormesh_runtime.history.escalations import reclassify_candidates, settle_candidates
from actormesh_runtime.history.store import HistoryStore
from actormesh_runtime.policy.decision import REASON_HUMAN
from actormesh_runtime.replies.result import history_event
from tests.support.envelopes import JOHN, make_envelope
from tests.support.history_events import escalated

ANSWER = "Your order ORD-10002 is on its way with UPS."


def dead_letter(text: str = "Where is my order ORD-10002?", session: str = "s1") -> Envelope:
    """The envelope as the dead letter keeps it: the step that failed, before the error handler ran."""
    envelope = make_envelope(text, JOHN, with_context=True)
    envelope.session_id = session
    return envelope


def failed(envelope: Envelope, replay: int = 0) -> HistoryEvent:
    """The error path's outcome of a run of `envelope`: the apology with an error escalation."""
    run = envelope.model_copy(deep=True)
    run.headers.replay = replay
    run.error = ErrorInfo(actor=ActorName.RESPONSE_GENERATOR, reason="PermanentError: broken", permanent=True)
    run.slip.divert_to_error_handler()
    run.escalation = build_escalation(run, None)
    return history_event(run, build_result(run))


def answered(envelope: Envelope, replay: int) -> HistoryEvent:
    """A replay of `envelope` that answered the customer."""
    run = envelope.model_copy(deep=True)
    run.headers.replay = replay
    run.draft = DraftResponse(text=ANSWER)
    return history_event(run, build_result(run))


async def record(store: HistoryStore, event: HistoryEvent) -> EscalationRecord:
    assert event.result.reference_id is not None
    found = await store.escalations.get(event.result.reference_id)
    assert found is not None
    return found


async def test_a_replay_that_answers_settles_the_open_error_escalation_once(store: HistoryStore) -> None:
    dead = dead_letter()
    first = failed(dead)
    assert first.escalation is not None
    assert first.escalation.reason.value == "error"
    other = escalated(JOHN, "I want a human")  # another message of the conversation
    await store.add_events([other, first])
    assert (await record(store, first)).state is EscalationState.OPEN

    replay = answered(dead, 1)
    assert await store.add_events([replay]) == 2  # the answer replaced, nothing added
    settled = await record(store, first)
    assert settled.state is EscalationState.RESOLVED
    assert settled.resolution_note == REPLAY_SETTLED_NOTE
    assert settled.resolved_at is not None
    assert settled.claimed_by is None
    assert (await record(store, other)).state is EscalationState.OPEN
    assert [r.ref for r in await store.escalations.settled_by_replay([dead.message_id])] == [settled.ref]

    assert await store.add_events([replay]) == 0  # redelivered: nothing changes, not even the time
    assert await store.add_events([first]) == 0  # the failed run's event stored again, late
    assert await record(store, first) == settled
    stored = await store.result(dead.message_id)
    assert stored is not None
    assert stored.result.response == ANSWER


async def test_the_failed_runs_event_stored_after_the_replays_is_settled_as_it_is_stored(
    store: HistoryStore,
) -> None:
    """The history service was behind: the replay's answer is stored first, the error escalation of the
    failed run arrives afterwards. It must not open a case for an answered message."""
    dead = dead_letter()
    await store.add_events([answered(dead, 1)])
    first = failed(dead)
    await store.add_events([first])
    settled = await record(store, first)
    assert (settled.state, settled.resolution_note) == (EscalationState.RESOLVED, REPLAY_SETTLED_NOTE)
    stored = await store.result(dead.message_id)
    assert stored is not None
    assert stored.result.response == ANSWER


async def test_one_batch_with_both_events_settles(store: HistoryStore) -> None:
    dead = dead_letter()
    first = failed(dead)
    await store.add_events([first, answered(dead, 1)])
    assert (await record(store, first)).state is EscalationState.RESOLVED


async def test_a_claimed_escalation_stays_with_its_person(store: HistoryStore) -> None:
    dead = dead_letter()
    first = failed(dead)
    await store.add_events([first])
    ref = (await record(store, first)).ref
    await store.escalations.transition(ref, "claim", "ann")
    await store.escalations.transition(ref, "reply", "ann", "Looking into it.")
    before = await record(store, first)

    await store.add_events([answered(dead, 1)])

    assert await record(store, first) == before
    assert await store.escalations.settled_by_replay([dead.message_id]) == []


async def test_a_replay_that_fails_again_leaves_it_open_until_one_answers(store: HistoryStore) -> None:
    dead = dead_letter()
    first = failed(dead)
    await store.add_events([first])
    await store.add_events([failed(dead, replay=1)])
    assert (await record(store, first)).state is EscalationState.OPEN

    await store.add_events([answered(dead, 2)])
    assert (await record(store, first)).state is EscalationState.RESOLVED
    await store.add_events([failed(dead, replay=1)])  # the failed replay's event, redelivered late
    assert (await record(store, first)).state is EscalationState.RESOLVED


async def test_a_replay_that_hands_over_to_a_person_leaves_it_open(store: HistoryStore) -> None:
    """The customer asked for a person and the handoff broke: the error path opened the escalation. The
    replay hands over properly (same reference): somebody still has to answer."""
    dead = dead_letter("I want to talk to a human")
    dead.decision = Decision(escalate=True, reasons=[REASON_HUMAN])
    first = failed(dead)
    await store.add_events([first])
    run = dead.model_copy(deep=True)
    run.headers.replay = 1
    run.escalation = build_escalation(run, None)
    handoff = history_event(run, build_result(run))
    assert handoff.result.escalated
    assert handoff.result.reference_id == first.result.reference_id
    await store.add_events([handoff])
    assert (await record(store, first)).state is EscalationState.OPEN


async def test_an_apology_without_escalation_settles_nothing(store: HistoryStore) -> None:
    """A replay whose error handler broke too answers with a bare apology (flag `error`, no escalation):
    the message was not answered."""
    dead = dead_letter()
    first = failed(dead)
    await store.add_events([first])
    run = dead.model_copy(deep=True)
    run.headers.replay = 1
    run.slip.divert_to_error_handler()
    apology = history_event(run, build_result(run))
    assert not apology.result.escalated
    assert "error" in apology.result.flags
    await store.add_events([apology])
    assert (await record(store, first)).state is EscalationState.OPEN


async def test_only_error_escalations_are_settled(store: HistoryStore) -> None:
    """An escalation of the message for another reason (the customer asked for a person) is a person's
    work whatever a replay answered."""
    human = escalated(JOHN, "I want a human")
    await store.add_events([human])
    run = make_envelope("I want a human", JOHN, with_context=True, message_id=human.message_id)
    run.session_id = human.session_id
    await store.add_events([answered(run, 1)])
    assert (await record(store, human)).state is EscalationState.OPEN


def test_only_replays_and_error_escalations_ask_for_a_settle() -> None:
    dead = dead_letter()
    plain = answered(dead_letter(), 0)
    assert settle_candidates([plain, escalated(JOHN, "I want a human")]) == []
    assert settle_candidates([failed(dead), answered(dead, 1), plain]) == [dead.message_id]


def handed_over(envelope: Envelope, replay: int) -> HistoryEvent:
    """A replay of `envelope` that handed it over to a person properly (its decision escalates)."""
    run = envelope.model_copy(deep=True)
    run.headers.replay = replay
    run.escalation = build_escalation(run, None)
    return history_event(run, build_result(run))


def asked_for_a_person() -> Envelope:
    dead = dead_letter("I want to talk to a human")
    dead.decision = Decision(escalate=True, reasons=[REASON_HUMAN])
    return dead


async def test_a_replay_that_hands_over_reclassifies_the_error_escalation(store: HistoryStore) -> None:
    """The error path filed the failed handoff as a system error; the replay found the real reason. The
    record must not stay filed as an `error` at the error's priority (its insert of the same ref is
    ignored): it takes the replay's reason, priority, summary and facts, still open, in its place."""
    dead = asked_for_a_person()
    first = failed(dead)
    await store.add_events([first])
    before = await record(store, first)
    assert before.reason.value == "error"
    handoff = handed_over(dead, 1)
    assert handoff.escalation is not None
    assert handoff.escalation.reason.value != "error"

    await store.add_events([handoff])

    after = await record(store, first)
    assert after.reason is handoff.escalation.reason
    assert (after.reasons, after.priority) == (handoff.escalation.reasons, handoff.escalation.priority)
    assert (after.summary, after.facts) == (handoff.escalation.summary, handoff.escalation.facts)
    assert (after.state, after.ref, after.created_at) == (EscalationState.OPEN, before.ref, before.created_at)
    assert [r.ref for r in await store.escalations.reclassified([after.ref])] == [after.ref]
    assert await store.add_events([handoff, first]) == 0  # either redelivered: nothing changes
    assert await record(store, first) == after


async def test_only_an_open_unclaimed_error_escalation_is_reclassified(store: HistoryStore) -> None:
    dead = asked_for_a_person()
    first = failed(dead)
    await store.add_events([first])
    ref = (await record(store, first)).ref
    await store.escalations.transition(ref, "claim", "ann")
    claimed = await record(store, first)
    await store.add_events([handed_over(dead, 1)])
    assert await record(store, first) == claimed  # what the person took on stays
    assert await store.escalations.reclassified([ref]) == []

    human = escalated(JOHN, "I want a human")  # a first run's handoff, not an error
    await store.add_events([human])
    stored = await record(store, human)
    run = make_envelope("I want a human", JOHN, with_context=True, message_id=human.message_id)
    run.session_id = human.session_id
    run.decision = Decision(escalate=True, reasons=["refund_needs_approval"])
    await store.add_events([handed_over(run, 1)])
    assert await record(store, human) == stored


async def test_a_replay_that_fails_again_reclassifies_nothing(store: HistoryStore) -> None:
    dead = asked_for_a_person()
    first = failed(dead)
    await store.add_events([first, failed(dead, replay=1)])
    assert (await record(store, first)).reason.value == "error"
    assert reclassify_candidates([first, failed(dead, replay=1), answered(dead, 2)]) == []
