"""The customer-context cache on a real redis-server: hit, Redis killed mid-run, Redis back on the same port;
no key holding a customer's address, and an invalidation reaching what an older version cached.

The mock APIs are served over real HTTP on random ports; context_retriever runs as in a deployment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from actormesh_runtime.actors.context_retriever import ContextRetriever
from actormesh_runtime.envelope import CustomerContext
from actormesh_runtime.mocks.server import MockPorts, MocksHandle, serve_mocks
from actormesh_runtime.policy.orders import MAX_CONTEXT_ORDERS, not_found_sentence
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings
from actormesh_runtime.storage.cache import ContextCache, context_key, generation_key
from actormesh_runtime.storage.session import open_session_store
from actormesh_runtime.storage.stores import open_store
from tests.support.commerce import envelope_for
from tests.support.eventually import eventually_async
from tests.support.redis import RedisServer, redis_keys

pytestmark = pytest.mark.integration

EMAIL = "john.doe@example.com"


@pytest.fixture
async def mocks() -> AsyncIterator[MocksHandle]:
    handle = await serve_mocks("127.0.0.1", MockPorts(0, 0, 0))
    yield handle
    await handle.stop()


def settings_for(mocks: MocksHandle, redis: RedisServer, mesh: str) -> RuntimeSettings:
    return RuntimeSettings(
        mesh_name=mesh,
        redis_url=redis.url,
        customer_api_url=mocks.customer_api_url,
        orders_api_url=mocks.orders_api_url,
        tracking_api_url=mocks.tracking_api_url,
    )


def degraded_total() -> float:
    return REGISTRY.get_sample_value("actormesh_cache_degraded_total", {"store": "context"}) or 0.0


async def test_cache_survives_redis_going_away_and_coming_back(
    mocks: MocksHandle, redis_server: RedisServer
) -> None:
    settings = settings_for(mocks, redis_server, "cache-redis")
    actor = ContextRetriever(ActorDeps(settings=settings, publisher=None))  # type: ignore[arg-type]
    await actor.start()

    async def ask() -> CustomerContext:
        env = envelope_for(EMAIL)
        await actor.handle(env)
        assert env.context is not None
        assert env.context.found, "every request must succeed, with or without Redis"
        assert env.context.customer_id == "CUST-1001"
        return env.context

    try:
        assert (await ask()).cached is False
        assert (await ask()).cached is True  # served by Redis

        redis_server.kill()
        before = degraded_total()
        for _ in range(3):
            assert (await ask()).cached is False  # no cache, still answered from the APIs
        assert degraded_total() > before

        redis_server.start()  # same port, empty
        # The first call after the retry interval reconnects and refills; then hits come from Redis again.
        await eventually_async(lambda: _cached(ask), what="a cached context once Redis is back")
    finally:
        await actor.stop()


async def test_an_invalidation_wins_over_a_fill_already_under_way(
    mocks: MocksHandle, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """context_retriever has read the APIs when execution_coordinator (another process: another cache
    on the same Redis) changes the order and invalidates; the fill then stores what it read. Before, that
    stale context was every later message's for the whole TTL."""
    settings = settings_for(mocks, redis_server, "cache-race")
    actor = ContextRetriever(ActorDeps(settings=settings, publisher=None))  # type: ignore[arg-type]
    coordinator_cache = ContextCache(
        open_store(settings, "context"), mesh=settings.mesh_name, ttl_s=settings.cache_ttl
    )
    await actor.start()
    fetched, resume = asyncio.Event(), asyncio.Event()
    fetch = actor.fetch

    async def fetch_then_wait(*args: Any, **kwargs: Any) -> CustomerContext:
        context = await fetch(*args, **kwargs)
        fetched.set()
        await resume.wait()
        return context

    async def ask() -> CustomerContext:
        env = envelope_for(EMAIL)
        await actor.handle(env)
        assert env.context is not None
        return env.context

    try:
        monkeypatch.setattr(actor, "fetch", fetch_then_wait)
        filling = asyncio.ensure_future(ask())
        await fetched.wait()
        await coordinator_cache.invalidate(EMAIL)
        resume.set()
        assert (await filling).cached is False
        monkeypatch.setattr(actor, "fetch", fetch)
        assert (await ask()).cached is False, "the fill that straddled the invalidation is not served"
        assert (await ask()).cached is True
    finally:
        await coordinator_cache.close()
        await actor.stop()


async def test_no_redis_key_holds_a_customers_address(mocks: MocksHandle, redis_server: RedisServer) -> None:
    """Before: `actormesh:<mesh>:ctx:<email>` and `...:ctxgen:<email>`, so whoever could list Redis's
    keys (SCAN, a dashboard) read the address of every customer who had written in."""
    settings = settings_for(mocks, redis_server, "cache-keys")
    actor = ContextRetriever(ActorDeps(settings=settings, publisher=None))  # type: ignore[arg-type]
    coordinator_cache = ContextCache(
        open_store(settings, "context"), mesh=settings.mesh_name, ttl_s=settings.cache_ttl
    )
    await actor.start()

    async def ask(email: str) -> CustomerContext:
        env = envelope_for(email)
        await actor.handle(env)
        assert env.context is not None
        assert env.context.found
        return env.context

    try:
        assert (await ask(EMAIL)).cached is False
        assert (await ask(" John.Doe@Example.com")).cached is True, "one customer, however written"
        await coordinator_cache.invalidate("JOHN.DOE@example.com ")  # after a cancellation
        assert (await ask(EMAIL)).cached is False
        assert (await ask(EMAIL)).cached is True
        keys = await redis_keys(redis_server.url)
    finally:
        await coordinator_cache.close()
        await actor.stop()

    mesh = settings.mesh_name
    assert {context_key(mesh, EMAIL), generation_key(mesh, EMAIL)} <= keys, "the entry and its generation"
    leaked = [key for key in keys if "@" in key or "john" in key.lower() or "example" in key.lower()]
    assert not leaked, f"keys holding the address: {leaked}"


