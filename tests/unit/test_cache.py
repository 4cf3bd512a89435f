"""TTL stores and the context cache: expiry, bounds, Redis degrading and recovering (fakes only)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from actormesh_runtime.envelope import CustomerContext
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.storage.cache import (
    ContextCache,
    acquire_context_cache,
    context_key,
    context_store,
    customer_digest,
    generation_key,
)
from actormesh_runtime.storage.session import SessionStore
from actormesh_runtime.storage.stores import MemoryStore, RedisStore, redis_client
from tests.support.commerce import context_for, unit_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeRedis:
    """Just enough of redis.asyncio.Redis; `up = False` makes every command fail like a dead server."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.up = True
        self.hang = False
        self.commands = 0

    def _check(self) -> None:
        self.commands += 1
        if not self.up:
            raise ConnectionError("Connection refused")

    async def get(self, key: str) -> bytes | None:
        if self.hang:
            await asyncio.Event().wait()
        self._check()
        return self.data.get(key)

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        self._check()
        return [self.data.get(key) for key in keys]

    async def set(self, key: str, value: str, px: int) -> None:
        self._check()
        self.data[key] = value.encode()

    async def incr(self, key: str) -> int:
        self._check()
        value = int(self.data.get(key, b"0")) + 1
        self.data[key] = str(value).encode()
        return value

    async def pexpire(self, key: str, millis: int) -> None:
        self._check()

    async def delete(self, key: str) -> None:
        self._check()
        self.data.pop(key, None)

    async def aclose(self) -> None:
        pass


def degraded_count(store: str) -> float:
    return REGISTRY.get_sample_value("actormesh_cache_degraded_total", {"store": store}) or 0.0


async def test_memory_store_expires_entries() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    await store.set("k", {"a": 1}, ttl_s=10)
    assert await store.get("k") == {"a": 1}
    clock.now += 9.9
    assert await store.get("k") == {"a": 1}
    clock.now += 0.2
    assert await store.get("k") is None


async def test_memory_store_is_bounded_and_copies_values() -> None:
    store = MemoryStore(max_entries=3)
    value: dict[str, Any] = {"n": 0}
    for i in range(5):
        value["n"] = i
        await store.set(f"k{i}", value, ttl_s=60)
    assert [await store.get(f"k{i}") for i in range(5)] == [None, None, {"n": 2}, {"n": 3}, {"n": 4}]


async def test_redis_store_degrades_then_recovers_with_rate_limited_probes() -> None:
    fake, clock = FakeRedis(), Clock()
    store = RedisStore(fake, name="unit-degrade", retry_interval_s=5.0, clock=clock)  # type: ignore[arg-type]
    await store.set("k", {"v": 1}, ttl_s=60)
    assert await store.get("k") == {"v": 1}

    fake.up = False
    before = degraded_count("unit-degrade")
    assert await store.get("k") is None  # fails, served as a miss
    assert store.degraded
    commands = fake.commands
    for _ in range(10):  # within the retry interval: Redis is not even tried
        assert await store.get("k") is None
        await store.set("k", {"v": 2}, ttl_s=60)
    assert fake.commands == commands
    assert degraded_count("unit-degrade") == before + 21

    clock.now += 5.0  # one probe, still down
    assert await store.get("k") is None
    assert fake.commands == commands + 1

    fake.up = True
    assert await store.get("k") is None  # interval not over yet
    clock.now += 5.0
    assert await store.get("k") == {"v": 1}  # the probe succeeds: back to normal
    assert not store.degraded
    assert REGISTRY.get_sample_value("actormesh_cache_redis_up", {"store": "unit-degrade"}) == 1.0


async def test_a_cancelled_probe_does_not_block_later_probes() -> None:
    fake, clock = FakeRedis(), Clock()
    store = RedisStore(fake, name="unit-cancel", retry_interval_s=1.0, clock=clock)  # type: ignore[arg-type]
    fake.up = False
    await store.set("k", {"v": 1}, ttl_s=60)
    assert store.degraded
    clock.now += 1.0
    fake.up, fake.hang = True, True
    probe = asyncio.create_task(store.get("k"))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    fake.hang = False
    await store.set("k", {"v": 2}, ttl_s=60)  # the next call probes again and succeeds
    assert not store.degraded
    assert await store.get("k") == {"v": 2}


