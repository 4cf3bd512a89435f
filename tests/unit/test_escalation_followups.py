"""Follow-ups: "What's happening with ESC-…?" is answered from the record, only for its owner.

context_retriever asks the history service (here a recording stand-in answering like it) about the
references the message names; decision_router opens no second escalation for a question about a
pending one; the template quotes the state and the agent's last reply, and never another customer's.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actormesh_runtime.actors.context_retriever import ContextRetriever
from actormesh_runtime.envelope import Envelope, Intent
from actormesh_runtime.escalations import (
    EscalationLookup,
    EscalationState,
    FollowUp,
    LookupAnswer,
    QueueSnapshot,
)
from actormesh_runtime.policy.decision import REASON_HUMAN, REASON_LEGAL, decide
from actormesh_runtime.replies.templates import compose
from tests.support.commerce import context_for, intent, sentiment
from tests.support.envelopes import BOB, JOHN, FakePublisher, make_deps, make_envelope

REF = "ESC-1234abcd"
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
CLAIMED = FollowUp(
    ref=REF,
    found=True,
    state=EscalationState.CLAIMED,
    claimed=True,
    agent="ann@shop.example",
    last_reply="Your replacement ships today.",
    last_reply_at=NOW,
    created_at=NOW,
)


def history_answering(owner: str, record: FollowUp) -> FakePublisher:
    """Answers status lookups as the history service does: the record only for its owner."""

    def answer(_subject: str, payload: bytes) -> bytes:
        question = EscalationLookup.model_validate_json(payload)
        found = [
            record
            if question.customer_email == owner and ref == record.ref
            else FollowUp(ref=ref, found=False)
            for ref in question.refs
        ]
        return LookupAnswer(followups=found).model_dump_json().encode()

    return FakePublisher(answer=answer)


async def followups_for(email: str, message: str, publisher: FakePublisher) -> Envelope:
    envelope = make_envelope(message, email, with_context=True)
    envelope.followups = await ContextRetriever(make_deps(publisher=publisher)).follow_ups(
        envelope.message, email
    )
    return envelope


@pytest.mark.parametrize(
    "message",
    [
        "What's happening with ESC-1234abcd?",
        "any news on esc-1234ABCD please",
        "I'm still waiting, ref ESC-1234abcd, can I talk to a person",
    ],
)
async def test_the_owner_hears_the_state_and_the_last_reply(message: str) -> None:
    publisher = history_answering(JOHN, CLAIMED)
    envelope = await followups_for(JOHN, message, publisher)
    [(_, asked)] = publisher.requests
    assert EscalationLookup.model_validate_json(asked).customer_email == JOHN
    reply = compose(envelope)
    assert f"Your request {REF} is being handled by a member of our team." in reply
    assert '"Your replacement ships today."' in reply
    assert "ann@shop.example" not in reply


async def test_an_open_one_says_where_it_stands_honestly() -> None:
    waiting = FollowUp(
        ref=REF,
        found=True,
        state=EscalationState.OPEN,
        created_at=NOW,
        queue=QueueSnapshot(ahead=2, agents_active=0, handling_minutes=9.0),
    )
    envelope = await followups_for(JOHN, f"What's happening with {REF}?", history_answering(JOHN, waiting))
    reply = compose(envelope)
    assert f"Your request {REF} is waiting for the next available member of our team." in reply
    assert "No one from our team is available right now" in reply
    assert "2 conversations are ahead of yours" in reply
    assert "minute" not in reply


async def test_someone_elses_reference_is_not_found() -> None:
    envelope = await followups_for(BOB, f"What's happening with {REF}?", history_answering(JOHN, CLAIMED))
    reply = compose(envelope)
    assert f"I couldn't find {REF} for your account" in reply
    assert "replacement" not in reply
    assert "handled" not in reply


@pytest.mark.parametrize(
    "publisher",
    [
        pytest.param(FakePublisher(), id="silent"),
        pytest.param(
            FakePublisher(answer=lambda *_: LookupAnswer(ok=False, error="busy").model_dump_json().encode()),
            id="answers-it-failed",
        ),
    ],
)
async def test_history_silent_or_failing_says_so(publisher: FakePublisher) -> None:
    envelope = await followups_for(JOHN, f"What's happening with {REF}?", publisher)
    assert [f.lookup_failed for f in envelope.followups] == [True]
    assert f"I can't look up {REF} right now" in compose(envelope)


async def test_no_reference_no_lookup() -> None:
    publisher = history_answering(JOHN, CLAIMED)
    envelope = await followups_for(JOHN, "Where is my order ORD-10002?", publisher)
    assert envelope.followups == []
    assert publisher.requests == []


@pytest.mark.parametrize(
    ("followups", "flags", "reasons"),
    [
        pytest.param([CLAIMED], {"wants_human": True}, [], id="pending-absorbs-a-human-request"),
        pytest.param([CLAIMED], {"legal_threat": True}, [REASON_LEGAL], id="legal-threat-still-escalates"),
        pytest.param([FollowUp(ref=REF, found=False)], {"wants_human": True}, [REASON_HUMAN], id="not-found"),
        pytest.param(
            [CLAIMED.model_copy(update={"state": EscalationState.RESOLVED})],
            {"wants_human": True},
            [REASON_HUMAN],
            id="resolved-one-escalates-again",
        ),
    ],
)
def test_a_follow_up_opens_no_second_escalation(
    followups: list[FollowUp], flags: dict[str, bool], reasons: list[str]
) -> None:
    decision = decide(
        sentiment=sentiment(**flags),
        intent=intent(Intent.GENERAL_QUESTION, 0.2),
        context=context_for(JOHN),
        screening=make_envelope("x").screening,
        threshold=0.45,
        now=NOW,
        followups=followups,
    )
    assert decision.escalate is bool(reasons)
    assert decision.reasons[: len(reasons)] == reasons


def test_a_follow_up_without_an_intent_opens_no_second_escalation() -> None:
    def decided(followups: list[FollowUp]) -> bool:
        return decide(
            sentiment=sentiment(),
            intent=None,
            context=context_for(JOHN),
            screening=make_envelope("x").screening,
            threshold=0.45,
            now=NOW,
            followups=followups,
        ).escalate

    assert decided([]) is True, "no intent: a person takes it"
    assert decided([CLAIMED]) is False, "already with a person"
