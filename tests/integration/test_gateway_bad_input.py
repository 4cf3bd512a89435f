"""Frames a client should not send, on a real gateway socket: each is refused with a close code that
blames the client, and none is logged as if the gateway had crashed.

Malformed JSON, unknown types and the like on `/ws` are covered in test_gateway_ws.py (`error`
frames), frames over WS_MAX_FRAME_BYTES in test_gateway_limits.py (1009).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close
from websockets.typing import Subprotocol

from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.auth import WS_PROTOCOL
from actormesh_runtime.gateway.server import GatewayServer
from tests.support.gateway import stack_settings, wait_ready

pytestmark = pytest.mark.integration


def _crashes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records that read as the gateway's own failure: error level, or a traceback."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def _closed_after(url: str, frame: bytes, *, text: bool) -> Close:
    """Connect, read `connected`, send `frame` (as a text frame when `text`), and return the close
    the server answers with (before the server's close, everything else it sends is skipped)."""
    async with connect(url, subprotocols=[Subprotocol(WS_PROTOCOL)]) as ws:
        await asyncio.wait_for(ws.recv(), 10)
        await ws.send(frame, text=text)
        with pytest.raises(ConnectionClosed) as closed:
            await _skip_until_closed(ws)
    assert closed.value.rcvd is not None, f"closed without a close frame: {closed.value!r}"
    return closed.value.rcvd


async def _skip_until_closed(ws: ClientConnection) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), 10)


async def test_a_binary_frame_on_the_agent_socket_closes_it_with_1003_naming_the_problem(
    nats_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The agents' protocol has no error frame: the refusal is the close code and its reason."""
    settings = stack_settings(nats_server, tmp_path)  # anonymous: a loopback caller is an agent
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        close = await _closed_after(server.url.replace("http", "ws") + "/ws/agent", b"\x00bin", text=False)

    assert close.code == 1003, close
    assert "binary frames are not supported" in close.reason
    assert _crashes(caplog) == []


@pytest.mark.parametrize("path", ["/ws/agent", "/ws?session_id=utf8-1"])
async def test_a_text_frame_that_is_not_utf8_closes_the_socket_with_1007_without_a_traceback(
    nats_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """uvicorn closes the socket itself (the app never sees the frame); the record it writes first
    stays in the log, as one warning line."""
    settings = stack_settings(nats_server, tmp_path)
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        close = await _closed_after(server.url.replace("http", "ws") + path, b"\xff\xfe{}", text=True)

    assert close.code == 1007, close
    assert _crashes(caplog) == []
    assert [r.levelno for r in caplog.records if "UTF-8" in r.getMessage()] == [logging.WARNING]
