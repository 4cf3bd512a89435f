"""A long-running command that fails with LOG_FORMAT=json (what the operator sets in containers) ends
with its error as one JSON line, traceback inside, not as a multi-line traceback a log pipeline splits
into unparseable lines. Here: ACTOR_HTTP_PORT already taken, for an actor and the history service."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli_process import ACTORMESH

pytestmark = pytest.mark.integration


@pytest.fixture
def taken_port() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


@pytest.mark.parametrize("command", [["actor", "sentiment_analyzer"], ["history"]])
def test_a_failed_start_is_one_json_line(command: list[str], taken_port: int, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "OTEL_"))}
    env.update(LOG_FORMAT="json", SQLITE_DB_PATH=str(tmp_path / "history.db"))
    done = subprocess.run(
        [*ACTORMESH, *command, "--http-port", str(taken_port), "--nats-url", "nats://127.0.0.1:1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,  # a guard against a hang, not a measurement
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    [failure] = [r for r in records if r["level"] == "critical"]
    assert "address already in use" in failure["msg"], failure
    assert "Traceback" in failure["exc"]
