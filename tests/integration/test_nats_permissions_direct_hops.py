"""`spec.actors.directHops`: the NATS permissions a direct hop needs, enforced by a real nats-server.

The server runs the nats.conf the operator renders (tests/support/rendered_nats.py).
A direct hop (bus/direct.py): the first actor pulls the chain's first JetStream delivery (the origin),
hands the envelope to the next actor's direct subject over core NATS, and whichever actor ends the chain
settles the origin — a delivery of ANOTHER actor's consumer, which it may not ack itself: it sends a
sealed settle to that actor, whose process acks. With the field on, each step is allowed and the settle
really settles the origin, both by hand and by the runtime's own actor processes, each on its own user
with the env its Deployment gets; with it off (the default), every step is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from actormesh_runtime.bus.connection import ensure_consumer, ensure_streams
from actormesh_runtime.bus.direct import RemoteOrigin, encode_hop, origin_of, seal, seal_key, settle_of
from actormesh_runtime.bus.process import ActorProcess
from actormesh_runtime.bus.publish import submit
from actormesh_runtime.catalog import ActorName, Env, Subjects
from actormesh_runtime.settings import RuntimeSettings
from tests.support.envelopes import make_envelope
from tests.support.eventually import eventually_async
from tests.support.nats_flush import server_has_seen
from tests.support.rendered_nats import DENIED_WAIT_S, Server, serving
from tests.unit.builder_helpers import children, index

pytestmark = [pytest.mark.integration]

SUBJECTS = Subjects("demo")
SETTINGS = RuntimeSettings(mesh_name="demo")
FIRST = ActorName.SENTIMENT_ANALYZER
NEXT = ActorName.INTENT_ANALYZER
THIRD = ActorName.CONTEXT_RETRIEVER
DIRECT = {"actors": {"directHops": True}}


async def _origin(server: Server) -> tuple[NATS, Msg]:
    """The chain's first delivery: the gateway submits, the first actor pulls (and does not ack)."""
    gateway = await server.connect("gateway")
    await ensure_streams(gateway.jetstream(timeout=5), SUBJECTS, SETTINGS)
    await submit(gateway.jetstream(timeout=5), SUBJECTS, make_envelope("where is my order?"))
    first = await server.connect(FIRST.value)
    js = first.jetstream(timeout=5)
    await ensure_consumer(js, SUBJECTS, FIRST, SETTINGS)
    sub = await js.pull_subscribe_bind(durable=SUBJECTS.consumer(FIRST), stream=SUBJECTS.stream)
    [msg] = await sub.fetch(1, timeout=5)
    return first, msg


async def _pending(nc: NATS) -> int:
    info = await nc.jetstream(timeout=5).consumer_info(SUBJECTS.stream, SUBJECTS.consumer(FIRST))
    return int(info.num_ack_pending)


async def _settled(nc: NATS) -> bool:
    return await _pending(nc) == 0


@pytest.fixture
async def direct(tmp_path: Path) -> AsyncIterator[Server]:
    async with serving(tmp_path, mesh=DIRECT) as s:
        yield s


@pytest.fixture
async def via_stream(tmp_path: Path) -> AsyncIterator[Server]:
    async with serving(tmp_path) as s:
        yield s


async def test_with_direct_hops_the_envelope_goes_direct_and_the_last_actor_settles_the_origin_via_its_actor(
    direct: Server,
) -> None:
    first, origin = await _origin(direct)
    assert origin.reply.startswith(f"$JS.ACK.{SUBJECTS.stream}.{SUBJECTS.consumer(FIRST)}.")
    first_key = seal_key(direct.passwords[FIRST.value])

    async def carry_out(msg: Msg) -> None:  # what the first actor's host does (`ActorHost._settle`)
        settle = settle_of(msg.data, SUBJECTS.stream, SUBJECTS.consumer(FIRST), first_key)
        if settle is not None:
            await first.publish(*settle)

    await first.subscribe(SUBJECTS.direct(FIRST), queue=SUBJECTS.consumer(FIRST), cb=carry_out)
    nxt = await direct.connect(NEXT.value)
    received: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_direct(msg: Msg) -> None:
        await received.put(msg)

    await nxt.subscribe(SUBJECTS.direct(NEXT), queue=SUBJECTS.consumer(NEXT), cb=on_direct)
    await server_has_seen(nxt)
    await server_has_seen(first)
    # A request, so a hop nobody receives comes back as "no responders" to the sender's own inbox.
    hop_payload = encode_hop(origin.reply, 0.0, origin.data, seal(first_key, origin.reply))
    await first.publish(SUBJECTS.direct(NEXT), hop_payload, reply=first.new_inbox())
    hop = await asyncio.wait_for(received.get(), timeout=5)
    found = origin_of(nxt, hop, SUBJECTS, SUBJECTS.consumer(NEXT))
    assert isinstance(found, tuple)
    remote = found[0]
    assert remote.data == origin.data
    assert isinstance(remote, RemoteOrigin)
    # The next actor ends the chain. It may not ack the FIRST actor's delivery itself...
    await nxt.publish(remote.reply, b"+ACK")
    await server_has_seen(nxt)
    await eventually_async(lambda: direct.violations(NEXT.value), what="a foreign ack refused")
    assert await _pending(first) == 1
    # ...but its sealed settle, carried out by the first actor, settles it.
    await remote.ack()
    await server_has_seen(nxt)
    await eventually_async(lambda: _settled(first), what="the origin acked", timeout_s=5)
    assert direct.violations(FIRST.value) == []
    assert len(direct.violations(NEXT.value)) == 1, "only the foreign ack was refused"
    # Still only its own direct subject to receive on.
    await nxt.subscribe(SUBJECTS.direct(ActorName.CONTEXT_RETRIEVER))
    await server_has_seen(nxt)
    await eventually_async(
        lambda: len(direct.violations(NEXT.value)) == 2, what="another's direct subject refused"
    )


