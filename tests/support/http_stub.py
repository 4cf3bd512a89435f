"""A tiny local HTTP server for one handler, and forwarding a request to a real API: how tests put a
misbehaving proxy in front of the mock commerce APIs (answers held back, garbled or rewritten)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.Response]]
FORWARDED_HEADERS = ("content-type", "idempotency-key")


@asynccontextmanager
async def serving(handle: Handler) -> AsyncIterator[str]:
    """Serve every method and path with `handle` on a free loopback port; yields the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def forward(upstream: str, request: web.Request) -> tuple[int, bytes]:
    """`request` asked of `upstream` (its content type and Idempotency-Key kept): (status, body)."""
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_HEADERS}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            request.method, upstream + request.path_qs, data=await request.read(), headers=headers
        ) as answer,
    ):
        return answer.status, await answer.read()
