"""`connect_with_retry`: a stop while nats-py is still connecting ends it, even when nats-py's retry
loop swallows the first cancel (an actor or history process then exits on SIGTERM instead of
reconnecting to an unreachable server until the kubelet kills it)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actormesh_runtime.bus import process
from actormesh_runtime.settings import RuntimeSettings
from tests.support.cancellation import retries_losing_the_first_cancel


async def test_a_stop_ends_a_connect_that_loses_the_first_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    inside = asyncio.Event()

    async def connect(settings: RuntimeSettings, *, name: str) -> Any:
        await retries_losing_the_first_cancel(events, inside)

    monkeypatch.setattr(process, "connect", connect)
    stop = asyncio.Event()
    connecting = asyncio.create_task(process.connect_with_retry(RuntimeSettings(), stop, name="test"))
    await inside.wait()  # the stop comes inside the first attempt
    stop.set()
    await asyncio.wait({connecting}, timeout=5)  # (wait_for's own cancel could end it instead)
    assert connecting.done(), "still connecting after the stop"
    assert connecting.result() is None
    assert "lost cancel" in events, "the first cancel was lost inside the connect"


async def test_a_connection_made_as_the_stop_came_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[bool] = []
    inside = asyncio.Event()

    class Connection:
        async def close(self) -> None:
            closed.append(True)

    async def connect(settings: RuntimeSettings, *, name: str) -> Any:
        try:
            inside.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return Connection()  # the connect finished in the same step as the cancel

    monkeypatch.setattr(process, "connect", connect)
    stop = asyncio.Event()
    connecting = asyncio.create_task(process.connect_with_retry(RuntimeSettings(), stop, name="test"))
    await inside.wait()
    stop.set()
    await asyncio.wait({connecting}, timeout=5)  # (wait_for's own cancel could end it instead)
    assert connecting.done(), "still connecting after the stop"
    assert connecting.result() is None
    assert closed == [True]
