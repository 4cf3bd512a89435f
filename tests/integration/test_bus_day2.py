"""Day-2 faults: the bus changed under a running mesh by an administrator or an accident (docs/bus.md,
"When the bus changes under the mesh"). The mesh's stream or an actor's consumer deleted, a consumer's
or the stream's configuration edited by hand, the server's store wiped: the actor processes put the
declared configuration back and the next message is answered, instead of stalling in silence.

Each test runs the real process code (`ActorProcess`: connect, provision, hosts) with the test actors
of `tests/support/bus_actors.py` on a real nats-server, and does to the server what `nats stream rm`,
`nats consumer rm` or `nats consumer edit` would do, through nats-py's JetStream management API."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DiscardPolicy
from nats.js.errors import APIError, NotFoundError

from actormesh_runtime.bus import host as host_module
from actormesh_runtime.bus.approval_executor import ApprovalExecutor
from actormesh_runtime.bus.connection import consumer_config
from actormesh_runtime.bus.process import ActorProcess
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.embedded_nats import EmbeddedNats, nats_server_binary
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.errors import TransientError
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings
from tests.support.bus_actors import (
    WORKER,
    BusRig,
    Recorder,
    SinkAggregator,
    WorkerActor,
    bus_rig,
    fast_settings,
)
from tests.support.eventually import eventually_async

pytestmark = pytest.mark.integration

RESTORED_WITHIN_S = 60.0
"""Generous: a restore takes a few API requests once noticed."""


async def fail_once(envelope: Envelope, call: int) -> None:
    if call == 1:
        raise TransientError("upstream 503, once")


@contextlib.asynccontextmanager
async def running_mesh(
    settings: RuntimeSettings, recorder: Recorder, processes: list[ActorProcess] | None = None
) -> AsyncIterator[BusRig]:
    """The worker and the aggregator, each as its own actor process (`actormesh actor NAME`, added
    to `processes` when given), and a rig that sends them envelopes; the worker fails each message's
    first delivery transiently."""
    async with bus_rig(settings) as rig:

        def factory(name: ActorName, deps: ActorDeps) -> WorkerActor | SinkAggregator:
            return WorkerActor(recorder, fail_once) if name == WORKER else SinkAggregator(deps)

        if processes is None:
            processes = []
        processes += [
            ActorProcess(name, settings, factory) for name in (WORKER, ActorName.RESPONSE_AGGREGATOR)
        ]
        runs = [asyncio.create_task(p.run()) for p in processes]
        try:
            await eventually_async(lambda: all(p.hosts for p in processes), what="both hosts started")
            await rig.ask(rig.envelope("before the fault"))
            yield rig
        finally:
            for process in processes:
                process.stop_event.set()
            await asyncio.gather(*runs, return_exceptions=True)


@pytest.fixture
def checked_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hosts check their consumer and the streams every half second instead of every 30 s."""
    monkeypatch.setattr(host_module, "RECONCILE_EVERY_S", 0.5)


async def consumer_of(js: JetStreamContext, rig: BusRig) -> ConsumerConfig | None:
    try:
        return (await js.consumer_info(rig.subjects.stream, rig.subjects.consumer(WORKER))).config
    except NotFoundError:
        return None


async def stream_exists(rig: BusRig) -> bool:
    with contextlib.suppress(NotFoundError):
        return (await rig.js.stream_info(rig.subjects.stream)).config.name == rig.subjects.stream
    return False


async def test_a_deleted_work_stream_is_created_again_and_the_next_message_answered(nats_server: str) -> None:
    settings = fast_settings(nats_server, actor_http_port=0)
    async with running_mesh(settings, Recorder()) as rig:
        await rig.js.delete_stream(rig.subjects.stream)  # `nats stream rm`

        await eventually_async(
            lambda: stream_exists(rig), what="the work stream created again", timeout_s=RESTORED_WITHIN_S
        )
        result = await rig.ask(rig.envelope("after the stream was deleted"), timeout_s=RESTORED_WITHIN_S)
        assert result.response == "echo: after the stream was deleted"


