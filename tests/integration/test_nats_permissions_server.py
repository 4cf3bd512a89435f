"""The NATS users and permissions the operator renders, enforced by a real nats-server.

The server runs the rendered nats.conf (paths and ports relocated) with the env the StatefulSet gives it
(passwords from the operator's own generator). Each component connects as its user, with the inbox
prefix the catalog names, and does its real job with the runtime's own functions — provisioning streams
and consumers, submitting, pulling, acking, forwarding, dead-lettering, answering and asking history
queries, listing and replaying dead letters — and each is refused what another component does.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError

from actormesh_operator.builders import nats as nats_builder
from actormesh_runtime.bus import dlq
from actormesh_runtime.bus.connection import ensure_consumer, ensure_streams
from actormesh_runtime.bus.errorpath import fallback_result
from actormesh_runtime.bus.publish import publish_to_current, submit
from actormesh_runtime.catalog import ActorName, Subjects, inbox_prefix
from actormesh_runtime.history.protocol import HistoryClient, HistoryUnavailable
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.replies.result import history_event
from actormesh_runtime.settings import RuntimeSettings
from tests.conftest import free_port
from tests.integration.test_builders_infra_servers import POD_NAME, _nats_binary, _relocated_config
from tests.support.envelopes import make_envelope
from tests.support.k8s import wait_for
from tests.support.nats_auth import server_env
from tests.unit.builder_helpers import children, container, index

pytestmark = [pytest.mark.integration]

SUBJECTS = Subjects("demo")
SETTINGS = RuntimeSettings(mesh_name="demo")
DENIED_WAIT_S = 2.0
FIRST = ActorName.SENTIMENT_ANALYZER.value


class Server:
    def __init__(self, url: str, passwords: dict[str, str]) -> None:
        self.url = url
        self.passwords = passwords
        self.errors: dict[str, list[str]] = {}
        self._clients: list[NATS] = []

    async def connect(self, user: str, *, password: str | None = None) -> NATS:
        errors = self.errors.setdefault(user, [])

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(
            self.url,
            user=user,
            password=self.passwords[user] if password is None else password,
            inbox_prefix=inbox_prefix(user),
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=5,
        )
        self._clients.append(nc)
        return nc

    def violations(self, user: str) -> list[str]:
        return [e for e in self.errors.get(user, []) if "permissions violation" in e.lower()]

    async def close(self) -> None:
        for nc in self._clients:
            if not nc.is_closed:
                await nc.close()


@pytest.fixture
def nats_with_users(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    binary = _nats_binary()
    client, monitor = free_port(), free_port()
    config = tmp_path / nats_builder.CONFIG_FILE
    config.write_text(_relocated_config(1, tmp_path, client=client, monitor=monitor))
    sts = index(children())[("StatefulSet", "demo-nats")]
    env, passwords = server_env(container(sts), POD_NAME)
    log = (tmp_path / "nats.log").open("wb")
    proc = subprocess.Popen([binary, "--config", str(config)], env=env, stdout=log, stderr=log)
    try:
        wait_for("nats-server healthz", lambda: _ok(f"http://127.0.0.1:{monitor}/healthz"))
        yield f"nats://127.0.0.1:{client}", passwords
    finally:
        proc.kill()
        proc.wait(timeout=30)
        log.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
async def server(nats_with_users: tuple[str, dict[str, str]]) -> AsyncIterator[Server]:
    s = Server(*nats_with_users)
    try:
        yield s
    finally:
        await s.close()


async def _denied(server: Server, user: str, coro: Any) -> None:
    """`coro` fails (no JetStream answer / no responder) and the server reports a violation for `user`."""
    before = len(server.violations(user))
    # A JetStream call times out, a history query finds no responder: the server dropped the request.
    with pytest.raises((NatsTimeoutError, asyncio.TimeoutError, HistoryUnavailable)):
        await asyncio.wait_for(coro, timeout=DENIED_WAIT_S * 2)
    for _ in range(40):
        if len(server.violations(user)) > before:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"no permissions violation reported for {user}: {server.errors.get(user)}")


async def test_every_user_needs_its_password(server: Server) -> None:
    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(server.url, allow_reconnect=False, connect_timeout=2, max_reconnect_attempts=0)
    with pytest.raises(NatsError, match="Authorization Violation"):
        await server.connect("gateway", password=server.passwords["history"])
    gateway = await server.connect("gateway")
    assert gateway.is_connected
    assert len(set(server.passwords.values())) == len(server.passwords) == 12


async def test_a_message_walks_the_mesh_with_each_component_limited_to_its_own_subjects(
    server: Server, tmp_path: Path
) -> None:
    gateway = await server.connect("gateway")
    gw_js = gateway.jetstream(timeout=DENIED_WAIT_S)
    await ensure_streams(gw_js, SUBJECTS, SETTINGS)

    # The gateway submits to the first step only; skipping the screening actors is refused.
    envelope = make_envelope("where is my order?")
    assert (await submit(gw_js, SUBJECTS, envelope)).stream == SUBJECTS.stream
    skipping = make_envelope("cancel order 42")
    skipping.slip.index = skipping.slip.steps.index(ActorName.DECISION_ROUTER)
    await _denied(server, "gateway", publish_to_current(gw_js, SUBJECTS, skipping))

    # The first actor provisions and pulls its own consumer, forwards, acks.
    first = await server.connect(FIRST)
    js = first.jetstream(timeout=DENIED_WAIT_S)
    await ensure_streams(js, SUBJECTS, SETTINGS)
    await ensure_consumer(js, SUBJECTS, ActorName.SENTIMENT_ANALYZER, SETTINGS)
    sub = await js.pull_subscribe_bind(
        durable=SUBJECTS.consumer(ActorName.SENTIMENT_ANALYZER), stream=SUBJECTS.stream
    )
    [msg] = await sub.fetch(1, timeout=5)
    received = type(envelope).model_validate_json(msg.data)
    assert received.message_id == envelope.message_id
    received.slip.advance()
    await publish_to_current(js, SUBJECTS, received)
    await msg.ack_sync(timeout=5)
    await dlq.store(js, SUBJECTS, dlq.DeadLetter(actor=ActorName.SENTIMENT_ANALYZER, reason="test",
                    permanent=True, deliveries=1, envelope=received), dedup_key="t1")  # fmt: skip

    # ...but not another actor's consumer, dead letters, or anyone's inbox or history.
    await _denied(server, FIRST, ensure_consumer(js, SUBJECTS, ActorName.EXECUTION_COORDINATOR, SETTINGS))
    await _denied(server, FIRST, dlq.list_records(js, SUBJECTS, limit=10))
    history_as_actor = HistoryClient(first, SUBJECTS, timeout_s=DENIED_WAIT_S)
    await _denied(server, FIRST, history_as_actor.conversation("sess-test"))
    before = len(server.violations(FIRST))
    await first.subscribe(f"{inbox_prefix('gateway')}.>")
    await first.subscribe(SUBJECTS.history_query)
    await first.flush()
    for _ in range(40):
        if len(server.violations(FIRST)) >= before + 2:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(
            f"subscriptions to another's inbox and to history queries were not refused: {server.errors}"
        )

    # The history service stores what the last actor publishes and answers the gateway.
    history_nc = await server.connect("history")
    service = HistoryService(SETTINGS, nc=history_nc, db_path=str(tmp_path / "history.db"))
    await service.start()
    try:
        last = await server.connect(ActorName.RESPONSE_AGGREGATOR.value)
        last_js = last.jetstream(timeout=DENIED_WAIT_S)
        event = history_event(received, fallback_result(received))
        await last_js.publish(
            SUBJECTS.history_events, event.model_dump_json().encode(), stream=SUBJECTS.stream
        )
        client = HistoryClient(gateway, SUBJECTS, timeout_s=5)
        for _ in range(50):
            if await client.conversation("sess-test", customer_email=received.customer_email):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("history never answered with the stored turn")
        # The history service cannot forward envelopes.
        await _denied(
            server, "history", submit(history_nc.jetstream(timeout=DENIED_WAIT_S), SUBJECTS, envelope)
        )
    finally:
        await service.stop()

    # The admin lists and replays dead letters.
    admin = await server.connect("admin")
    admin_js = admin.jetstream(timeout=5)
    [stored] = await dlq.list_records(admin_js, SUBJECTS, limit=10)
    replayed = await dlq.replay(admin_js, SUBJECTS, stored.id)
    assert replayed.message_id == envelope.message_id
    assert server.violations("admin") == []
    assert server.violations(ActorName.RESPONSE_AGGREGATOR.value) == []
