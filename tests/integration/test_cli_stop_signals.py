"""`actormesh ask` and `actormesh dev` run an embedded nats-server in a session of its own (no terminal
signal reaches it). Stopped by SIGTERM or SIGHUP (a CI step's timeout, `timeout(1)`, a closed terminal
or dropped SSH session), they still stop it: `ask` mid-conversation, also removing its temporary
directory; `dev` once it serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli_process import ACTORMESH, children, kill_leftovers, widget_url
from tests.support.eventually import eventually
from tests.support.ports import silent_listener

pytestmark = pytest.mark.integration

GUARD_S = 120.0
"""A margin against a hang, not a measurement."""


@pytest.fixture
def silent_llm() -> Iterator[socket.socket]:
    """An "LLM endpoint" that accepts and never answers: the response generator waits on it, so the
    conversation is still under way when the signal comes."""
    with silent_listener() as listener:
        yield listener


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_ask_stopped_by_a_signal_leaves_nothing_behind(
    sig: signal.Signals, silent_llm: socket.socket, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "OTEL_", "LLM_", "LITELLM_"))}
    env.update(
        TMPDIR=str(scratch),
        LITELLM_MODEL="openai/test-model",
        LLM_API_BASE=f"http://127.0.0.1:{silent_llm.getsockname()[1]}/v1",
        LLM_API_KEY="test-key",
        LLM_TIMEOUT_S="600",
    )
    proc = subprocess.Popen(
        [*ACTORMESH, "ask", "--email", "john.doe@example.com", "Where is my order ORD-10002?"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    servers: list[int] = []
    accepted: list[socket.socket] = []
    try:
        silent_llm.settimeout(GUARD_S)
        accepted.append(silent_llm.accept()[0])  # the mesh is mid-conversation now
        servers = children(proc.pid)
        assert servers, "the embedded nats-server runs as a child of the command"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for conn in accepted:
            conn.close()
    leftover = kill_leftovers(servers)
    assert not leftover, f"nats-server left running after {sig.name}: {err.decode()[-2000:]}"
    assert not list(scratch.glob("actormesh-nats-*")), "the temporary data directory is removed"
    assert proc.returncode == 128 + sig, err.decode()[-2000:]
    assert b"Traceback" not in err


def test_dev_stopped_by_sighup_stops_its_nats_server(tmp_path: Path) -> None:
    out, err = tmp_path / "dev.out", tmp_path / "dev.err"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "OTEL_", "JWT_"))}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [*ACTORMESH, "dev", "--port", "0", "--data-dir", str(tmp_path / "data")],
            stdout=stdout, stderr=stderr, env=env, cwd=tmp_path,
        )  # fmt: skip
    spawned: list[int] = []
    try:
        eventually(lambda: widget_url(out, proc), what="the widget URL printed", timeout_s=GUARD_S)
        spawned = children(proc.pid)
        assert spawned, "the embedded nats-server runs as a child of the command"
        proc.send_signal(signal.SIGHUP)
        code = proc.wait(timeout=GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    leftover = kill_leftovers(spawned)
    assert not leftover, f"nats-server left running after SIGHUP: {err.read_text()[-2000:]}"
    assert code == 0, err.read_text()[-2000:]


def test_dev_stopped_while_its_nats_server_starts_stops_it(tmp_path: Path) -> None:
    """Ctrl-C as soon as the embedded server has been spawned, before it is ready (most runs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "OTEL_", "JWT_"))}
    proc = subprocess.Popen(
        [*ACTORMESH, "dev", "--port", "0", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
    )  # fmt: skip
    spawned: list[int] = []
    try:
        spawned = eventually(lambda: children(proc.pid), what="nats-server spawned", interval_s=0.005)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    leftover = kill_leftovers(spawned)
    assert not leftover, f"nats-server left running: {err.decode()[-2000:]}"
    assert proc.returncode in (0, 1), err.decode()[-2000:]  # 1: stopped while starting
    assert b"Traceback" not in err
