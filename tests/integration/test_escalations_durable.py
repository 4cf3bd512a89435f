"""Escalation records survive what the bus survives (real nats-server, real SQLite, real processes).

- The history service (`actormesh history`, a separate process) is frozen while a customer escalates
  and then killed with SIGKILL: the customer already holds the reference, nothing is stored yet; a
  new history process stores the record exactly once and announces it once on
  `<prefix>.escalations.created`.
- The escalated envelope is delivered twice (as after a crash past the de-duplication window), and
  its history event stored twice: one record, one `created` event.
- The metrics follow the records: open by priority, time to claim, time to resolve.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from actormesh_runtime.actors.escalation_router import reference_id
from actormesh_runtime.catalog import ESCALATION_TAIL, ActorName, Subjects
from actormesh_runtime.envelope import Decision, HistoryEvent
from actormesh_runtime.escalations import EscalationRecord
from actormesh_runtime.history.protocol import EscalationRefused, HistoryClient, HistoryUnavailable
from actormesh_runtime.policy.decision import REASON_HUMAN
from tests.support.commerce import context_for, envelope_for
from tests.support.escalation_events import published_events
from tests.support.eventually import eventually_async
from tests.support.gateway import BOB, JOHN, gateway_stack, poll_json, stack_settings

pytestmark = pytest.mark.integration


@asynccontextmanager
async def history_process(
    nats_url: str, mesh: str, db: Path, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`actormesh history` as its own process; killed (not stopped) if the test has not done so."""
    command = [sys.executable, "-m", "actormesh_runtime.cli", "history", "--nats-url", nats_url,
               "--mesh", mesh, "--db", str(db), "--http-port", "0"]  # fmt: skip
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL, stderr=out)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_history_killed_between_escalate_and_store(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    subjects = Subjects(settings.mesh_name)
    db, log = tmp_path / "killed.db", tmp_path / "history.log"
    async with gateway_stack(settings, history=False) as stack:
        client = HistoryClient(stack.mesh.nc, subjects, timeout_s=1.0)
        async with history_process(nats_server, settings.mesh_name, db, log) as first:
            await eventually_async(lambda: _pings(client), what="the first history process", timeout_s=30)
            first.send_signal(signal.SIGSTOP)  # alive for the server, doing nothing: a hung process
            async with httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
                body = {"message": "I want to talk to a human", "customer_email": JOHN, "session_id": "kill"}
                answer = await api.post("/api/chat", json=body)
            assert answer.status_code == 200, answer.text
            ref = answer.json()["reference_id"]
            assert ref in answer.json()["response"]
            first.kill()  # SIGKILL while frozen: whatever it had fetched is never acked
            await first.wait()
        with pytest.raises(HistoryUnavailable):
            await client.escalation(ref)  # nobody stores or answers now
        async with history_process(nats_server, settings.mesh_name, db, log):
            # Anything the dead process had fetched comes back after its ack wait (30 s).
            record = await eventually_async(
                lambda: _record(client, ref),
                what=f"{ref} stored by the new process",
                timeout_s=120,  # the dead process's fetch comes back after the 30 s ack wait
                ignoring=(HistoryUnavailable,),
            )
            page, _ = await client.escalations(state=None, limit=50, cursor=None)
            turns = await client.conversation("kill")
        assert record.session_id == "kill"
        assert record.customer.email == JOHN
        assert [r.ref for r in page] == [ref]
        assert [t["role"] for t in turns] == ["customer", "agent"]
    events = await published_events(nats_server, subjects, subjects.escalations_created)
    assert [e.escalation.ref for e in events] == [ref]


async def test_a_redelivered_envelope_creates_one_record(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    subjects = Subjects(settings.mesh_name)
    async with gateway_stack(settings) as stack:
        js = stack.mesh.nc.jetstream()
        envelope = envelope_for(BOB, "I want to talk to a human")
        envelope.context = context_for(BOB)
        envelope.decision = Decision(escalate=True, reasons=[REASON_HUMAN])
        envelope.slip.steps = [ActorName.DECISION_ROUTER, *ESCALATION_TAIL]
        envelope.slip.index = 1
        # Two deliveries of the same envelope to escalation_router, past any de-duplication.
        for attempt in ("first", "again"):
            await js.publish(
                subjects.actor(ActorName.ESCALATION_ROUTER),
                envelope.to_bytes(),
                headers={"Nats-Msg-Id": f"{envelope.message_id}:{attempt}"},
            )
        client = HistoryClient(stack.mesh.nc, subjects)
        ref = reference_id(envelope.message_id)
        record = await eventually_async(lambda: _record(client, ref), what="the record", timeout_s=30)
        # And the stored history event itself, once more under another msg id (the store's own guard).
        stored = await client.result(envelope.message_id)
        assert stored is not None
        event = HistoryEvent(
            message_id=envelope.message_id,
            session_id=envelope.session_id,
            customer_email=BOB,
            customer_message=envelope.message,
            received_at=envelope.created_at,
            completed_at=envelope.created_at,
            result=stored[0],
            escalation=record.model_copy(update={"summary": "a second build"}),
        )
        await js.publish(
            subjects.history_events, event.model_dump_json().encode(), headers={"Nats-Msg-Id": "replayed"}
        )
        await _drained(js, subjects)
        page, _ = await client.escalations(state=None, limit=50, cursor=None)
        assert [(r.ref, r.summary) for r in page] == [(ref, record.summary)]
        assert len(await client.conversation(envelope.session_id)) == 2
    events = await published_events(nats_server, subjects, subjects.escalations_created)
    assert [e.escalation.ref for e in events] == [ref]


async def test_metrics_follow_the_records(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)

    def sample(name: str, priority: str) -> float:
        return REGISTRY.get_sample_value(name, {"priority": priority}) or 0.0

    claims_before = sample("actormesh_escalation_time_to_claim_seconds_count", "normal")
    resolves_before = sample("actormesh_escalation_time_to_resolve_seconds_count", "normal")
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
        body = {"message": "I want to talk to a human", "customer_email": BOB, "session_id": "metrics"}
        ref = (await api.post("/api/chat", json=body)).json()["reference_id"]
        record = await poll_json(api, f"/api/escalations/{ref}")
        assert record["escalation"]["priority"] == "normal"
        await eventually_async(
            lambda: sample("actormesh_escalations_open", "normal") == 1.0, what="one open normal escalation"
        )
        assert (await api.post(f"/api/escalations/{ref}/claim", json={})).status_code == 200
        assert sample("actormesh_escalation_time_to_claim_seconds_count", "normal") == claims_before + 1
        assert sample("actormesh_escalations_open", "normal") == 1.0  # claimed is still open work
        assert (await api.post(f"/api/escalations/{ref}/resolve", json={})).status_code == 200
        assert sample("actormesh_escalation_time_to_resolve_seconds_count", "normal") == resolves_before + 1
        assert sample("actormesh_escalations_open", "normal") == 0.0


async def _pings(client: HistoryClient) -> bool:
    try:
        await client.escalations(state=None, limit=1, cursor=None)
    except Exception:
        return False
    return True


async def _record(client: HistoryClient, ref: str) -> EscalationRecord | None:
    try:
        return await client.escalation(ref)
    except EscalationRefused:
        return None


async def _drained(js: JetStreamContext, subjects: Subjects) -> None:
    """Wait until the history writer has nothing pending or unacked (the replayed event was handled)."""

    async def drained() -> bool:
        info = await js.consumer_info(subjects.stream, subjects.history_consumer)
        return info.num_pending == 0 and info.num_ack_pending == 0

    await eventually_async(drained, what="the history consumer drained", timeout_s=30)
