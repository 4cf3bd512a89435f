"""Finding and deleting one customer's messages in the mesh's limits-retention streams (`actormesh erase`).

Two streams keep customer data after the chat is over: the dead letters (`DeadLetter`: the whole
envelope, with the customer's email, message and context, 14 days) and the escalation events
(`EscalationEvent`/`ApprovalEvent`: the record, with the customer's email, summary and the agents'
replies, 7 days). Neither can be filtered by customer on the server (subjects name the actor or the
event, not the customer), so the stream is read message by message, as `actormesh dlq list` reads it
(`STREAM.MSG.GET`, the next message at or after a sequence), and each of the customer's messages is
then deleted by its sequence (`STREAM.MSG.DELETE`, which overwrites the message on disk). Only the
`admin` NATS user may do either (`catalog.nats_permissions`).

A message is the customer's when its structured email is theirs (the envelope's, the record's), never
because the email appears in someone else's text; an undecodable dead letter (no envelope) is theirs
when its raw text holds their address as a whole address (`jo@example.com` is not `bojo@example.com`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from actormesh_runtime.approvals import normal_email
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.observability.emails import email_pseudonym, one_address

Match = Callable[[bytes], bool]


def _same(value: Any, email: str) -> bool:
    return isinstance(value, str) and normal_email(value) == email


def dead_letter_of(email: str) -> Match:
    """Whether a stored `DeadLetter` (JSON) is `email`'s: its envelope's customer, or, without an
    envelope, its raw payload naming them, by address or by the pseudonym operator-facing texts carry
    (`observability.emails.scrubbed`: an undecodable message's excerpt is stored scrubbed)."""
    who = normal_email(email)
    address, pseudonym = one_address(who), email_pseudonym(who)

    def named(text: str) -> bool:
        return pseudonym in text or address.search(text) is not None

    def matches(data: bytes) -> bool:
        text = data.decode(errors="replace")
        try:
            record = json.loads(text)
        except ValueError:
            return named(text)  # not even a record: whatever it holds
        if not isinstance(record, dict):
            return named(text)
        envelope = record.get("envelope")
        if isinstance(envelope, dict):
            return _same(envelope.get("customer_email"), who)
        raw = record.get("raw")
        return isinstance(raw, str) and named(raw)

    return matches


def escalation_event_of(email: str) -> Match:
    """Whether an escalation or approval event (JSON) is about `email`'s record."""
    who = normal_email(email)

    def matches(data: bytes) -> bool:
        try:
            event = json.loads(data)
        except ValueError:
            return False
        if not isinstance(event, dict):
            return False
        escalation, approval = event.get("escalation"), event.get("approval")
        if isinstance(escalation, dict):
            customer = escalation.get("customer")
            return isinstance(customer, dict) and _same(customer.get("email"), who)
        return isinstance(approval, dict) and _same(approval.get("customer_email"), who)

    return matches


async def find(js: JetStreamContext, stream: str, subjects: str, matches: Match) -> list[int]:
    """The sequences of `stream`'s messages (on `subjects`, a filter) that `matches`, oldest first;
    none when the stream does not exist."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    found: list[int] = []
    seq, last = info.state.first_seq, info.state.last_seq
    while info.state.messages and seq <= last:
        try:
            # The next message at or after `seq`: deleted sequences (gaps) cost no request.
            msg = await js.get_msg(stream, seq=seq, subject=subjects, next=True)
        except NotFoundError:
            break
        if msg.seq is None or msg.seq > last:
            break
        if msg.data and matches(msg.data):
            found.append(msg.seq)
        seq = msg.seq + 1
    return found


async def delete(js: JetStreamContext, stream: str, sequences: list[int]) -> int:
    """Delete each message (one already gone counts as deleted by someone else: not counted)."""
    deleted = 0
    for seq in sequences:
        try:
            await js.delete_msg(stream, seq)
        except NotFoundError:
            continue
        deleted += 1
    return deleted


def streams(subjects: Subjects, email: str) -> list[tuple[str, str, Match]]:
    """(stream, subject filter, which messages are `email`'s) for each stream that keeps customer data."""
    return [
        (subjects.dlq_stream, f"{subjects.dlq_prefix}.>", dead_letter_of(email)),
        (subjects.escalations_stream, f"{subjects.prefix}.>", escalation_event_of(email)),
    ]
