"""Gateway limits against real servers: buckets shared by two replicas through a real redis-server
(and what happens when it dies), the agent API and its socket under the same limits as the customer
routes, the header-read deadline on a real uvicorn socket, and the WebSocket frame rate and idle
timeout on a real connection."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from actormesh_runtime.gateway.app import create_app, rate_limiter
from actormesh_runtime.gateway.auth import AGENT_ROLE, WS_BEARER_PREFIX, WS_PROTOCOL, mint_token
from actormesh_runtime.gateway.server import GatewayServer
from actormesh_runtime.gateway.slowclients import HEADERS_TOO_LARGE_REPLY, URI_TOO_LONG_REPLY
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.settings import RuntimeSettings
from tests.support.eventually import eventually_async
from tests.support.gateway import JOHN, stack_settings, wait_ready
from tests.support.redis import RedisServer, redis_keys

pytestmark = pytest.mark.integration

SECRET = "s" * 40
ALICE = "alice@shop.example"
"""A support agent who also shops with her work address."""


def _bearer(email: str, role: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, email, role=role)}"}


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
        keys = await redis_keys(redis_server.url, "actormesh:rl:ratelimit:*")
        assert len(keys) == 2  # john's and jane's, named by digest: no key says who is chatting
        assert not [k for k in keys if "@" in k or "john" in k or "example" in k], keys

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
    # No deadline passed to the server: it takes the app's HEADER_READ_TIMEOUT_S, as `actormesh dev`
    # relies on (it once served without one).
    server = GatewayServer(create_app(settings), port=0)
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


def _get(path: str = "/api/health", header_bytes: int = 0) -> bytes:
    """A GET with about `header_bytes` of headers besides Host, in 1 KB headers."""
    filler = [f"X-Filler-{i}: {'a' * 1000}" for i in range(header_bytes // 1000)]
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: gw", *filler, "", ""]).encode()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response read off a kept-alive connection: its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if line)
    lengths = [v for k, v in fields.items() if k.lower() == b"content-length"]
    return int(head.split(b" ", 2)[1]), await reader.readexactly(int(lengths[0]) if lengths else 0)


@pytest.mark.parametrize("deadline_s", [10.0, 0.0], ids=["with-header-deadline", "header-deadline-off"])
async def test_a_200_kb_header_block_gets_431_and_a_closed_connection(
    nats_server: str, tmp_path: Path, deadline_s: float
) -> None:
    """Before: llhttp bounds nothing and uvicorn keeps the URL and every header until the head is
    complete, so each connection could hold megabytes for the whole HEADER_READ_TIMEOUT_S (forever
    with the deadline off)."""
    settings = stack_settings(nats_server, tmp_path, header_read_timeout_s=deadline_s)
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        headers = await _raw_request(server.port, _get(header_bytes=200_000), 10)
        one_header = await _raw_request(
            server.port, _get().replace(b"Host", b"X-Big: " + b"b" * 200_000 + b"\r\nHost"), 10
        )
        long_url = await _raw_request(server.port, _get(path="/api/health?q=" + "a" * 200_000), 10)
        async with httpx.AsyncClient() as client:
            normal = await client.get(f"{server.url}/api/health")
            metrics = (await client.get(f"{server.url}/metrics")).text

    # Read to the end: the reply, then the server's close (nothing else: no 200, no 408 after it, so
    # refused at the bound, not at the header deadline).
    assert headers == HEADERS_TOO_LARGE_REPLY, headers[:300]
    assert one_header == HEADERS_TOO_LARGE_REPLY, one_header[:300]
    assert long_url == URI_TOO_LONG_REPLY, long_url[:300]
    assert normal.status_code == 200
    assert _counter(metrics, "actormesh_gateway_rejected_total", limit="MAX_HEADER_BYTES") >= 3


async def test_heads_under_the_bound_are_served_with_their_body_in_the_same_read(
    nats_server: str, tmp_path: Path
) -> None:
    """20 KB of headers are served under a 32 KiB bound; so is a 20 KB head sent with a 30 KB body in
    one write (50 KB, one segment on loopback, so one read: only the head counts)."""
    settings = stack_settings(nats_server, tmp_path, max_header_bytes=32 * 1024)
    filler = {f"x-filler-{i}": "a" * 1000 for i in range(20)}
    body = json.dumps({"message": "x" * 30_000, "customer_email": JOHN}).encode()
    head = [
        "POST /api/chat HTTP/1.1",
        "Host: gw",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in filler.items()),
    ]
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        async with httpx.AsyncClient() as client:
            health = await client.get(f"{server.url}/api/health", headers=filler)
        chat = await _raw_request(server.port, "\r\n".join([*head, "", ""]).encode() + body, 10)

    assert health.status_code == 200
    status, _, text = chat.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413 "), chat[:300]
    assert json.loads(text)["fields"][0]["field"] == "message", "the app read the body and judged the message"


async def test_each_request_on_a_keep_alive_connection_has_its_own_header_budget(
    nats_server: str, tmp_path: Path
) -> None:
    """Three 40 KB heads on one connection (120 KB in all) are served, kept alive and pipelined;
    a 100 KB head after them is refused."""
    settings = stack_settings(nats_server, tmp_path)
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            served = []
            for _ in range(3):
                writer.write(_get(header_bytes=40_000))
                served.append(await asyncio.wait_for(_response(reader), 10))
            writer.write(_get() + _get(header_bytes=40_000))  # pipelined: the second begins in the same read
            served += [await asyncio.wait_for(_response(reader), 10) for _ in range(2)]
            writer.write(_get(header_bytes=100_000))
            refused = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()

    assert [status for status, _ in served] == [200] * 5
    assert refused == HEADERS_TOO_LARGE_REPLY, refused[:300]


def _chunked_post(body: bytes, tail: bytes, chunk_bytes: int = 1000) -> bytes:
    """A chunked POST of `body` to /api/chat in `chunk_bytes` chunks; `tail` follows the last data
    chunk (a last chunk and trailers, or anything else)."""
    head = b"POST /api/chat HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
    chunks = [body[i : i + chunk_bytes] for i in range(0, len(body), chunk_bytes)]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + framed + tail


def _trailers(total_bytes: int) -> bytes:
    """A last chunk and about `total_bytes` of trailer fields in 1 KB fields, ended."""
    fields = b"".join(b"X-Trailer-%d: %s\r\n" % (i, b"t" * 1000) for i in range(total_bytes // 1000))
    return b"0\r\n" + fields + b"\r\n"


EMPTY_MESSAGE = json.dumps({"message": "", "customer_email": JOHN}).encode()
"""Answered 422 at once, once the app has the whole body."""


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(_trailers(200_000), id="200-trailer-fields"),
        pytest.param(b"0\r\nX-Big: " + b"b" * 200_000, id="one-200-kb-trailer"),
        pytest.param(b"1;ext=" + b"e" * 200_000, id="200-kb-chunk-extension"),
    ],
)
async def test_200_kb_of_chunked_trailers_or_extensions_get_431_and_a_closed_connection(
    nats_server: str, tmp_path: Path, tail: bytes
) -> None:
    """Before: the trailer fields after a chunked body's last chunk reached uvicorn as headers, each
    kept whole by the parser and appended to the request's header list: megabytes held per request,
    unbounded by MAX_HEADER_BYTES (and, with BODY_READ_TIMEOUT_S=0, for as long as the client liked)."""
    settings = stack_settings(nats_server, tmp_path)
    async with GatewayServer(create_app(settings), port=0) as server, httpx.AsyncClient() as client:
        await wait_ready(server.url)
        metrics = (await client.get(f"{server.url}/metrics")).text
        before = _counter(metrics, "actormesh_gateway_rejected_total", limit="MAX_HEADER_BYTES")
        refused = await _raw_request(server.port, _chunked_post(EMPTY_MESSAGE, tail), 15)
        normal = await client.get(f"{server.url}/api/health")
        metrics = (await client.get(f"{server.url}/metrics")).text

    # Read to the end: the 431, then the close (no 422 after the trailers, no 408 at the body deadline).
    assert refused == HEADERS_TOO_LARGE_REPLY, refused[:300]
    assert normal.status_code == 200
    assert _counter(metrics, "actormesh_gateway_rejected_total", limit="MAX_HEADER_BYTES") == before + 1


async def test_chunked_bodies_with_trailers_under_the_bound_are_served_each_with_its_own_budget(
    nats_server: str, tmp_path: Path
) -> None:
    """Two chunked requests on one kept-alive connection, each a 30 KB body in 1 KB chunks with 40 KB
    of trailers (80 KB of trailers on the connection, the first sent with its body in one write, the
    second's trailers in a write of their own): both bodies reach the app and are judged."""
    settings = stack_settings(nats_server, tmp_path)
    body = json.dumps({"message": "", "customer_email": JOHN, "pad": "p" * 30_000}).encode()
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(_chunked_post(body, _trailers(40_000)))
            first = await asyncio.wait_for(_response(reader), 10)
            writer.write(_chunked_post(body, b""))
            await writer.drain()
            writer.write(_trailers(40_000))
            second = await asyncio.wait_for(_response(reader), 10)
        finally:
            writer.close()

    for status, text in (first, second):
        assert status == 422, text[:300]
        assert "message" in json.loads(text)["detail"], text[:300]


async def test_trailers_over_the_bound_after_the_response_close_the_connection() -> None:
    """The gateway reads every chunked body before it answers (`BodySizeLimit`), so its refusal is a
    431; an app that answers first (GatewayServer serves any app) has its response on the wire when the
    trailers go over the bound. A second response would answer a request never sent: the connection
    is closed instead, and the GET pipelined after the trailers is not served."""
    app = FastAPI()

    @app.get("/answers-at-once")
    async def answers_at_once() -> dict[str, bool]:
        return {"ok": True}

    head = b"GET /answers-at-once HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
    async with GatewayServer(app, port=0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(head + b"2\r\n{}\r\n")
            answered = await asyncio.wait_for(_response(reader), 10)
            writer.write(_trailers(200_000) + _get("/answers-at-once"))
            rest = await asyncio.wait_for(reader.read(), 15)
        finally:
            writer.close()

    assert answered == (200, b'{"ok":true}')
    assert rest == b"", rest[:300]


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
    settings = stack_settings(nats_server, tmp_path, ws_idle_timeout_s=2.0)
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        async with connect(server.url.replace("http", "ws") + "/ws?session_id=idle-1") as ws:
            assert (await _frames(ws, 1))[0]["type"] == "connected"
            # Past half the idle time, with a second to spare for a loaded machine's stalls.
            await asyncio.sleep(1.0)
            await ws.send(json.dumps({"type": "ping"}))  # activity resets the clock
            assert (await _frames(ws, 1))[0]["type"] == "pong"
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4408
    assert closed.value.rcvd.reason == "idle timeout"


def _counter(metrics_text: str, name: str, **labels: str) -> float:
    """A counter's value in a Prometheus text exposition (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def _rejections(client: httpx.AsyncClient, url: str) -> tuple[float, float]:
    """(rate-limit refusals, per-replica fallback decisions) as /metrics tells them."""
    text = (await client.get(f"{url}/metrics")).text
    return (
        _counter(text, "actormesh_gateway_rejected_total", limit="RATE_LIMIT_REQUESTS"),
        _counter(text, "actormesh_gateway_rate_limit_fallbacks_total"),
    )


async def test_two_gateway_replicas_enforce_one_limit_through_redis_over_http(
    nats_server: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Two real gateway replicas on one real Redis: a principal's 4 requests a minute are shared, the
    fifth gets 429 + Retry-After + a body naming the limit; Redis killed → each replica allows its own
    4 (never a 5xx); Redis hung (SIGSTOP) → the same, decided after the client's short timeout."""
    settings = stack_settings(nats_server, tmp_path, redis_url=redis_server.url, rate_limit_requests=4,
                              jwt_secret=SECRET, gateway_anonymous=False)  # fmt: skip
    one = GatewayServer(create_app(settings), port=0)
    two = GatewayServer(create_app(settings), port=0)

    async def statuses(client: httpx.AsyncClient, subject: str, urls: list[str]) -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {mint_token(SECRET, subject)}"}
        return [
            await client.get(f"{url}/api/messages/msg-{i}", headers=headers) for i, url in enumerate(urls)
        ]

    async with HistoryService(settings), one, two, httpx.AsyncClient(timeout=10) as client:
        await wait_ready(one.url)
        await wait_ready(two.url)
        refused_before, fallbacks_before = await _rejections(client, one.url)

        shared = await statuses(client, "a@example.com", [one.url, two.url] * 3)
        assert [r.status_code == 429 for r in shared] == [False] * 4 + [True] * 2, "one bucket for both"
        refused = shared[4]
        # 4/min: a token every 15 s, less the time the requests took (seconds on a loaded machine).
        assert 10 <= int(refused.headers["retry-after"]) <= 15, refused.headers["retry-after"]
        assert refused.json()["limit"] == "RATE_LIMIT_REQUESTS"
        assert refused.json()["error"] == "rate_limited"
        assert (await _rejections(client, one.url))[0] == refused_before + 2

        redis_server.kill()
        alone = await statuses(client, "b@example.com", [one.url] * 5 + [two.url] * 5)
        assert [r.status_code == 429 for r in alone] == ([False] * 4 + [True]) * 2, "a bucket per replica"
        assert {r.status_code for r in alone} == {404, 429}, "never an error: unknown message, or limited"
        assert (await _rejections(client, one.url))[1] >= fallbacks_before + 10

        redis_server.start()
        await asyncio.sleep(1.1)  # each replica tries Redis again after a second
        redis_server.pause()
        try:
            hung = await statuses(client, "c@example.com", [one.url] * 5)
        finally:
            redis_server.resume()
        assert [r.status_code == 429 for r in hung] == [False] * 4 + [True], "a hung Redis: per replica"
        assert hung[4].json()["limit"] == "RATE_LIMIT_REQUESTS"
        assert (await _rejections(client, one.url))[1] >= fallbacks_before + 15


async def test_an_agent_over_the_rate_gets_429_on_the_agent_api_and_its_socket_handshake(
    nats_server: str, tmp_path: Path
) -> None:
    """Auth on, 3 a minute: an agent's token spends its bucket on /api/approvals, then gets 429 there
    and on the /ws/agent handshake (Retry-After, the body naming the limit); her customer token with
    the same subject is another principal and still served; the console page stays open."""
    settings = stack_settings(nats_server, tmp_path, rate_limit_requests=3, jwt_secret=SECRET,
                              gateway_anonymous=False)  # fmt: skip
    agent = mint_token(SECRET, ALICE, role=AGENT_ROLE)
    offered = [Subprotocol(WS_PROTOCOL), Subprotocol(WS_BEARER_PREFIX + agent)]
    server = GatewayServer(create_app(settings), port=0)
    async with HistoryService(settings), server, httpx.AsyncClient(timeout=10) as client:
        await wait_ready(server.url)
        refused_before = (await _rejections(client, server.url))[0]
        headers = {"Authorization": f"Bearer {agent}"}
        served = [await client.get(f"{server.url}/api/approvals", headers=headers) for _ in range(3)]
        refused = await client.get(f"{server.url}/api/approvals", headers=headers)
        with pytest.raises(InvalidStatus) as denied:
            async with connect(server.url.replace("http", "ws") + "/ws/agent", subprotocols=offered):
                pass
        as_customer = await client.get(f"{server.url}/api/conversations/alice-1", headers=_bearer(ALICE))
        console = await client.get(f"{server.url}/console")
        refused_after = (await _rejections(client, server.url))[0]

    assert [r.status_code for r in served] == [200] * 3, [r.text for r in served]
    handshake = denied.value.response
    for status, retry_after, body in [
        (refused.status_code, refused.headers["retry-after"], refused.json()),
        (handshake.status_code, handshake.headers["Retry-After"], json.loads(handshake.body or b"{}")),
    ]:
        assert status == 429
        assert 10 <= int(retry_after) <= 20, retry_after  # 3/min: a token every 20 s, less the time taken
        assert body["limit"] == "RATE_LIMIT_REQUESTS"
        assert body["error"] == "rate_limited"
    assert as_customer.status_code == 404, "her customer token has its own bucket (and no such session)"
    assert console.status_code == 200
    assert refused_after == refused_before + 2


@pytest.mark.parametrize(
    ("path", "role"),
    [
        pytest.param("/api/conversations/s-1", None, id="customer-route"),
        pytest.param("/api/approvals", AGENT_ROLE, id="agent-route"),
    ],
)
async def test_over_max_concurrent_requests_a_real_replica_answers_503(
    nats_server: str, tmp_path: Path, path: str, role: str | None
) -> None:
    """No actor runs: a chat waits its REQUEST_TIMEOUT_S (then 504), holding the replica's only slot;
    a customer's or an agent's request meanwhile gets 503."""
    settings = stack_settings(nats_server, tmp_path, max_concurrent_requests=1, request_timeout_s=4.0,
                              jwt_secret=SECRET, gateway_anonymous=False)  # fmt: skip
    body = {"message": "Where is my order ORD-10001?", "customer_email": JOHN}
    caller = _bearer(JOHN if role is None else ALICE, role)
    server = GatewayServer(create_app(settings), port=0)
    async with HistoryService(settings), server, httpx.AsyncClient(timeout=30) as client:
        await wait_ready(server.url)

        async def chat() -> httpx.Response:
            """Sent again while the probing GETs below hold the slot: it must get in once."""
            while True:
                reply = await client.post(f"{server.url}/api/chat", json=body, headers=_bearer(JOHN))
                if reply.status_code != 503 or "limit" not in reply.json():
                    return reply

        waiting = asyncio.create_task(chat())

        async def refused() -> httpx.Response | None:
            reply = await client.get(f"{server.url}{path}", headers=caller)
            return reply if reply.status_code == 503 and "limit" in reply.json() else None

        reply = await eventually_async(refused, what="a 503 while the chat holds the slot", timeout_s=20)
        probe = await client.get(f"{server.url}/api/ready")
        assert (await waiting).status_code == 504, "the chat itself was admitted"
        metrics = (await client.get(f"{server.url}/metrics")).text

    assert reply.headers["retry-after"] == "1"
    assert reply.json()["limit"] == "MAX_CONCURRENT_REQUESTS"
    assert probe.status_code == 200, "probes are never limited"
    assert _counter(metrics, "actormesh_gateway_rejected_total", limit="MAX_CONCURRENT_REQUESTS") >= 1


async def test_a_body_that_stops_arriving_gets_408_on_a_real_socket(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, body_read_timeout_s=0.5)
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        head = b"POST /api/chat HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n"
        reply = await _raw_request(server.port, head + b'{"message": "hel', 10)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"{server.url}/metrics")).text

    status, _, body = reply.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408"), reply
    assert json.loads(body)["limit"] == "BODY_READ_TIMEOUT_S"
    assert _counter(metrics, "actormesh_gateway_rejected_total", limit="BODY_READ_TIMEOUT_S") >= 1


