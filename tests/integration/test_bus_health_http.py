"""The actor and history processes' health endpoint (`HealthServer`) on a real socket, against
requests no probe sends: over-long lines are refused with a status, not a crash.

Routing is unit-tested (tests/unit/test_bus_health.py); the endpoint inside a running actor process
is in test_bus_process.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from actormesh_runtime.bus.health import HEAD_TIMEOUT_S, MAX_LINE_BYTES, HealthServer

pytestmark = pytest.mark.integration

LONG = b"a" * (MAX_LINE_BYTES + 4096)
PROBE = b"GET /healthz HTTP/1.1\r\nHost: h\r\n"


@contextlib.asynccontextmanager
async def _health_server() -> AsyncIterator[int]:
    server = HealthServer(lambda: [], registry=CollectorRegistry())
    port = await server.start()
    try:
        yield port
    finally:
        await server.stop()


async def _exchange(port: int, request: bytes) -> bytes:
    """Send the whole request and read the whole answer, as a client that does not give up early."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(b"GET /healthz?" + LONG + b" HTTP/1.1\r\nHost: h\r\n\r\n", b"414", id="request-line"),
        pytest.param(PROBE + b"X-Big: " + LONG + b"\r\n\r\n", b"431", id="header"),
        # Far past the stream's buffer: most of it is still unread when the answer is written.
        pytest.param(b"GET /healthz?" + LONG * 16 + b" HTTP/1.1\r\n\r\n", b"414", id="megabyte-line"),
        pytest.param(PROBE + b"X-Big: " + LONG * 16, b"431", id="header-without-end"),
    ],
)  # fmt: skip
async def test_an_over_long_line_is_answered_with_a_4xx_and_the_server_keeps_serving(
    caplog: pytest.LogCaptureFixture, request_bytes: bytes, status: bytes
) -> None:
    async with _health_server() as port:
        refused = await _exchange(port, request_bytes)
        after = await _exchange(port, PROBE + b"\r\n")

    assert refused.startswith(b"HTTP/1.1 " + status + b" "), refused[:200]
    assert refused.endswith(b"longer than %d bytes\n" % MAX_LINE_BYTES), refused[-200:]
    assert after.startswith(b"HTTP/1.1 200 OK"), after
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_request_with_a_large_body_gets_405_naming_the_allowed_methods(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The body is never read (no route takes one); the client must still get the answer, not a
    reset from the server closing with the body unread."""
    body = b"x" * (2 * 1024 * 1024)
    async with _health_server() as port:
        head_lines = b"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body)
        answer = await _exchange(port, head_lines + body)

    head = answer.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 405 "), answer[:200]
    assert b"\r\nAllow: GET, HEAD" in head, head
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def _closed_within(reader: asyncio.StreamReader, wait_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), wait_s) is not None
    except TimeoutError:
        return False


async def test_headers_that_keep_coming_are_cut_off_by_one_deadline_for_the_whole_head() -> None:
    """One header line every half second, each well within the wait for a line: a minute's worth of
    lines, twelve times HEAD_TIMEOUT_S, must not all be accepted."""
    async with _health_server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\n")
            closed = False
            for n in range(int(HEAD_TIMEOUT_S * 12 / 0.5)):
                try:
                    writer.write(b"X-Slow-%d: 1\r\n" % n)
                    await writer.drain()
                except ConnectionError:
                    closed = True
                if closed or await _closed_within(reader, 0.5):
                    closed = True
                    break
        finally:
            writer.close()

    assert closed, "the server kept reading headers for a minute"