async def test_context_cache_keeps_only_complete_known_contexts() -> None:
    cache = ContextCache(MemoryStore(), mesh="unit", ttl_s=60)
    john = context_for("john.doe@example.com")
    await cache.put(john, 0)
    await cache.put(CustomerContext(found=False, email="nobody@example.com"), 0)
    partial = context_for("jane.smith@example.com").model_copy(update={"errors": ["orders: HTTP 503"]})
    await cache.put(partial, 0)
    # Only the newest orders, by design (context_retriever's cut): complete, so cached.
    cut = context_for("bob.wilson@example.com").model_copy(update={"orders_total": 4000})
    await cache.put(cut, 0)
    hit = await cache.get(" John.Doe@example.com")
    assert hit is not None
    assert hit.cached is True
    assert hit.model_copy(update={"cached": False}) == john
    assert await cache.get("nobody@example.com") is None
    assert await cache.get("jane.smith@example.com") is None
    bob = await cache.get("bob.wilson@example.com")
    assert bob is not None
    assert bob.orders_total == 4000
    await cache.invalidate("john.doe@example.com")
    assert await cache.get("john.doe@example.com") is None


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_context_cache_hits_are_independent_and_unreadable_entries_miss(backend: str) -> None:
    store = MemoryStore() if backend == "memory" else RedisStore(FakeRedis(), name="unit-ctx")  # type: ignore[arg-type]
    cache = ContextCache(store, mesh="unit", ttl_s=60)
    john = context_for("john.doe@example.com")
    await cache.put(john, 0)
    first = await cache.get("john.doe@example.com")
    assert first is not None
    assert first.cached
    assert first.orders
    first.orders.clear()  # an actor changing its copy never changes the cached one
    second = await cache.get("john.doe@example.com")
    assert second is not None
    assert second is not first
    assert second.model_copy(update={"cached": False}) == john
    assert await store.get_json(context_key("unit", "john.doe@example.com")) is not None

    await store.set(
        context_key("unit", "old@example.com"), {"found": True, "shape": "of another version"}, 60
    )
    assert await cache.get("old@example.com") is None
    if isinstance(store, MemoryStore):  # a value that is not JSON at all (only the memory store can hold one)
        store._items[context_key("unit", "bad@example.com")] = (float("inf"), "{not json")
        assert await cache.get("bad@example.com") is None


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_an_invalidation_wins_over_a_fill_already_under_way(backend: str) -> None:
    """A fill reads the APIs, another message's cancellation invalidates, then the fill stores what it
    read: before, that stale context was served for the whole TTL."""
    store = MemoryStore() if backend == "memory" else RedisStore(FakeRedis(), name="unit-ctx")  # type: ignore[arg-type]
    cache = ContextCache(store, mesh="unit", ttl_s=60)
    email = "john.doe@example.com"
    filling = await cache.read(email)
    assert filling.context is None
    await cache.invalidate(email)  # the order changed after the fill read it
    await cache.put(context_for(email), filling.generation)
    refill = await cache.read(email)
    assert refill.context is None, "the stale fill is a miss"
    await cache.put(context_for(email), refill.generation)
    assert await cache.get(email) is not None  # a fill that started after the change is kept
    await cache.invalidate(email)
    assert await cache.get(email) is None


