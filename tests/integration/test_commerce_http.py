"""The commerce client's HTTP exchange over real sockets (aiohttp): responses of any status come
back, and no response (refused, silent server) is an `ExchangeFailed` the client retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from actormesh_runtime.clients.commerce import CommerceClient, RetryPolicy
from actormesh_runtime.clients.http import AiohttpExchange, ExchangeFailed
from actormesh_runtime.errors import UpstreamUnavailable
from actormesh_runtime.mocks.server import MockPorts, MocksHandle, serve_mocks
from actormesh_runtime.settings import RuntimeSettings
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def mocks() -> AsyncIterator[MocksHandle]:
    handle = await serve_mocks("127.0.0.1", MockPorts(0, 0, 0))
    yield handle
    await handle.stop()


async def test_any_status_comes_back_with_its_body(mocks: MocksHandle) -> None:
    exchange = AiohttpExchange(timeout_s=5)
    try:
        found = await exchange.request(
            "GET", f"{mocks.customer_api_url}/customers/by-email/john.doe@example.com"
        )
        missing = await exchange.request("GET", f"{mocks.orders_api_url}/orders/ORD-NOPE")
    finally:
        await exchange.aclose()

    assert found.status == 200
    assert b'"customer_id"' in found.body
    assert missing.status == 404


async def test_a_refused_connection_is_an_exchange_failure() -> None:
    exchange = AiohttpExchange(timeout_s=5)
    try:
        with pytest.raises(ExchangeFailed, match="Connect"):
            await exchange.request("GET", f"http://127.0.0.1:{free_port()}/x")
    finally:
        await exchange.aclose()


async def test_a_silent_server_times_out_as_an_exchange_failure() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    exchange = AiohttpExchange(timeout_s=0.3)
    try:
        with pytest.raises(ExchangeFailed, match="timed out"):
            await exchange.request("GET", f"http://127.0.0.1:{port}/x")
    finally:
        await exchange.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert accepted, "the request reached the server"


async def test_the_client_retries_an_unreachable_api_then_gives_up() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = RuntimeSettings(customer_api_url=url, orders_api_url=url, tracking_api_url=url)
    client = CommerceClient(settings, retry=RetryPolicy(attempts=2, base_delay_s=0.0))
    try:
        with pytest.raises(UpstreamUnavailable, match="after 2 attempts"):
            await client.customer_by_email("john.doe@example.com")
    finally:
        await client.aclose()


async def test_calls_reuse_kept_alive_connections(mocks: MocksHandle) -> None:
    exchange = AiohttpExchange(timeout_s=5)
    url = f"{mocks.customer_api_url}/customers/by-email/john.doe@example.com"
    try:
        for _ in range(5):
            assert (await exchange.request("GET", url)).status == 200
        session = exchange._session
        assert session is not None
        connector = session.connector
        assert connector is not None
        idle = sum(len(conns) for conns in connector._conns.values())
    finally:
        await exchange.aclose()
    assert idle == 1, "five sequential calls, one connection kept alive"
