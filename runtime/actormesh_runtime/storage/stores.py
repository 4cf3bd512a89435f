"""TTL key-value stores of JSON values: Redis, or in-process when no Redis is configured.

`open_store(settings, namespace)` returns a `RedisStore` when REDIS_URL is set, else a `MemoryStore`.
A `RedisStore` never fails a request: when Redis errors or times out, the operation is served as if
the key were absent (get → None, set/delete → nothing), counted in `actormesh_cache_degraded_total`,
and Redis is left alone for `retry_interval_s`; then one probe operation tries it again, and the
first success restores normal service. The customer-context cache (`storage.cache`) and the
gateway's session state (`storage.session`) are built on these stores.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from prometheus_client import Counter, Gauge

from actormesh_runtime.settings import RuntimeSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)
_T = TypeVar("_T")

CACHE_DEGRADED = Counter(
    "actormesh_cache_degraded_total",
    "Cache/session operations served without Redis (Redis unavailable)",
    ["store"],
)
REDIS_UP = Gauge("actormesh_cache_redis_up", "1 while Redis answers, 0 while degraded", ["store"])


class JsonStore(Protocol):
    """A TTL store of JSON values. Implementations never raise on an unavailable backend."""

    async def get(self, key: str) -> Any | None: ...

    async def get_json(self, key: str) -> str | bytes | None:
        """The stored JSON text itself, for a caller that decodes and validates it in one step."""
        ...

    async def get_many_json(self, keys: Sequence[str]) -> list[str | bytes | None]:
        """`get_json` of several keys in one round trip."""
        ...

    async def set(self, key: str, value: Any, ttl_s: float) -> None: ...

    async def increment(self, key: str, ttl_s: float) -> None:
        """Add one to the integer at `key` (absent: 0), which then expires after `ttl_s`."""
        ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """In-process TTL store, bounded so a long-running process cannot grow without limit."""

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._items: dict[str, tuple[float, str]] = {}
        self._max = max_entries
        self._clock = clock

    async def get(self, key: str) -> Any | None:
        raw = await self.get_json(key)
        return None if raw is None else json.loads(raw)

    async def get_json(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, raw = item
        if self._clock() >= expires:
            del self._items[key]
            return None
        return raw

    async def get_many_json(self, keys: Sequence[str]) -> list[str | bytes | None]:
        return [await self.get_json(key) for key in keys]

    async def increment(self, key: str, ttl_s: float) -> None:
        raw = await self.get_json(key)
        await self.set(key, int(raw) + 1 if raw is not None else 1, ttl_s)

    async def set(self, key: str, value: Any, ttl_s: float) -> None:
        # Stored serialized, so a caller mutating its object cannot change the cached copy.
        self._items.pop(key, None)
        self._items[key] = (self._clock() + ttl_s, json.dumps(value))
        if len(self._items) > self._max:
            self._evict()

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

    async def close(self) -> None:
        self._items.clear()

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, (expires, _) in self._items.items() if expires <= now]:
            del self._items[key]
        while len(self._items) > self._max:  # oldest insertion first
            del self._items[next(iter(self._items))]


class RedisStore:
    """Redis-backed TTL store that degrades to 'no cache' while Redis is unavailable."""

    def __init__(
        self,
        client: Redis,
        *,
        name: str,
        retry_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._name = name
        self._retry_interval = retry_interval_s
        self._clock = clock
        self._down_until: float | None = None
        """None while healthy; while degraded, when the next probe may run."""
        self._probing = False
        REDIS_UP.labels(name).set(1)

    @property
    def degraded(self) -> bool:
        return self._down_until is not None

    async def get(self, key: str) -> Any | None:
        raw = await self.get_json(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    async def get_json(self, key: str) -> str | bytes | None:
        return await self._run(lambda r: r.get(key), None)

    async def get_many_json(self, keys: Sequence[str]) -> list[str | bytes | None]:
        found: list[str | bytes | None] = await self._run(lambda r: r.mget(list(keys)), [None] * len(keys))
        return found

    async def set(self, key: str, value: Any, ttl_s: float) -> None:
        millis = max(1, int(ttl_s * 1000))
        await self._run(lambda r: r.set(key, json.dumps(value), px=millis), None)

    async def increment(self, key: str, ttl_s: float) -> None:
        millis = max(1, int(ttl_s * 1000))

        async def incr_then_expire(r: Redis) -> None:
            await r.incr(key)
            await r.pexpire(key, millis)

        await self._run(incr_then_expire, None)

    async def delete(self, key: str) -> None:
        await self._run(lambda r: r.delete(key), None)

    async def close(self) -> None:
        await self._redis.aclose()

    async def _run(self, op: Callable[[Redis], Awaitable[_T]], default: _T) -> _T:
        probe = False
        if self._down_until is not None:
            if self._probing or self._clock() < self._down_until:
                CACHE_DEGRADED.labels(self._name).inc()
                return default
            self._probing = probe = True  # the one reconnect attempt of this interval
        try:
            result = await op(self._redis)
        except Exception as exc:  # any Redis/socket failure: serve degraded, never fail the request
            self._mark_down(exc)
            CACHE_DEGRADED.labels(self._name).inc()
            return default
        finally:
            if probe:  # also when the caller was cancelled mid-probe, so probing can resume
                self._probing = False
        if self._down_until is not None:
            log.warning("redis store %s: Redis is back, cache in use again", self._name)
            REDIS_UP.labels(self._name).set(1)
            self._down_until = None
        return result

    def _mark_down(self, exc: Exception) -> None:
        if self._down_until is None:
            log.warning("redis store %s: Redis unavailable (%s), running without it", self._name, exc)
        self._down_until = self._clock() + self._retry_interval
        REDIS_UP.labels(self._name).set(0)


def redis_client(url: str, password: str | None, *, timeout_s: float = 0.5) -> Redis:
    """A redis.asyncio client with short timeouts and no internal retries (RedisStore rate-limits them).

    `password`, when given, replaces any password in the URL (REDIS_PASSWORD comes from a Secret).
    """
    from redis.asyncio import ConnectionPool, Redis
    from redis.asyncio.connection import parse_url
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    options: dict[str, Any] = dict(parse_url(url))
    if password is not None:
        options["password"] = password
    pool = ConnectionPool(
        **options,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        max_connections=64,
    )
    return Redis(connection_pool=pool)


def open_store(settings: RuntimeSettings, name: str) -> JsonStore:
    """Redis when `settings.redis_url` is set, else an in-process store. `name` labels the metrics."""
    if settings.redis_url:
        return RedisStore(redis_client(settings.redis_url, settings.redis_password), name=name)
    return MemoryStore()