def test_the_keys_name_a_customer_by_a_full_digest_of_the_normalised_address() -> None:
    digest = customer_digest("unit", "john.doe@example.com")
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")
    assert customer_digest("unit", " John.Doe@Example.com ") == digest, "stripped and lower-cased"
    assert customer_digest("other-mesh", "john.doe@example.com") != digest
    assert customer_digest("unit", "jane.smith@example.com") != digest
    assert context_key("unit", "john.doe@example.com") == f"actormesh:unit:ctx:{digest}"
    assert generation_key("unit", "john.doe@example.com") == f"actormesh:unit:ctxgen:{digest}"


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_an_invalidation_also_reaches_what_an_old_version_cached_under_the_address(
    backend: str,
) -> None:
    """Rolling upgrade: an old context_retriever still keeps `ctx:<email>` with its generation at
    `ctxgen:<email>`; a new execution_coordinator's invalidation must reach it, and must not create
    an address-holding key where none was."""
    store = MemoryStore() if backend == "memory" else RedisStore(FakeRedis(), name="unit-ctx")  # type: ignore[arg-type]
    cache = ContextCache(store, mesh="unit", ttl_s=60)
    old_entry, old_generation = (
        "actormesh:unit:ctx:john.doe@example.com",
        "actormesh:unit:ctxgen:john.doe@example.com",
    )
    await store.set(old_entry, {"generation": 3, "context": {"found": True}}, 60)
    await store.set(old_generation, 3, 120)
    await cache.invalidate(" John.Doe@example.com")
    assert await store.get(old_entry) is None, "an old process would have served it for CACHE_TTL"
    assert await store.get(old_generation) == 4, "an old fill under way is a miss to old processes too"

    await store.set("actormesh:unit:ctx:jane.smith@example.com", {"generation": 0, "context": {}}, 60)
    await cache.invalidate("jane.smith@example.com")
    assert await store.get("actormesh:unit:ctx:jane.smith@example.com") is None
    assert await store.get("actormesh:unit:ctxgen:jane.smith@example.com") is None, "no generation created"


async def test_session_store_round_trip() -> None:
    sessions = SessionStore(MemoryStore(), mesh="unit")
    assert await sessions.get("s1") is None
    await sessions.set("s1", {"turns": 2})
    assert await sessions.get("s1") == {"turns": 2}
    await sessions.delete("s1")
    assert await sessions.get("s1") is None


@pytest.mark.parametrize(
    ("url", "password", "expected"),
    [
        pytest.param("redis://:inurl@127.0.0.1:6390/2", None, "inurl", id="url-password"),
        pytest.param("redis://:inurl@127.0.0.1:6390/2", "secret", "secret", id="setting-overrides-url"),
        pytest.param("redis://127.0.0.1:6390", "secret", "secret", id="setting-only"),
    ],
)
async def test_redis_password_setting_overrides_the_url(
    url: str, password: str | None, expected: str
) -> None:
    client = redis_client(url, password)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == expected
    assert kwargs["port"] == 6390
    await client.aclose()


def _deps(*, redis_url: str | None = None, whole_mesh: bool = False) -> ActorDeps:
    return ActorDeps(settings=unit_settings(redis_url=redis_url), publisher=None, whole_mesh=whole_mesh)  # type: ignore[arg-type]


def test_the_context_cache_is_kept_in_memory_only_where_the_whole_mesh_runs() -> None:
    assert isinstance(context_store(_deps(whole_mesh=True)), MemoryStore)
    assert isinstance(context_store(_deps(redis_url="redis://127.0.0.1:1/0")), RedisStore)
    assert context_store(_deps()) is None


async def test_without_redis_a_process_per_actor_never_serves_a_context_another_one_changed() -> None:
    # context_retriever's process and execution_coordinator's: each builds its own cache.
    retriever = acquire_context_cache(_deps())
    coordinator = acquire_context_cache(_deps())
    john = context_for("john.doe@example.com")
    await retriever.put(john, 0)
    await coordinator.invalidate(john.email)  # after a cancellation: reaches only its own process
    assert await retriever.get(john.email) is None
    # The one-process mesh shares one cache, so an invalidation reaches the reader.
    whole = _deps(whole_mesh=True)
    reader, changer = acquire_context_cache(whole), acquire_context_cache(whole)
    assert reader is changer
    await reader.put(john, 0)
    assert await reader.get(john.email) is not None
    await changer.invalidate(john.email)
    assert await reader.get(john.email) is None
