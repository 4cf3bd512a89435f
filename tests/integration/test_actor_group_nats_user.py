"""An actor group's process (`actormesh actor A,B`) on the NATS user the operator renders for the group.

A real nats-server runs the rendered nats.conf of a mesh with `spec.actors.groups` (with the passwords
the StatefulSet's env gives it); the runtime's own `ActorProcess` connects as `group_<name>` with the
env the group's Deployment gets, binds every member's consumer, and processes and acks a message at a
member's step (ack only after the forward is published). The group's user is refused what no member
may do: another actor's consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actormesh_runtime.bus.connection import ensure_consumer
from actormesh_runtime.bus.process import ActorProcess
from actormesh_runtime.bus.publish import publish_to_current
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.settings import RuntimeSettings
from tests.support.envelopes import make_envelope
from tests.support.eventually import eventually_async
from tests.support.rendered_nats import DENIED_WAIT_S, Server, denied, serving
from tests.unit.builder_helpers import children, env_of, index

pytestmark = [pytest.mark.integration]

SPEC = {"actors": {"groups": [{"name": "routers", "actors": ["escalationRouter", "decisionRouter"]}]}}
SUBJECTS = Subjects("demo")
MEMBERS = [ActorName.DECISION_ROUTER, ActorName.ESCALATION_ROUTER]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with serving(tmp_path, mesh=SPEC) as s:
        yield s


async def test_group_process_runs_its_members_as_the_group_user(server: Server) -> None:
    deployment = index(children(SPEC))[("Deployment", "demo-routers")]
    env = env_of(deployment)
    user = env["NATS_USER"]
    assert user == "group_routers"
    settings = RuntimeSettings(
        mesh_name="demo",
        nats_url=server.url,
        nats_user=user,
        nats_password=server.passwords[env["NATS_PASSWORD"]["secretKeyRef"]["key"]],
        actor_http_port=0,
    )
    process = ActorProcess(MEMBERS, settings)
    running = asyncio.create_task(process.run())
    try:
        await eventually_async(lambda: process.nc is not None and not process.missing(), what="group ready")
        # A message at a member's step is pulled, handled, forwarded and acked by the group process.
        envelope = make_envelope("where is my order 1001?")
        envelope.slip.index = envelope.slip.steps.index(ActorName.DECISION_ROUTER)
        admin = await server.connect("admin")
        await publish_to_current(admin.jetstream(timeout=5), SUBJECTS, envelope)
        history_js = (await server.connect("history")).jetstream(timeout=5)

        async def handled() -> bool:
            info = await history_js.consumer_info(
                SUBJECTS.stream, SUBJECTS.consumer(ActorName.DECISION_ROUTER)
            )
            return info.delivered.stream_seq > 0 and info.num_ack_pending == 0 and info.num_pending == 0

        await eventually_async(handled, what="the decision router's message acked", timeout_s=30)
        # What no member may do stays refused to the group's user too.
        group = await server.connect(user)
        js = group.jetstream(timeout=DENIED_WAIT_S)
        await denied(server, user, ensure_consumer(js, SUBJECTS, ActorName.INTENT_ANALYZER, settings))
    finally:
        process.stop_event.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running, timeout=60)
    assert await running == 0
    # Only the deliberate probe above was refused: the process itself never hit a permission wall.
    assert len(server.violations(user)) == 1