class OldVersionCache(ContextCache):
    """The cache as the previous version kept it, keys holding the address: an old pod during a rolling
    upgrade, on the same Redis."""

    def _key(self, email: str) -> str:
        return f"actormesh:{self._mesh}:ctx:{email.strip().lower()}"

    def _generation_key(self, email: str) -> str:
        return f"actormesh:{self._mesh}:ctxgen:{email.strip().lower()}"

    async def _invalidate_legacy(self, store: Any, email: str) -> None:
        pass


async def test_during_a_rolling_upgrade_a_new_invalidation_reaches_an_old_processs_entry(
    redis_server: RedisServer,
) -> None:
    """An old context_retriever has John's context cached under his address (and another fill of his
    under way); a new execution_coordinator cancels an order and invalidates. Neither the entry nor
    the fill that straddled the invalidation may be served by the old process for CACHE_TTL."""
    settings = RuntimeSettings(mesh_name="cache-upgrade", redis_url=redis_server.url)
    old = OldVersionCache(open_store(settings, "context"), mesh=settings.mesh_name, ttl_s=60)
    new = ContextCache(open_store(settings, "context"), mesh=settings.mesh_name, ttl_s=60)
    john = CustomerContext(found=True, email=EMAIL, customer_id="CUST-1001")
    try:
        await old.invalidate(EMAIL)  # an earlier change, seen by the old version: it has a generation
        filled = await old.read(EMAIL)
        await old.put(john, filled.generation)
        assert await old.get(EMAIL) is not None
        # Really the old key format (not the new one through a renamed override):
        assert f"actormesh:{settings.mesh_name}:ctx:{EMAIL}" in await redis_keys(redis_server.url)
        under_way = await old.read(EMAIL)  # a second old fill has read the APIs ...

        await new.invalidate(EMAIL)  # ... when a new process changes the order
        assert await old.get(EMAIL) is None, "the old process's entry is gone"
        await old.put(john, under_way.generation)  # the straddling fill stores what it read
        assert await old.get(EMAIL) is None, "and is a miss to the old process"

        before = await redis_keys(redis_server.url)
        await new.invalidate("jane.smith@example.com")  # nothing of hers under the old keys
        created = await redis_keys(redis_server.url) - before
        assert created == {generation_key(settings.mesh_name, "jane.smith@example.com")}, (
            "the new version creates no key holding an address"
        )
    finally:
        await old.close()
        await new.close()


def add_old_orders(mocks: MocksHandle, count: int) -> list[str]:
    """`count` more orders for John, all older than his own, oldest first; their ids."""
    orders = mocks.state.data.orders
    template = orders["ORD-10003"]
    placed = datetime(2020, 1, 1, tzinfo=UTC)
    ids = [f"ORD-{90000 + i}" for i in range(count)]
    for i, oid in enumerate(ids):
        at = (placed + timedelta(minutes=i)).isoformat()
        orders[oid] = template.model_copy(update={"order_id": oid, "placed_at": at})
    return ids


async def test_a_customer_with_more_orders_than_a_context_holds_is_cached(
    mocks: MocksHandle, redis_server: RedisServer
) -> None:
    """Before: the cut to the newest orders was recorded as an error, and a context with errors is
    never cached, so every message of such a customer went to the orders API."""
    oldest, *_ = add_old_orders(mocks, MAX_CONTEXT_ORDERS + 20)
    settings = settings_for(mocks, redis_server, "cache-many-orders")
    actor = ContextRetriever(ActorDeps(settings=settings, publisher=None))  # type: ignore[arg-type]
    await actor.start()

    async def ask() -> CustomerContext:
        env = envelope_for(EMAIL)
        await actor.handle(env)
        assert env.context is not None
        return env.context

    try:
        first = await ask()
        assert (first.cached, len(first.orders)) == (False, MAX_CONTEXT_ORDERS)
        second = await ask()
        assert second.cached is True, "served by Redis, not the orders API"
        assert second.orders == first.orders
        # What the replies say about an older order survives the round trip through Redis.
        assert "among your 100 most recent orders" in not_found_sentence(oldest, second)
    finally:
        await actor.stop()


async def _cached(ask: Callable[[], Awaitable[CustomerContext]]) -> bool:
    return (await ask()).cached


async def test_session_state_in_redis_degrades_without_failing(redis_server: RedisServer) -> None:
    settings = RuntimeSettings(mesh_name="session-redis", redis_url=redis_server.url)
    sessions = open_session_store(settings)
    other = open_session_store(settings)  # e.g. a second gateway replica
    try:
        await sessions.set("s-1", {"turns": 1})
        assert await other.get("s-1") == {"turns": 1}
        redis_server.kill()
        assert await sessions.get("s-1") is None
        await sessions.set("s-1", {"turns": 2})  # dropped, no exception
        redis_server.start()

        async def stored() -> bool:
            await sessions.set("s-1", {"turns": 3})
            return await other.get("s-1") == {"turns": 3}

        await eventually_async(stored, what="the session stored in Redis")
    finally:
        await sessions.close()
        await other.close()
