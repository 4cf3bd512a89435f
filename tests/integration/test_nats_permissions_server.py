"""The NATS users and permissions the operator renders, enforced by a real nats-server.

The server runs the rendered nats.conf (paths and ports relocated) with the env the StatefulSet gives it
(passwords from the operator's own generator). Each component connects as its user, with the inbox
prefix the catalog names, and does its real job with the runtime's own functions — provisioning streams
and consumers, submitting, pulling, acking, forwarding, dead-lettering, answering and asking history
queries, listing and replaying dead letters — and each is refused what another component does.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.errors import Error as NatsError

from actormesh_operator.builders import nats as nats_builder
from actormesh_operator.builders.generated import NATS_PASSWORD_BYTES
from actormesh_operator.reconcile.generated import random_value
from actormesh_runtime.bus import dlq
from actormesh_runtime.bus.connection import ensure_consumer, ensure_streams
from actormesh_runtime.bus.errorpath import fallback_result
from actormesh_runtime.bus.publish import publish_to_current, submit
from actormesh_runtime.catalog import ActorName, inbox_prefix
from actormesh_runtime.history.protocol import HistoryClient
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.replies.result import history_event
from tests.harness.pki import _Authority, _name
from tests.support.envelopes import make_envelope
from tests.support.eventually import eventually_async
from tests.support.nats_flush import server_has_seen
from tests.support.rendered_nats import (
    DENIED_WAIT_S,
    SETTINGS,
    SUBJECTS,
    Server,
    denied,
    nats_binary,
    server_from_rendered_config,
    serving,
)

pytestmark = [pytest.mark.integration]

FIRST = ActorName.SENTIMENT_ANALYZER.value


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with serving(tmp_path) as s:
        yield s


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
    await denied(server, "gateway", publish_to_current(gw_js, SUBJECTS, skipping))

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
    await denied(server, FIRST, ensure_consumer(js, SUBJECTS, ActorName.EXECUTION_COORDINATOR, SETTINGS))
    await denied(server, FIRST, dlq.list_records(js, SUBJECTS, limit=10))
    history_as_actor = HistoryClient(first, SUBJECTS, timeout_s=DENIED_WAIT_S)
    await denied(server, FIRST, history_as_actor.conversation("sess-test"))
    before = len(server.violations(FIRST))
    await first.subscribe(f"{inbox_prefix('gateway')}.>")
    await first.subscribe(SUBJECTS.history_query)
    await first.subscribe(SUBJECTS.any_reply)  # the customers' answers, on their way to the gateway
    await server_has_seen(first)
    await eventually_async(
        lambda: len(server.violations(FIRST)) >= before + 3,
        what="subscriptions to another's inbox, to history queries and to replies refused",
        timeout_s=10,
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
        await eventually_async(
            lambda: client.conversation("sess-test", customer_email=received.customer_email),
            what="history to answer with the stored turn",
            timeout_s=5,
            interval_s=0.1,
        )
        # It reports the mesh's queue gauges: every consumer and both streams are readable to it.
        assert service.queue_metrics is not None
        await service.queue_metrics.refresh()
        # The history service cannot forward envelopes.
        await denied(
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


async def test_tls_from_the_certificate_secret(tmp_path: Path) -> None:
    """spec.nats.tls: the server serves the Secret's certificate on the client port; a client with the
    Secret's CA (what NATS_TLS_CA points at) connects, plain TCP and an unknown CA are refused."""
    (tmp_path / "tls").mkdir()
    authority = _Authority(tmp_path / "tls", "ca")
    leaf = authority.issue(tmp_path / "tls", "leaf", _name("demo-nats"), server=True)
    leaf.cert.rename(tmp_path / "tls" / nats_builder.TLS_CERT)
    leaf.key.rename(tmp_path / "tls" / nats_builder.TLS_KEY)
    spec = {"tls": {"secretName": "nats-cert"}}
    with server_from_rendered_config(tmp_path, spec) as (url, passwords):
        trusted = ssl.create_default_context(cafile=str(authority.pair.cert))
        nc = await nats.connect(
            url, user="gateway", password=passwords["gateway"], inbox_prefix=inbox_prefix("gateway"),
            tls=trusted, tls_hostname="localhost", allow_reconnect=False, connect_timeout=5,
        )  # fmt: skip
        try:
            await ensure_streams(nc.jetstream(timeout=5), SUBJECTS, SETTINGS)
            assert nc.connected_server_version is not None
        finally:
            await nc.close()
        # The server requires TLS before anything else (a plain CONNECT is never read) ...
        host, port = url.removeprefix("nats://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        info = json.loads((await reader.readline()).decode().removeprefix("INFO "))
        writer.close()
        assert info["tls_required"] is True
        # ... and a client that does not trust the Secret's CA is refused.
        other = _Authority(tmp_path, "other-ca")
        with pytest.raises(ssl.SSLCertVerificationError):
            await nats.connect(
                url, user="gateway", password=passwords["gateway"],
                tls=ssl.create_default_context(cafile=str(other.pair.cert)), tls_hostname="localhost",
                allow_reconnect=False, connect_timeout=5, max_reconnect_attempts=0,
            )  # fmt: skip


def test_generated_passwords_always_parse_as_nats_config_values(tmp_path: Path) -> None:
    """nats-server parses a `$VAR` value like any config value: a password starting with a digit or `-`
    becomes a number or a date and the server refuses to start (token_urlsafe did so about once in three
    meshes). Hundreds of values from the operator's generator must all be accepted."""
    binary = nats_binary()
    users = 12
    config = tmp_path / "users.conf"
    entries = ", ".join(f"{{user: u{i}, password: $P{i}}}" for i in range(users))
    config.write_text(f"port: 4222\nauthorization {{ users = [{entries}] }}\n")
    for _ in range(25):
        values = {f"P{i}": random_value(NATS_PASSWORD_BYTES) for i in range(users)}
        result = subprocess.run(
            [binary, "-t", "-c", str(config)], env={**os.environ, **values}, capture_output=True, text=True,
            timeout=30, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (result.stderr, values)
