"""The mesh's other pull consumers under a day-2 fault (docs/bus.md, "When the bus changes under the
mesh"): the history writer's, the approval outcomes' (both in the history service) and the approvals
executor's. Each is deleted by hand while its reader has a pull request open (nats-server closes it
with a 409 "Consumer Deleted"), made push based by hand (every pull request then gets a 409 "Consumer
is push based"), or loses its stream; the reader must create it again as declared and read what was
published after the fault. The actor host's own consumer is covered by test_bus_day2.py.

A real nats-server; the fault is what `nats consumer rm`, `nats consumer add --target` or `nats stream
rm` would do, through nats-py's JetStream management API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from nats.js.api import ConsumerConfig
from nats.js.errors import APIError, NotFoundError

from actormesh_runtime.bus.approval_executor import ApprovalExecutor
from actormesh_runtime.bus.connection import ensure_streams
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.history.service import HistoryService
from tests.support.bus_actors import BusRig, bus_rig, fast_settings
from tests.support.eventually import eventually_async

pytestmark = pytest.mark.integration

RESTORED_WITHIN_S = 60.0
"""Generous: a restore takes a few API requests once noticed."""

Fault = Callable[[BusRig, str, str], Awaitable[None]]


async def delete_consumer(rig: BusRig, name: str, subject: str) -> None:
    await rig.js.delete_consumer(rig.subjects.stream, name)  # `nats consumer rm`


async def make_push_based(rig: BusRig, name: str, subject: str) -> None:
    """JetStream cannot turn a pull consumer into a push one: delete it and create it anew (again,
    should the reader have restored it in between)."""
    stream = rig.subjects.stream

    async def made_push() -> bool:
        with contextlib.suppress(NotFoundError):
            await rig.js.delete_consumer(stream, name)
        with contextlib.suppress(APIError):
            config = ConsumerConfig(
                durable_name=name, deliver_subject=f"{rig.reply_prefix}.push", filter_subject=subject
            )
            await rig.js.add_consumer(stream, config)
            return True
        return False

    await eventually_async(made_push, what="the consumer made push based by hand")


async def delete_stream(rig: BusRig, name: str, subject: str) -> None:
    """`nats stream rm`; then the stream created again as the actor hosts do (`bus.reconcile`), but
    without the consumer, which only its reader declares."""
    await rig.js.delete_stream(rig.subjects.stream)
    await ensure_streams(rig.js, rig.subjects, rig.settings)


FAULTS = {"deleted": delete_consumer, "made push based": make_push_based, "stream deleted": delete_stream}


@contextlib.asynccontextmanager
async def history_running(rig: BusRig, tmp_path: Path) -> AsyncIterator[None]:
    service = HistoryService(rig.settings, db_path=str(tmp_path / "history.db"))
    await service.start()
    try:
        yield
    finally:
        await service.stop()


@contextlib.asynccontextmanager
async def executor_running(rig: BusRig, tmp_path: Path) -> AsyncIterator[None]:
    executor = ApprovalExecutor(rig.nc, rig.subjects, rig.deps)
    await executor.start()
    try:
        yield
    finally:
        await executor.stop()


def history_writer(s: Subjects) -> tuple[str, str]:
    return s.history_consumer, s.history_events


def approval_outcomes(s: Subjects) -> tuple[str, str]:
    return s.approvals_outcome_consumer, s.approvals_outcome


def approvals_executor(s: Subjects) -> tuple[str, str]:
    return s.approvals_executor_consumer, s.approvals_execute


READERS = {
    "history writer": (history_running, history_writer),
    "approval outcomes": (history_running, approval_outcomes),
    "approvals executor": (executor_running, approvals_executor),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("reader", READERS)
async def test_a_consumer_gone_while_read_is_created_again_and_reads_what_came_after(
    nats_server: str, tmp_path: Path, reader: str, fault: str
) -> None:
    running, consumer = READERS[reader]
    async with bus_rig(fast_settings(nats_server)) as rig, running(rig, tmp_path):
        name, subject = consumer(rig.subjects)
        stream = rig.subjects.stream
        await eventually_async(
            lambda: consumer_is_pull(rig, name), what="the consumer created", timeout_s=RESTORED_WITHIN_S
        )
        await FAULTS[fault](rig, name, subject)
        # Not valid: the reader terminates it, which removes it from the work-queue stream; that is
        # all this test needs to see.
        sent = await rig.js.publish(subject, b"{}", stream=stream)

        async def read() -> bool:
            try:
                await rig.js.get_msg(stream, sent.seq)
            except NotFoundError:
                return True
            return False

        await eventually_async(
            read, what="the message published after the fault read", timeout_s=RESTORED_WITHIN_S
        )
        assert await consumer_is_pull(rig, name)


async def consumer_is_pull(rig: BusRig, name: str) -> bool:
    with contextlib.suppress(NotFoundError):
        info = await rig.js.consumer_info(rig.subjects.stream, name)
        return info.config.deliver_subject is None
    return False
