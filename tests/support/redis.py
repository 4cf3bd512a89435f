"""`redis_server` fixture: a real `redis-server` on a random port with a tmp dir, killable and restartable.

Re-exported by tests/integration/conftest.py. Yields a `RedisServer`: `.url`, `.kill()` (SIGKILL,
like a crashed pod), `.start()` (again on the same port, empty, as a restarted cache would be) and
`.pause()`/`.resume()` (SIGSTOP/SIGCONT: a hung Redis). On Linux the server ends with the test
process, even a SIGKILLed one (`embedded_nats.spawn_tied_to_this_process`).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from actormesh_runtime.embedded_nats import spawn_tied_to_this_process
from tests.conftest import require_binary
from tests.support.eventually import NotYet, eventually
from tests.support.ports import free_port

__all__ = ["RedisServer", "redis_server"]

_READY_TIMEOUT_S = 10.0


class RedisServer:
    def __init__(self, binary: str, workdir: Path, port: int) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("redis-server already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "redis.log"
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(log),
            "--daemonize",
            "no",
        ]
        # Tied to this process: a pytest run killed by a timeout or SIGKILL leaves no redis-server behind.
        self._process = spawn_tied_to_this_process(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        process = self._process
        with contextlib.suppress(NotYet):
            eventually(
                lambda: process.poll() is not None or self._answers_ping(),
                what="redis-server",
                timeout_s=_READY_TIMEOUT_S,
                interval_s=0.02,
            )
        if not self._answers_ping():
            self.kill()
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"redis-server did not start on port {self.port}:\n{tail}")

    def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: a hung Redis (connections stay open, nothing answers)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    binary = require_binary("redis-server", "apt-get install -y redis-server (.ci/run does it)")
    server = RedisServer(binary, tmp_path / "redis", free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def redis_keys(url: str, pattern: str = "*") -> set[str]:
    """Every key of the server at `url` matching `pattern` (SCAN, as an operator would list them)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, decode_responses=True)
    try:
        return {key async for key in client.scan_iter(pattern)}
    finally:
        await client.aclose()
