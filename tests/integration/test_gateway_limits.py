"""Gateway limits against real servers: buckets shared by two replicas through a real redis-server
(and what happens when it dies), the header-read deadline on a real uvicorn socket, and the
WebSocket frame rate and idle timeout on a real connection."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from actormesh_runtime.gateway.app import create_app, rate_limiter
from actormesh_runtime.gateway.server import GatewayServer
from actormesh_runtime.settings import RuntimeSettings
from tests.support.gateway import stack_settings, wait_ready
from tests.support.redis import RedisServer

pytestmark = pytest.mark.integration


def _replica(redis_url: str, per_minute: int) -> Any:
    return rate_limiter(RuntimeSettings(redis_url=redis_url, rate_limit_requests=per_minute, mesh_name="rl"))


async def test_two_replicas_share_one_bucket_and_fall_back_to_their_own_without_redis(
    redis_server: RedisServer,
) -> None:
    one, two = _replica(redis_server.url, 4), _replica(redis_server.url, 4)
    try:
        verdicts = [await (one if i % 2 else two).check("sub:john@example.com") for i in range(5)]
        assert [v.allowed for v in verdicts] == [True, True, True, True, False]
        assert {v.backend for v in verdicts} == {"redis"}
        assert 14 <= verdicts[-1].retry_after_s <= 15  # 4/min: a token every 15 s
        assert (await one.check("sub:jane@example.com")).allowed, "another principal, another bucket"

        redis_server.kill()
        local = [await one.check("sub:john@example.com") for _ in range(5)]
        assert [v.backend for v in local] == ["local"] * 5, "no Redis: decided per replica, never an error"
        assert [v.allowed for v in local] == [True, True, True, True, False]

        redis_server.start()  # empty, as a restarted cache
        await asyncio.sleep(1.1)  # the replica tries Redis again after a second
        back = await one.check("sub:john@example.com")
        assert back.backend == "redis"
        assert back.allowed
    finally:
        await one.close()
        await two.close()


async def _raw_request(port: int, data: bytes, read_timeout_s: float) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), read_timeout_s)
    finally:
        writer.close()


async def test_headers_that_never_finish_get_408_and_a_closed_connection(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path, header_read_timeout_s=0.5)
    server = GatewayServer(create_app(settings), port=0, header_read_timeout_s=0.5)
    async with server:
        await wait_ready(server.url)
        started = time.monotonic()
        partial = await _raw_request(server.port, b"POST /api/chat HTTP/1.1\r\nHost: gw\r\nX-Slow: ", 10)
        silent = await _raw_request(server.port, b"", 10)
        async with httpx.AsyncClient() as client:
            normal = await client.get(f"{server.url}/api/health")

    assert partial.startswith(b"HTTP/1.1 408"), partial
    assert silent.startswith(b"HTTP/1.1 408"), "a connection that sends nothing is closed too"
    assert time.monotonic() - started < 8
    assert normal.status_code == 200, "complete headers are unaffected"


async def _frames(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(count)]


async def test_a_websocket_over_its_frame_rate_gets_429_frames_and_stays_open(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path, ws_messages_per_minute=3)
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        async with connect(server.url.replace("http", "ws") + "/ws?session_id=rate-1") as ws:
            assert (await _frames(ws, 1))[0]["type"] == "connected"
            for _ in range(5):
                await ws.send(json.dumps({"type": "ping"}))
            replies = await _frames(ws, 5)

    assert [r["type"] for r in replies] == ["pong", "pong", "pong", "error", "error"]
    assert replies[3]["data"]["status"] == 429
    assert replies[3]["data"]["limit"] == "WS_MESSAGES_PER_MINUTE"
    assert replies[3]["data"]["retry_after_s"] > 0


async def test_an_idle_websocket_is_closed_with_4408(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, ws_idle_timeout_s=0.5)
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        async with connect(server.url.replace("http", "ws") + "/ws?session_id=idle-1") as ws:
            assert (await _frames(ws, 1))[0]["type"] == "connected"
            await asyncio.sleep(0.3)
            await ws.send(json.dumps({"type": "ping"}))  # activity resets the clock
            assert (await _frames(ws, 1))[0]["type"] == "pong"
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4408
    assert closed.value.rcvd.reason == "idle timeout"
