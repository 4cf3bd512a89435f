"""The gateway's connect loop ends on stop() even when the cancellation is lost inside a NATS call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actormesh_runtime.gateway import service
from actormesh_runtime.gateway.service import Gateway
from actormesh_runtime.settings import RuntimeSettings


async def test_stop_ends_the_connect_loop_when_nats_turns_the_cancel_into_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nats-py answers a cancellation inside connect with its own TimeoutError; a retry loop catching
    `Exception` would then retry forever against an unreachable server and stop() would never return."""
    attempts = 0
    connecting = asyncio.Event()

    async def open_bus(*_: Any, **__: Any) -> Any:
        nonlocal attempts
        attempts += 1
        connecting.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise TimeoutError("nats: timeout") from None
        raise AssertionError("unreachable")

    monkeypatch.setattr(service, "open_bus", open_bus)
    gateway = Gateway(RuntimeSettings(mesh_name="unit"), instance_id="g1")
    await gateway.start()
    await asyncio.wait_for(connecting.wait(), timeout=5)
    # Not wait_for(stop()): its timeout would cancel stop() and so deliver a second cancel.
    stopping = asyncio.create_task(gateway.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    stopping.cancel()
    assert stopping in done, "stop() hangs: the connect loop retried after its cancellation"
    assert attempts == 1