async def test_a_deleted_consumer_is_created_again_and_its_waiting_message_answered(nats_server: str) -> None:
    settings = fast_settings(nats_server, actor_http_port=0)
    async with running_mesh(settings, Recorder()) as rig:
        await rig.js.delete_consumer(rig.subjects.stream, rig.subjects.consumer(WORKER))  # `nats consumer rm`

        # Sent at once: it waits in the worker's inbox, which nobody reads until the consumer is back.
        result = await rig.ask(rig.envelope("into a queue without a consumer"), timeout_s=RESTORED_WITHIN_S)
        assert result.response == "echo: into a queue without a consumer"


async def test_a_consumer_made_push_based_is_made_a_pull_consumer_again(nats_server: str) -> None:
    settings = fast_settings(nats_server, actor_http_port=0)
    async with running_mesh(settings, Recorder()) as rig:
        stream, name = rig.subjects.stream, rig.subjects.consumer(WORKER)

        async def made_push() -> bool:
            # JetStream cannot turn a pull consumer into a push one: delete it and create it anew, and
            # again should the host have restored it in between.
            with contextlib.suppress(NotFoundError):
                await rig.js.delete_consumer(stream, name)
            with contextlib.suppress(APIError):
                await rig.js.add_consumer(
                    stream, durable_name=name, deliver_subject=f"{rig.reply_prefix}.push",
                    filter_subject=rig.subjects.actor(WORKER),
                )  # fmt: skip
                return True
            return False

        await eventually_async(made_push, what="the consumer made push based by hand")
        result = await rig.ask(rig.envelope("to a pull actor"), timeout_s=RESTORED_WITHIN_S)
        assert result.response == "echo: to a pull actor"
        restored = await consumer_of(rig.js, rig)
        assert restored is not None
        assert restored.deliver_subject is None


@pytest.mark.usefixtures("checked_often")
async def test_a_hand_edited_max_deliver_is_put_back_and_a_retry_happens(nats_server: str) -> None:
    settings = fast_settings(nats_server, actor_http_port=0)
    recorder = Recorder()
    async with running_mesh(settings, recorder) as rig:
        declared = consumer_config(rig.subjects, WORKER, settings)
        edited = declared.evolve(max_deliver=1, ack_wait=60.0)  # `nats consumer edit`: no retries at all
        await rig.js.add_consumer(rig.subjects.stream, edited)

        async def put_back() -> bool:
            config = await consumer_of(rig.js, rig)
            return config is not None and (config.max_deliver, config.ack_wait) == (
                declared.max_deliver, declared.ack_wait,
            )  # fmt: skip

        await eventually_async(
            put_back, what="max_deliver and ack_wait put back", timeout_s=RESTORED_WITHIN_S
        )
        # The worker fails each message's first delivery: only a redelivery answers it, and with the
        # edit left in place (max_deliver 1) there is none.
        result = await rig.ask(rig.envelope("needs one retry"), timeout_s=RESTORED_WITHIN_S)
        assert result.response == "echo: needs one retry"
        assert recorder.calls[result.message_id] == 2


@pytest.mark.usefixtures("checked_often")
async def test_a_hand_set_stream_limit_is_lifted_before_it_drops_queued_work(nats_server: str) -> None:
    settings = fast_settings(nats_server, actor_http_port=0)
    async with running_mesh(settings, Recorder()) as rig:
        info = await rig.js.stream_info(rig.subjects.stream)
        # One message at most, discarding the oldest (the stream's own discard policy): a work queue
        # past its limit loses waiting work without a word to anyone.
        assert info.config.discard == DiscardPolicy.OLD
        await rig.js.update_stream(info.config.evolve(max_msgs=1))

        async def lifted() -> bool:
            return (await rig.js.stream_info(rig.subjects.stream)).config.max_msgs == -1

        await eventually_async(lifted, what="the stream's max_msgs put back", timeout_s=RESTORED_WITHIN_S)
        futures = [await rig.send(rig.envelope(f"burst {i}")) for i in range(5)]
        results = await asyncio.wait_for(asyncio.gather(*futures), RESTORED_WITHIN_S)
        assert sorted(r.response for r in results) == [f"echo: burst {i}" for i in range(5)]


