"""`actormesh erase` against the real parts: a nats-server running the nats.conf the operator renders
(each component its own user), the history service on a SQLite file, a redis-server. John and Jane
each have a conversation, an escalation (John's claimed and answered by a person), a dead letter, the
escalation events and a context-cache entry; the command, run as a process with the `admin` user's
credentials (as docs/security.md runs it), erases John's and leaves every one of Jane's. The gateway's
user may not ask for an erasure; a dry run changes nothing; a repeat erases nothing and succeeds."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext

from actormesh_runtime.bus import dlq
from actormesh_runtime.bus.connection import ensure_streams
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import HistoryEvent
from actormesh_runtime.history.protocol import HistoryClient, HistoryUnavailable, request_erasure
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.storage.cache import ContextCache
from actormesh_runtime.storage.stores import RedisStore, redis_client
from tests.support.cli_process import acommunicate
from tests.support.envelopes import JANE, JOHN, context_for, history_event, make_envelope
from tests.support.eventually import eventually_async
from tests.support.history_events import escalated
from tests.support.redis import RedisServer
from tests.support.rendered_nats import SETTINGS, SUBJECTS, Server, denied, serving

pytestmark = [pytest.mark.integration]

FIRST = ActorName.SENTIMENT_ANALYZER.value


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Server]:
    async with serving(tmp_path) as server:
        yield server


def conversation_of(email: str) -> list[HistoryEvent]:
    """A plain exchange and an escalated one, in two sessions of `email`'s."""
    name = email.split("@")[0]
    plain = history_event(f"m-{name}", f"s-{name}").model_copy(update={"customer_email": email})
    return [plain, escalated(email, "I want a human", session=f"s-{name}-esc")]


async def dead_letters(js: JetStreamContext) -> dict[str, int]:
    """The DLQ's records: each one's customer by its id."""
    return {
        item.record.envelope.customer_email: item.id
        for item in await dlq.list_records(js, SUBJECTS, limit=100)
        if item.record.envelope is not None
    }


async def event_customers(js: JetStreamContext) -> list[str]:
    """Whose record each escalation event in the stream carries, oldest first."""
    info = await js.stream_info(SUBJECTS.escalations_stream)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(SUBJECTS.escalations_stream, seq)
        except Exception:
            continue
        assert msg.data is not None
        found.append(json.loads(msg.data)["escalation"]["customer"]["email"])
    return found


async def erase(server: Server, redis: RedisServer, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """`actormesh erase`, a process of its own, as the admin user (its password from the Secret)."""
    env = {
        **os.environ,
        "NATS_USER": "admin",
        "NATS_PASSWORD": server.passwords["admin"],
        "REDIS_URL": redis.url,
        "LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "actormesh_runtime.cli", "erase", "--nats-url", server.url,
               "--mesh", SUBJECTS.mesh, "--json", *args]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path
    )
    out, err = await acommunicate(proc, timeout_s=120)
    assert proc.returncode is not None
    lines = out.decode().strip().splitlines()
    assert lines, err.decode()
    return proc.returncode, json.loads(lines[-1])


