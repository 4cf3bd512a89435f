"""`actormesh dev` and `actormesh ask` when the NATS server they are given cannot be reached: a clear
error naming the server (never its password) and a non-zero exit, instead of reconnecting forever; and
`actormesh dev` stopped by a signal while it is still starting stops, leaving no process behind."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli_process import ACTORMESH, acommunicate
from tests.support.ports import free_port, silent_listener

pytestmark = pytest.mark.integration

GUARD_S = 60.0
"""A margin against a hang, not a measurement: before the fix these commands never ended."""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "OTEL_", "JWT_"))}
    return {**env, "TMPDIR": str(tmp_path)}


async def _run(tmp_path: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *ACTORMESH,
        *args,
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await acommunicate(proc, GUARD_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_dev_with_an_unreachable_nats_url_says_so_and_exits(tmp_path: Path) -> None:
    port = free_port()  # nothing listens on it
    url = f"nats://admin:s3cret@127.0.0.1:{port}"
    code, output = await _run(tmp_path, "dev", "--nats-url", url, "--port", "0", "--data-dir", "data")
    assert code == 2, output
    assert f"cannot reach NATS at nats://127.0.0.1:{port}" in output, output
    assert "s3cret" not in output
    assert "Traceback" not in output


async def test_ask_with_an_unreachable_nats_url_says_so_and_exits(tmp_path: Path) -> None:
    port = free_port()
    url = f"nats://admin:s3cret@127.0.0.1:{port}"
    code, output = await _run(tmp_path, "ask", "--email", "john.doe@example.com", "hi", "--nats-url", url)
    assert code == 2, output
    assert f"cannot reach NATS at nats://127.0.0.1:{port}" in output, output
    assert "s3cret" not in output
    assert "Traceback" not in output


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A TCP listener that accepts and never answers: a NATS client connecting to it waits."""
    with silent_listener() as listener:
        yield listener


async def test_dev_stopped_while_starting_stops(tmp_path: Path, silent_server: socket.socket) -> None:
    port = silent_server.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        *ACTORMESH,
        "dev",
        "--nats-url",
        f"nats://127.0.0.1:{port}",
        "--port",
        "0",
        "--data-dir",
        "data",
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    accepted: socket.socket | None = None
    try:
        # The process is starting once it connects to the server; kept open and never answered, so
        # the connection is still being set up when the signal comes.
        accepted, _ = await asyncio.wait_for(asyncio.to_thread(silent_server.accept), GUARD_S)
        proc.terminate()  # what Ctrl-C does too: install_stop_signals handles both alike
        out, err = await acommunicate(proc, GUARD_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if accepted is not None:
            accepted.close()
    output = out.decode() + err.decode()
    assert "stopped while starting" in output, output
    assert proc.returncode == 1, output
    assert "Traceback" not in output
