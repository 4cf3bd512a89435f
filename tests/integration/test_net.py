"""Listening sockets make asyncio disable Nagle on accepted connections (no 40 ms keep-alive stalls)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from actormesh_runtime.net import bind_tcp

pytestmark = pytest.mark.integration


class _Record(asyncio.Protocol):
    def __init__(self, seen: asyncio.Future[int]) -> None:
        self.seen = seen

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        self.seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        transport.close()


async def test_accepted_connections_have_tcp_nodelay() -> None:
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[int] = loop.create_future()
    listener = bind_tcp("127.0.0.1", 0)
    server = await loop.create_server(lambda: _Record(seen), sock=listener)
    try:
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(seen, timeout=10) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_a_port_in_use_raises_and_leaks_no_socket() -> None:
    first = bind_tcp("127.0.0.1", 0)
    first.listen(1)
    try:
        port = first.getsockname()[1]
        try:
            bind_tcp("127.0.0.1", port)
        except OSError:
            pass
        else:
            raise AssertionError("binding a listening port twice should fail")
    finally:
        first.close()
