"""Stopping the approvals executor hands back the commands it fetched but did not run (docs/approvals.md):
the one it is running finishes, the rest are nak'ed, so another execution_coordinator runs them at once
instead of after the consumer's 60 s ack wait. A real nats-server; a customers API that answers when the
test lets it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats.errors
import pytest
from aiohttp import web

from actormesh_runtime.approvals import ApprovalCommand, decide
from actormesh_runtime.bus.approval_executor import ApprovalExecutor
from tests.support.bus_actors import bus_rig, fast_settings
from tests.support.envelopes import JOHN
from tests.support.eventually import eventually_async
from tests.support.history_events import filed
from tests.support.http_stub import serving

pytestmark = pytest.mark.integration


class HeldCustomers:
    """A customers API whose lookups wait until `answer` is set, then find nobody (404)."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()
        self.asked = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.asked += 1
        await self.answer.wait()
        return web.Response(status=404)


@asynccontextmanager
async def held_serving(api: HeldCustomers) -> AsyncIterator[None]:
    async with serving(api.handle) as api.url:
        try:
            yield
        finally:
            api.answer.set()


def command(order: str) -> bytes:
    [record] = filed(JOHN, order, session=f"s-{order}").approvals
    return ApprovalCommand(approval=decide(record, "approve", "ann")).model_dump_json().encode()


async def test_commands_fetched_but_not_run_are_handed_back_when_it_stops(nats_server: str) -> None:
    api = HeldCustomers()
    async with held_serving(api):
        settings = fast_settings(nats_server, customer_api_url=api.url)
        async with bus_rig(settings) as rig:
            executor = ApprovalExecutor(rig.nc, rig.subjects, rig.deps)
            await executor.start()
            stopped = False
            try:
                for order in ("ORD-10001", "ORD-10002", "ORD-10003"):
                    await rig.js.publish(rig.subjects.approvals_execute, command(order))
                consumer = rig.subjects.approvals_executor_consumer

                async def all_fetched() -> bool:
                    info = await rig.js.consumer_info(rig.subjects.stream, consumer)
                    return api.asked == 1 and info.num_ack_pending == 3

                await eventually_async(all_fetched, what="one command running, three fetched")
                stopping = asyncio.create_task(executor.stop())
                # The stop has begun (the loop is told) while the command still runs.
                await eventually_async(executor._stopping.is_set, what="the stop begun")
                api.answer.set()  # the running one finishes
                await stopping
                stopped = True

                # Another executor gets them at once, well within the consumer's 60 s ack wait, which
                # is what they waited out before.
                other = await rig.js.pull_subscribe_bind(consumer, rig.subjects.stream)
                taken: list[bytes] = []

                async def handed_back() -> bool:
                    with contextlib.suppress(nats.errors.TimeoutError, TimeoutError):
                        taken.extend(m.data for m in await other.fetch(2, timeout=1.0))
                    return len(taken) >= 2

                await eventually_async(handed_back, what="the two not run handed back", timeout_s=20)
            finally:
                if not stopped:
                    await executor.stop()

    assert api.asked == 1, "only the command that was running ran"
    orders = sorted(ApprovalCommand.model_validate_json(data).approval.order.order_id for data in taken)
    assert orders == ["ORD-10002", "ORD-10003"]
