"""The embedded nats-server starts with JetStream on a random port and stops without a trace."""

from __future__ import annotations

import os
from pathlib import Path

import nats
import pytest

from actormesh_runtime.embedded_nats import EmbeddedNats, EmbeddedNatsError

pytestmark = pytest.mark.integration


async def test_fixture_server_has_jetstream(nats_server: str) -> None:
    nc = await nats.connect(nats_server)
    try:
        info = await nc.jetstream().account_info()
        assert info.limits is not None
    finally:
        await nc.close()


async def test_async_start_stop_leaves_no_process(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "n")
    async with server:
        pid = server.pid
        assert pid is not None
        assert server.url.startswith("nats://127.0.0.1:")
        nc = await nats.connect(server.url)
        await nc.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(EmbeddedNatsError):
        _ = server.url