async def test_without_direct_hops_every_step_of_a_direct_hop_is_refused(via_stream: Server) -> None:
    first, origin = await _origin(via_stream)
    nxt = await via_stream.connect(NEXT.value)
    await nxt.subscribe(SUBJECTS.direct(NEXT), queue=SUBJECTS.consumer(NEXT))
    await server_has_seen(nxt)
    await first.publish(SUBJECTS.direct(NEXT), encode_hop(origin.reply, 0.0, origin.data))
    await server_has_seen(first)
    await nxt.publish(origin.reply, b"+ACK")
    await server_has_seen(nxt)
    await eventually_async(
        lambda: len(via_stream.violations(NEXT.value)) >= 2 and via_stream.violations(FIRST.value),
        what="the direct subscribe and the foreign ack (next) and the direct publish (first) refused",
        timeout_s=DENIED_WAIT_S * 2,
    )
    assert await _pending(first) == 1  # the foreign ack never reached JetStream


class _Chain:
    """The first two steps as one-actor processes on `server` (each on its own user), an envelope
    submitted by the gateway, and what the stream then shows."""

    def __init__(self, server: Server, settings: dict[ActorName, RuntimeSettings]) -> None:
        self.server = server
        self.processes = [ActorProcess([actor], settings[actor]) for actor in (FIRST, NEXT)]
        self.running: list[asyncio.Task[int]] = []
        self.gateway: NATS | None = None
        self.history: NATS | None = None

    async def __aenter__(self) -> _Chain:
        self.running = [asyncio.create_task(p.run()) for p in self.processes]
        await eventually_async(
            lambda: all(p.nc is not None and not p.missing() for p in self.processes),
            what="both actor processes bound and listening", timeout_s=30,
        )  # fmt: skip
        self.gateway = await self.server.connect("gateway")
        self.history = await self.server.connect("history")
        await submit(self.gateway.jetstream(timeout=5), SUBJECTS, make_envelope("where is my order?"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for p in self.processes:
            p.stop_event.set()
        for task in self.running:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=60)
        assert [t.result() for t in self.running] == [0, 0]

    async def consumer(self, actor: ActorName) -> tuple[int, int]:
        """(deliveries, unacked) of `actor`'s consumer."""
        assert self.history is not None
        info = await self.history.jetstream(timeout=5).consumer_info(
            SUBJECTS.stream, SUBJECTS.consumer(actor)
        )
        return int(info.delivered.consumer_seq or 0), int(info.num_ack_pending)

    async def stored_for_third(self) -> bool:
        """The third step (no process runs it) has the envelope waiting in the stream."""
        assert self.gateway is not None
        subject = SUBJECTS.actor(THIRD)
        info = await self.gateway.jetstream(timeout=5).stream_info(SUBJECTS.stream, subjects_filter=subject)
        return (info.state.subjects or {}).get(subject, 0) == 1


async def test_actor_processes_on_their_own_users_hop_directly_and_settle_the_origin(
    direct: Server,
) -> None:
    """The first two steps run as one-actor processes (their users, `DIRECT_HOPS` from the runtime
    ConfigMap); the third has no process, so the second step's hop comes back unreceived and goes
    through the stream, and the second process acks the origin the FIRST one's consumer delivered."""
    async with _Chain(direct, {a: _settings(direct, a) for a in (FIRST, NEXT)}) as chain:
        await eventually_async(
            chain.stored_for_third, what="the third step's envelope in the stream", timeout_s=30
        )
        await eventually_async(
            lambda: _equals(chain.consumer(FIRST), (1, 0)),
            what="the origin delivered once and acked",
            timeout_s=30,
        )
        assert await chain.consumer(NEXT) == (0, 0)  # its step arrived directly, not through its consumer


async def test_a_process_with_direct_hops_on_a_server_without_their_permissions_goes_through_the_stream(
    via_stream: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A rollout that switched the setting on reached the actors before the server's permissions: each
    refused hop goes through the stream at once (not after ack_wait), and each process acks only the
    delivery of its own consumer, which it may."""
    settings = {a: _settings(via_stream, a).model_copy(update={"direct_hops": True}) for a in (FIRST, NEXT)}
    diverted = ("actormesh_direct_hops_diverted_total", {"actor": NEXT.value, "reason": "refused"})
    diverted_before = REGISTRY.get_sample_value(*diverted) or 0.0
    async with _Chain(via_stream, settings) as chain:
        # Well inside ack_wait (30 s): only the fallback, not a redelivery, moves it on this soon.
        await eventually_async(
            chain.stored_for_third, what="the third step's envelope in the stream", timeout_s=10
        )
        assert await chain.consumer(FIRST) == (1, 0)
        assert await chain.consumer(NEXT) == (1, 0), "the second step came through its consumer"
        refused = [r.getMessage() for r in caplog.records if r.name == "actormesh_runtime.bus.direct"]
        assert "direct hops refused by the server: through the stream for now" in refused
        assert REGISTRY.get_sample_value(*diverted) == diverted_before + 1, "counted as diverted, refused"


def _settings(server: Server, actor: ActorName) -> RuntimeSettings:
    data = index(children(DIRECT))[("ConfigMap", "demo-runtime-config")]["data"]
    return RuntimeSettings(
        mesh_name="demo",
        nats_url=server.url,
        nats_user=actor.value,
        nats_password=server.passwords[actor.value],
        actor_http_port=0,
        direct_hops=data[Env.DIRECT_HOPS] == "true",
    )


async def _equals(value: Awaitable[tuple[int, int]], expected: tuple[int, int]) -> bool:
    return await value == expected