async def test_a_websocket_frame_over_ws_max_frame_bytes_is_refused_and_counted(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path, ws_max_frame_bytes=4096)
    async with GatewayServer(create_app(settings), port=0) as server, httpx.AsyncClient() as client:
        await wait_ready(server.url)

        async def refused() -> float:
            text = (await client.get(f"{server.url}/metrics")).text
            return _counter(text, "actormesh_gateway_rejected_total", limit="WS_MAX_FRAME_BYTES")

        before = await refused()
        async with connect(server.url.replace("http", "ws") + "/ws?session_id=big-1") as ws:
            assert (await _frames(ws, 1))[0]["type"] == "connected"
            await ws.send("x" * 5000)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)

        async def counted() -> float:
            return await refused() - before

        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert await eventually_async(counted, what="the refusal counted", timeout_s=10) == 1


async def test_a_head_near_the_bound_with_a_few_kb_of_trailers_in_the_same_read_is_served(
    nats_server: str, tmp_path: Path
) -> None:
    """Before: in the part of a read where the head ended, the head's tail was counted as the chunked
    body's framing, so a 63 KB head (under MAX_HEADER_BYTES, 64 KiB) followed by 3 KB of trailers got
    431 although neither went over the bound."""
    settings = stack_settings(nats_server, tmp_path)
    assert settings.max_header_bytes == 64 * 1024
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(62))
    request = _chunked_post(EMPTY_MESSAGE, _trailers(3_000)).replace(
        b"Host: gw\r\n", b"Host: gw\r\n" + filler, 1
    )
    head = request[: request.index(b"\r\n\r\n") + 4]
    assert 62_000 < len(head) < settings.max_header_bytes < len(request)
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(request)  # one write: the head ends inside a part that carries trailers too
            status, text = await asyncio.wait_for(_response(reader), 10)
        finally:
            writer.close()

    assert status == 422, text[:300]
    assert "message" in json.loads(text)["detail"], text[:300]