async def test_erase_removes_one_customers_data_everywhere_and_nothing_of_anyone_else(
    mesh: Server, redis_server: RedisServer, tmp_path: Path
) -> None:
    history_nc = await mesh.connect("history")
    await ensure_streams(history_nc.jetstream(timeout=5), SUBJECTS, SETTINGS)
    service = HistoryService(SETTINGS, nc=history_nc, db_path=str(tmp_path / "history.db"))
    await service.start()
    cache = ContextCache(RedisStore(redis_client(redis_server.url, None), name="t"), mesh="demo", ttl_s=300)
    try:
        # What the mesh stores for both: conversations with an escalation (history, events)...
        last = await mesh.connect(ActorName.RESPONSE_AGGREGATOR.value)
        last_js = last.jetstream(timeout=5)
        events = {email: conversation_of(email) for email in (JOHN, JANE)}
        for event in [*events[JOHN], *events[JANE]]:
            await last_js.publish(SUBJECTS.history_events, event.model_dump_json().encode())
        gateway = await mesh.connect("gateway")
        client = HistoryClient(gateway, SUBJECTS, timeout_s=5)

        async def stored(email: str) -> bool:
            name = email.split("@")[0]
            return all([await client.conversation(f"s-{name}"), await client.conversation(f"s-{name}-esc")])

        for email in (JOHN, JANE):
            await eventually_async(lambda e=email: stored(e), what=f"{email} stored", timeout_s=15)
        john_ref = events[JOHN][1].escalation.ref  # type: ignore[union-attr]
        jane_ref = events[JANE][1].escalation.ref  # type: ignore[union-attr]
        await client.change_escalation(john_ref, "claim", agent="ann")
        await client.change_escalation(john_ref, "reply", agent="ann", text="On it.")
        # ...a dead letter each (stored by the actor that failed)...
        actor_js = (await mesh.connect(FIRST)).jetstream(timeout=5)
        for email in (JOHN, JANE):
            envelope = make_envelope("where is my order?", email)
            record = dlq.DeadLetter(
                actor=ActorName.SENTIMENT_ANALYZER,
                reason="boom",
                permanent=True,
                deliveries=1,
                envelope=envelope,
            )
            await dlq.store(actor_js, SUBJECTS, record, dedup_key=email)
        # ...and a context-cache entry each.
        for email in (JOHN, JANE):
            await cache.put(context_for(email), (await cache.read(email)).generation)
            assert await cache.get(email) is not None
        admin_js = (await mesh.connect("admin")).jetstream(timeout=5)
        await eventually_async(
            lambda: event_customers(admin_js), what="escalation events announced", timeout_s=10
        )
        assert sorted(set(await event_customers(admin_js))) == sorted([JOHN, JANE])
        janes_letter = (await dead_letters(admin_js))[JANE]

        # The gateway's user cannot ask for an erasure (a compromised gateway erases nobody).
        await denied(mesh, "gateway", request_erasure(gateway, SUBJECTS, JOHN, dry_run=False, timeout_s=2))
        with pytest.raises(HistoryUnavailable):
            await request_erasure(gateway, SUBJECTS, JOHN, dry_run=True, timeout_s=1)

        # A dry run counts and changes nothing.
        code, would = await erase(mesh, redis_server, tmp_path, "John.Doe@Example.com", "--dry-run")
        assert code == 0, would
        assert would["dry_run"] is True
        assert would["failed"] == []
        assert would["history"]["turns"] == 5  # two exchanges, the agent's reply
        assert would["history"]["conversations"] == 2
        assert would["history"]["escalations"] == would["history"]["escalations_unsettled"] == 1
        assert would["history"]["escalation_replies"] == 1
        assert (would["dead_letters"], would["events"], would["context_cache"]) == (1, 3, 1)
        assert set(await dead_letters(admin_js)) == {JOHN, JANE}
        assert await cache.get(JOHN) is not None
        assert len(await client.conversation("s-john.doe")) == 2

        code, erased = await erase(mesh, redis_server, tmp_path, JOHN)

        assert code == 0, erased
        assert {k: erased[k] for k in ("history", "dead_letters", "events", "context_cache")} == {
            k: would[k] for k in ("history", "dead_letters", "events", "context_cache")
        }
        # John's are gone, everywhere...
        assert await client.conversation("s-john.doe") == []
        assert await client.conversation("s-john.doe-esc") == []
        assert await service.store.escalations.get(john_ref) is None
        assert await service.store.session_owner("s-john.doe") is None
        assert JOHN not in await dead_letters(admin_js)
        assert JOHN not in await event_customers(admin_js)
        assert await cache.get(JOHN) is None
        # ...and every one of Jane's is there.
        assert len(await client.conversation("s-jane.smith")) == 2
        assert len(await client.conversation("s-jane.smith-esc")) == 2
        assert (await client.escalation(jane_ref)).customer.email == JANE
        assert await service.store.session_owner("s-jane.smith") == JANE
        assert await dead_letters(admin_js) == {JANE: janes_letter}
        assert await event_customers(admin_js) == [JANE]
        assert await cache.get(JANE) is not None
        assert mesh.violations("admin") == []

        # A repeat finds nothing and succeeds.
        code, again = await erase(mesh, redis_server, tmp_path, JOHN)
        assert code == 0, again
        assert sum(again["history"].values()) == 0
        assert (again["dead_letters"], again["events"], again["context_cache"]) == (0, 0, 0)
    finally:
        await cache.close()
        await service.stop()


async def test_erase_says_what_it_could_not_reach(
    mesh: Server, redis_server: RedisServer, tmp_path: Path
) -> None:
    """No history service answering: the command fails (status 1), naming the part, after doing the rest."""
    await ensure_streams((await mesh.connect("admin")).jetstream(timeout=5), SUBJECTS, SETTINGS)
    code, report = await erase(mesh, redis_server, tmp_path, JOHN)
    assert code == 1
    assert report["history"] is None
    assert [problem.split(":")[0] for problem in report["failed"]] == ["history"]
    assert (report["dead_letters"], report["events"], report["context_cache"]) == (0, 0, 0)
