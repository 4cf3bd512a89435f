"""Two messages whose escalation refs collide (8 hex digits of SHA-256), through a real nats-server,
the real history service (SQLite) and the real escalation_router: the second case is never lost.

- On the handoff path the router asks the history service about its ref; told another message's
  record holds it, it quotes its next candidate, and both cases are in the queue (and announced).
- In error mode the router does not ask and quotes the taken ref; the store keeps the case under the
  next candidate (and announces it), and the customer asking about the quoted ref is told nothing of
  the other customer's case.
The message ids are a real collision (ESC-d7464c03), found by brute force and hard-coded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from actormesh_runtime.catalog import ESCALATION_TAIL, ActorName, Subjects
from actormesh_runtime.envelope import Decision, Envelope, ErrorInfo
from actormesh_runtime.escalations import EscalationLookup, EscalationRecord, LookupAnswer
from actormesh_runtime.history.protocol import EscalationRefused, HistoryClient
from actormesh_runtime.policy.decision import REASON_HUMAN
from actormesh_runtime.priority import Priority
from tests.support.collisions import MSG_A, MSG_B, NEXT_REF_B, TAKEN_REF
from tests.support.commerce import context_for, envelope_for
from tests.support.escalation_events import published_events
from tests.support.eventually import eventually_async
from tests.support.gateway import BOB, JOHN, gateway_stack, stack_settings

pytestmark = pytest.mark.integration


def _handoff(email: str, message_id: str, session: str, *, error: bool = False) -> Envelope:
    envelope = envelope_for(email, "I want to talk to a human", message_id=message_id)
    envelope.session_id = session
    envelope.context = context_for(email)
    envelope.decision = Decision(escalate=True, reasons=[REASON_HUMAN])
    envelope.slip.steps = [ActorName.DECISION_ROUTER, *ESCALATION_TAIL]
    envelope.slip.index = 1
    if error:
        envelope.error = ErrorInfo(
            actor=ActorName.CONTEXT_RETRIEVER, reason="customers API down", permanent=False
        )
    return envelope


async def _send(nc: NATS, subjects: Subjects, envelope: Envelope) -> None:
    await nc.jetstream().publish(
        subjects.actor(ActorName.ESCALATION_ROUTER),
        envelope.to_bytes(),
        headers={"Nats-Msg-Id": f"{envelope.message_id}:escalate"},
    )


async def _record(client: HistoryClient, ref: str, message_id: str) -> EscalationRecord | None:
    try:
        record = await client.escalation(ref)
    except EscalationRefused:
        return None
    return record if record.message_id == message_id else None


async def _lookup(
    nc: NATS, subjects: Subjects, question: EscalationLookup
) -> tuple[dict[str, object], LookupAnswer]:
    raw = (await nc.request(subjects.escalations_lookup, question.model_dump_json().encode(), timeout=5)).data
    return json.loads(raw), LookupAnswer.model_validate_json(raw)


@pytest.mark.parametrize("error_mode", [False, True], ids=["handoff-asks-first", "error-mode-store-moves"])
async def test_colliding_messages_both_reach_the_queue(
    nats_server: str, tmp_path: Path, error_mode: bool
) -> None:
    settings = stack_settings(nats_server, tmp_path)
    subjects = Subjects(settings.mesh_name)
    async with gateway_stack(settings) as stack:
        nc = stack.mesh.nc
        assert nc is not None
        client = HistoryClient(nc, subjects)
        await _send(nc, subjects, _handoff(JOHN, MSG_A, "s-john"))
        first = await eventually_async(
            lambda: _record(client, TAKEN_REF, MSG_A), what="John's case", timeout_s=30
        )
        assert first.customer.email == JOHN

        # The queue question about a free ref answers as before (no new field in the JSON an older
        # router would refuse); about the taken one it names the message that holds it.
        free, _ = await _lookup(
            nc, subjects, EscalationLookup(op="queue", priority=Priority.NORMAL, refs=[NEXT_REF_B])
        )
        assert "ref_message_id" not in free
        _, taken = await _lookup(
            nc, subjects, EscalationLookup(op="queue", priority=Priority.NORMAL, refs=[TAKEN_REF])
        )
        assert taken.ref_message_id == MSG_A

        await _send(nc, subjects, _handoff(BOB, MSG_B, "s-bob", error=error_mode))
        second = await eventually_async(
            lambda: _record(client, NEXT_REF_B, MSG_B), what="Bob's case", timeout_s=30
        )
        assert second.customer.email == BOB
        stored = await client.result(MSG_B)
        assert stored is not None
        quoted = stored[0].reference_id
        # Asked first, the router quotes the free ref; in error mode it quoted the taken one (the store
        # moved the case), and Bob asking about it learns nothing of John's.
        assert quoted == (TAKEN_REF if error_mode else NEXT_REF_B)
        assert quoted in stored[0].response
        _, bob_asks = await _lookup(
            nc, subjects, EscalationLookup(op="status", refs=[TAKEN_REF, NEXT_REF_B], customer_email=BOB)
        )
        assert [(f.ref, f.found) for f in bob_asks.followups] == [(TAKEN_REF, False), (NEXT_REF_B, True)]

        page, _ = await client.escalations(state=None, limit=50, cursor=None)
        assert sorted((r.ref, r.message_id) for r in page) == sorted(
            [(TAKEN_REF, MSG_A), (NEXT_REF_B, MSG_B)]
        )
    events = await published_events(nats_server, subjects, subjects.escalations_created)
    assert sorted(e.escalation.ref for e in events) == sorted([TAKEN_REF, NEXT_REF_B])
