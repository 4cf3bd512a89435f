"""The history store through the real stack: a restart of the history service mid-stream loses no
turn (the durable consumer keeps what was published meanwhile), and only redacted text is stored."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nats
import pytest

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.history.protocol import HistoryClient
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.history.store import HistoryStore
from tests.support.cli_process import aterminate
from tests.support.envelopes import history_event
from tests.support.eventually import eventually_async
from tests.support.gateway import JANE, JOHN, gateway_stack, poll_json, stack_settings
from tests.support.history_events import at
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

QUESTIONS = [
    (JOHN, "Where is my order ORD-10002?"),
    (JOHN, "Where is my order ORD-10001?"),
    (JANE, "Where is my order ORD-20002?"),
    (JOHN, "What is your return policy?"),
    (JOHN, "Where is my order ORD-10003?"),
    (JANE, "Thank you, your service is great!"),
]


def session(email: str) -> str:
    return "h-" + email.split("@")[0]


async def test_transcript_survives_a_history_restart_mid_stream(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings, history=False) as stack:
        history = HistoryService(stack.mesh.settings)
        await history.start()
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:

            async def ask(i: int) -> str:
                email, text = QUESTIONS[i]
                response = await client.post(
                    "/api/chat", json={"message": text, "customer_email": email, "session_id": session(email)}
                )
                assert response.status_code == 200, response.text
                return str(response.json()["message_id"])

            first = await asyncio.gather(*(ask(i) for i in range(2)))
            await poll_json(client, f"/api/messages/{first[-1]}")  # written by the first service
            # Stop the writer while more conversations are in flight and finish without it.
            in_flight = [asyncio.create_task(ask(i)) for i in range(2, 4)]
            await asyncio.sleep(0)
            await history.stop()
            after_stop = await asyncio.gather(*(ask(i) for i in range(4, len(QUESTIONS))))
            rest = [*await asyncio.gather(*in_flight), *after_stop]
            unavailable = await client.get(f"/api/messages/{rest[-1]}")
            assert unavailable.status_code == 503  # nobody answers reads while it is down

            restarted = HistoryService(stack.mesh.settings)
            await restarted.start()
            try:
                for message_id in [*first, *rest]:
                    await poll_json(client, f"/api/messages/{message_id}")
                john = await poll_json(client, f"/api/conversations/{session(JOHN)}")
                jane = await poll_json(client, f"/api/conversations/{session(JANE)}")
            finally:
                await restarted.stop()

    turns = john["turns"] + jane["turns"]
    assert len(turns) == 2 * len(QUESTIONS)
    by_message: dict[str, list[str]] = {}
    for turn in turns:
        by_message.setdefault(turn["message_id"], []).append(turn["role"])
    assert set(by_message) == {*first, *rest}
    assert all(roles == ["customer", "agent"] for roles in by_message.values())
    asked = sorted(text for _, text in QUESTIONS)
    assert sorted(t["text"] for t in turns if t["role"] == "customer") == asked


async def test_only_redacted_text_reaches_the_store(nats_server: str, tmp_path: Path) -> None:
    card, ssn = "4111 1111 1111 1111", "123-45-6789"
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        body = {
            "message": f"My card {card} and SSN {ssn} were used for ORD-10002, where is it?",
            "customer_email": JOHN,
            "session_id": "pii",
        }
        response = await client.post("/api/chat", json=body)
        assert response.status_code == 200, response.text
        assert "pii_redacted" in response.json()["flags"]
        transcript = await poll_json(client, "/api/conversations/pii")

    customer = transcript["turns"][0]
    assert "[REDACTED-CARD]" in customer["text"]
    assert "[REDACTED-SSN]" in customer["text"]
    # Every byte the store holds, read straight from the file (after the service closed it).
    with sqlite3.connect(tmp_path / "history.db") as db:
        dump = "\n".join(db.iterdump())
    assert "ORD-10002" in dump
    for secret in (card, card.replace(" ", ""), ssn, ssn.replace("-", "")):
        assert secret not in dump


async def test_history_command_serves_probes_writes_and_reads(nats_server: str, tmp_path: Path) -> None:
    mesh, port = f"h{uuid.uuid4().hex[:8]}", free_port()
    db = tmp_path / "cli.db"
    command = [sys.executable, "-m", "actormesh_runtime.cli", "history", "--nats-url", nats_server,
               "--mesh", mesh, "--db", str(db), "--http-port", str(port)]  # fmt: skip
    log = (tmp_path / "history.log").open("wb")
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL, stderr=log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as probe:

            async def ready() -> bool:
                assert proc.returncode is None, (tmp_path / "history.log").read_text()
                return (await probe.get("/readyz")).status_code == 200

            await eventually_async(
                ready, what="the history service ready", timeout_s=30, ignoring=(httpx.HTTPError,)
            )
            assert "actormesh_history_events_stored" in (await probe.get("/metrics")).text

        subjects = Subjects(mesh)
        nc = await nats.connect(nats_server)
        try:
            event = history_event("msg-cli-1", "cli-session")
            await nc.jetstream().publish(subjects.history_events, event.model_dump_json().encode())
            client = HistoryClient(nc, subjects)
            turns = await eventually_async(
                lambda: client.conversation("cli-session"), what="the event stored", timeout_s=30
            )
            found = await client.result("msg-cli-1")
        finally:
            await nc.close()
    finally:
        try:
            code = await aterminate(proc, timeout_s=30)
        finally:
            log.close()
    assert code == 0, (tmp_path / "history.log").read_text()
    assert "start-up heap frozen" in (tmp_path / "history.log").read_text()
    assert [t["role"] for t in turns] == ["customer", "agent"]
    assert found is not None
    assert found[1] == JOHN
    assert db.exists()


async def test_the_history_command_deletes_conversations_past_the_retention(
    nats_server: str, tmp_path: Path
) -> None:
    mesh, port, db = f"h{uuid.uuid4().hex[:8]}", free_port(), tmp_path / "kept.db"
    store = HistoryStore(db)
    await store.open()
    try:
        long_ago = datetime.now(UTC) - timedelta(days=45)
        await store.add_events([at(history_event("m-old", "old"), long_ago), history_event("m-new", "new")])
    finally:
        await store.close()
    command = [sys.executable, "-m", "actormesh_runtime.cli", "history", "--nats-url", nats_server,
               "--mesh", mesh, "--db", str(db), "--http-port", str(port)]  # fmt: skip
    log = (tmp_path / "history.log").open("wb")
    env = {**os.environ, "HISTORY_RETENTION_DAYS": "30"}
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=log, env=env
    )
    nc = await nats.connect(nats_server)
    try:
        client = HistoryClient(nc, Subjects(mesh))

        async def old_gone() -> bool:
            assert proc.returncode is None, (tmp_path / "history.log").read_text()
            return await client.conversation("old") == []

        await eventually_async(
            old_gone, what="the old conversation deleted", timeout_s=30, ignoring=(Exception,)
        )
        assert len(await client.conversation("new")) == 2
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as probe:
            metrics = (await probe.get("/metrics")).text
        assert "actormesh_history_pruned_conversations_total 1.0" in metrics
    finally:
        await nc.close()
        try:
            code = await aterminate(proc, timeout_s=30)
        finally:
            log.close()
    assert code == 0, (tmp_path / "history.log").read_text()


async def test_a_failed_start_undoes_itself(
    nats_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A start that fails half-way (here: after the store, NATS and the subscriptions) must close what
    # it opened: the store's thread would keep `actormesh history` from ever exiting, and its writer
    # lock would keep the next start from taking the file.
    settings = stack_settings(nats_server, tmp_path)
    broken = HistoryService(settings)

    async def refuse(*_: object) -> None:
        raise RuntimeError("refused")

    monkeypatch.setattr(broken.approval_ops, "start", refuse)
    with pytest.raises(RuntimeError, match="refused"):
        await broken.start()
    assert broken.store._db is None
    assert broken._nc is None  # its own connection drained
    monkeypatch.undo()
    async with HistoryService(settings) as again:
        assert again.missing() == []


async def test_a_deleted_history_consumer_is_created_again_and_the_next_turn_stored(
    nats_server: str, tmp_path: Path
) -> None:
    """`nats consumer rm` of the history writer's consumer (or its stream deleted and made again by the
    actors, or the store wiped) under a running history service: before, it asked again every second
    for ever and stored nothing until restarted; now it creates the consumer again as declared."""
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        subjects = Subjects(settings.mesh_name)

        async def ask(text: str) -> str:
            response = await client.post(
                "/api/chat", json={"message": text, "customer_email": JOHN, "session_id": "deleted-consumer"}
            )
            assert response.status_code == 200, response.text
            return str(response.json()["message_id"])

        await poll_json(client, f"/api/messages/{await ask('Where is my order ORD-10002?')}")
        await stack.mesh.nc.jetstream().delete_consumer(subjects.stream, subjects.history_consumer)
        after = await ask("What is your return policy?")
        stored = await poll_json(client, f"/api/messages/{after}")
        assert stored["message_id"] == after