async def test_a_wiped_store_is_provisioned_again_after_the_server_restarts(
    nats_process: EmbeddedNats,
) -> None:
    settings = fast_settings(nats_process.url, actor_http_port=0)
    async with running_mesh(settings, Recorder()) as rig:
        await nats_process.astop()
        shutil.rmtree(nats_process.store_dir / "jetstream")  # every stream and consumer gone
        await nats_process.astart()  # the same port: the clients reconnect to it

        await eventually_async(
            lambda: stream_exists(rig), what="the work stream created again", timeout_s=RESTORED_WITHIN_S,
            ignoring=(Exception,),  # the rig's own connection may still be reconnecting
        )  # fmt: skip
        result = await rig.ask(rig.envelope("after the store was wiped"), timeout_s=RESTORED_WITHIN_S)
        assert result.response == "echo: after the store was wiped"


async def test_a_deleted_approvals_consumer_is_created_again_and_reads_the_next_command(
    nats_server: str,
) -> None:
    settings = fast_settings(nats_server)
    async with bus_rig(settings) as rig:
        executor = ApprovalExecutor(rig.nc, rig.subjects, rig.deps)
        await executor.start()
        try:
            stream, name = rig.subjects.stream, rig.subjects.approvals_executor_consumer
            await rig.js.delete_consumer(stream, name)  # `nats consumer rm`
            # Not a valid command: the executor terminates it, which is all this test needs to see.
            sent = await rig.js.publish(rig.subjects.approvals_execute, b"{}", stream=stream)

            async def delivered() -> bool:
                with contextlib.suppress(NotFoundError):
                    return (await rig.js.consumer_info(stream, name)).delivered.stream_seq >= sent.seq
                return False

            await eventually_async(delivered, what="the command delivered", timeout_s=RESTORED_WITHIN_S)
        finally:
            await executor.stop()


@contextlib.contextmanager
def without_jetstream(port: int) -> Iterator[None]:
    """A nats-server without JetStream on `port`, as after a restart with `-js` left out."""
    binary = nats_server_binary()
    assert binary is not None
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_jetstream_switched_off_makes_the_actors_unready_until_it_is_back(
    nats_process: EmbeddedNats,
) -> None:
    settings = fast_settings(nats_process.url, actor_http_port=0)
    processes: list[ActorProcess] = []
    async with running_mesh(settings, Recorder(), processes) as rig:
        port = nats_process.port
        await nats_process.astop()
        with without_jetstream(port):

            def unready() -> list[str]:
                # Connected, and each process names its consumer: not merely "nats not connected".
                missing = [m for p in processes for m in p.missing()]
                gone = [m for m in missing if "unavailable" in m]
                return gone if len(gone) == len(processes) == len(missing) else []

            await eventually_async(unready, what="each consumer named", timeout_s=RESTORED_WITHIN_S)
        await nats_process.astart()

        await eventually_async(
            lambda: stream_exists(rig), what="the work stream provisioned", timeout_s=RESTORED_WITHIN_S,
            ignoring=(Exception,),
        )  # fmt: skip
        result = await rig.ask(rig.envelope("JetStream is back"), timeout_s=RESTORED_WITHIN_S)
        assert result.response == "echo: JetStream is back"
        await eventually_async(
            lambda: not any(p.missing() for p in processes), what="ready again", timeout_s=RESTORED_WITHIN_S
        )
