"""`actormesh erase` outside the store: which stream messages are a customer's (`bus/erasure.py`), and
who may ask for an erasure and delete from the streams (`catalog.nats_permissions`). The same on a real
nats-server and the real command: tests/integration/test_erasure.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from actormesh_runtime.bus.dlq import DeadLetter
from actormesh_runtime.bus.erasure import dead_letter_of, escalation_event_of
from actormesh_runtime.catalog import (
    ADMIN_USER,
    HISTORY_USER,
    NATS_USERS,
    ActorName,
    Subjects,
    nats_permissions,
)
from actormesh_runtime.escalations import EscalationEvent
from actormesh_runtime.observability.emails import scrubbed
from tests.support.envelopes import JANE, JOHN, make_envelope
from tests.support.history_events import escalated, filed

SUBJECTS = Subjects("demo")


def letter(email: str | None = None, raw: str | None = None) -> bytes:
    envelope = make_envelope("where is my order?", email) if email is not None else None
    record = DeadLetter(
        actor=ActorName.CONTEXT_RETRIEVER,
        reason="boom",
        permanent=True,
        deliveries=1,
        envelope=envelope,
        raw=raw,
    )
    return record.model_dump_json().encode()


def test_a_dead_letter_is_the_customers_by_its_envelope() -> None:
    johns = dead_letter_of(" John.Doe@Example.com ")
    assert johns(letter(JOHN))
    assert not johns(letter(JANE))


def test_someone_elses_dead_letter_that_quotes_the_address_is_not_the_customers() -> None:
    """Jane's envelope whose message names John's address stays: it is Jane's failure to replay."""
    quoting = DeadLetter(
        actor=ActorName.CONTEXT_RETRIEVER, reason="boom", permanent=True, deliveries=1,
        envelope=make_envelope(f"my husband is {JOHN}", JANE),
    )  # fmt: skip
    assert not dead_letter_of(JOHN)(quoting.model_dump_json().encode())


def test_an_undecodable_dead_letter_is_the_customers_when_it_holds_their_whole_address() -> None:
    johns = dead_letter_of(JOHN)
    assert johns(letter(raw=f'{{"customer_email": "{JOHN.upper()}", "broken'))
    assert not johns(letter(raw=f'{{"customer_email": "x{JOHN}"}}'))
    assert not johns(letter(raw=f'{{"customer_email": "{JOHN}x"}}'))
    assert not johns(letter(raw="nothing of anyone"))
    # An undecodable message's excerpt is stored scrubbed: the address is its pseudonym there.
    assert johns(letter(raw=scrubbed(f'{{"customer_email": "{JOHN}", "broken')))
    assert not johns(letter(raw=scrubbed('{"customer_email": "jane.smith@example.com", "broken')))
    assert johns(f"not json at all: {JOHN}".encode())
    assert not johns(b"not json at all")


def test_an_event_is_the_customers_by_its_record() -> None:
    ticket = escalated(JOHN, "a person please")
    assert ticket.escalation is not None
    event = EscalationEvent(type="escalation.created", change="created", escalation=ticket.escalation)
    approval = filed(JOHN, "ORD-10001").approvals[0]
    approval_event = {
        "type": "approval.created",
        "change": "created",
        "approval": approval.model_dump(mode="json"),
    }
    johns, janes = escalation_event_of(JOHN), escalation_event_of(JANE)
    assert johns(event.model_dump_json().encode())
    assert not janes(event.model_dump_json().encode())
    assert johns(json.dumps(approval_event).encode())
    assert not janes(json.dumps(approval_event).encode())
    assert not johns(b"{}")
    assert not johns(b"not json")
    assert not johns(json.dumps({"at": datetime.now(UTC).isoformat(), "note": JOHN}).encode())


def test_only_admin_asks_for_an_erasure_and_only_history_answers() -> None:
    asking = [u for u in NATS_USERS if SUBJECTS.history_erase in nats_permissions(SUBJECTS, u).publish]
    answering = [u for u in NATS_USERS if SUBJECTS.history_erase in nats_permissions(SUBJECTS, u).subscribe]
    assert asking == [ADMIN_USER]
    assert answering == [HISTORY_USER]


def test_only_admin_reads_and_deletes_the_escalation_events() -> None:
    for verb in ("GET", "DELETE"):
        subject = f"$JS.API.STREAM.MSG.{verb}.{SUBJECTS.escalations_stream}"
        allowed = [u for u in NATS_USERS if subject in nats_permissions(SUBJECTS, u).publish]
        assert allowed == [ADMIN_USER], verb
