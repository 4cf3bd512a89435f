"""Per-principal token buckets: shared by every gateway replica through Redis, per replica without it.

A principal is named by `admission.principal_key`: the verified JWT subject (an agent's token apart
from a customer's), else the client address; in Redis by a digest of it (`RateLimiter.redis_key`). Each
gets a bucket of `RATE_LIMIT_REQUESTS` tokens
refilled at that many per minute, so a steady client may send exactly the configured rate and an
idle one may send a burst of up to a minute's worth. With REDIS_URL set
the bucket lives in Redis and is updated by one Lua script (atomic, on Redis's clock, so replicas
and their clocks never disagree); when Redis does not answer, each replica falls back to its own
in-process buckets (the effective limit is then per replica) and tries Redis again after a second.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from prometheus_client import Counter

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

RATE_LIMIT_FALLBACKS = Counter(
    "actormesh_gateway_rate_limit_fallbacks",
    "Rate-limit decisions made per replica because Redis did not answer.",
)

REDIS_RETRY_S = 1.0
LOCAL_MAX_PRINCIPALS = 50_000
"""In-process buckets kept (least recently used dropped): bounds memory under address churn."""

TAKE_SCRIPT = """
local capacity = tonumber(ARGV[1])
local per_s = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * per_s)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / per_s
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / per_s * 1000) + 1000)
return tostring(wait)
"""
"""Takes one token; returns 0 when allowed, else the seconds until a token is there."""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: float
    backend: Literal["redis", "local", "off"]

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


class LocalBuckets:
    """Token buckets in this process (the fallback, and the only store without Redis)."""

    def __init__(self, capacity: float, per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.per_s = per_s
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """0.0 when a token was taken, else seconds until one is there."""
        now = self.clock()
        tokens, at = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + max(0.0, now - at) * self.per_s)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.per_s
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > LOCAL_MAX_PRINCIPALS:
            self._buckets.popitem(last=False)
        return wait


class RateLimiter:
    """`await limiter.check(principal)` → `Verdict`. `per_minute` 0 turns it off."""

    def __init__(
        self,
        per_minute: int,
        *,
        redis: Redis | None = None,
        prefix: str = "actormesh:local:ratelimit:",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.prefix = prefix
        self._redis = redis
        self._clock = clock
        per_s = per_minute / 60.0
        self._local = LocalBuckets(float(per_minute), per_s, clock) if per_minute else None
        self._redis_down_until = 0.0

    def redis_key(self, principal: str) -> str:
        """The principal's bucket in Redis: its kind, then the sha256 of the prefix (which names the mesh)
        and the principal, never the email or address itself: anyone who may list Redis's keys (`SCAN`,
        a dashboard) would otherwise read who is chatting right now (docs/security.md)."""
        kind, _, _ = principal.partition(":")
        return f"{self.prefix}{kind}:{hashlib.sha256((self.prefix + principal).encode()).hexdigest()}"

    async def check(self, principal: str) -> Verdict:
        if self._local is None:
            return Verdict(True, 0.0, "off")
        if self._redis is not None and self._clock() >= self._redis_down_until:
            try:
                wait = float(
                    await self._redis.eval(
                        TAKE_SCRIPT, 1, self.redis_key(principal), self.per_minute, self.per_minute / 60.0
                    )
                )
            except Exception as exc:  # any Redis failure: decide per replica for a while
                if self._redis_down_until == 0.0:
                    log.warning("rate limit: Redis unavailable (%s), limiting per replica", exc)
                self._redis_down_until = self._clock() + REDIS_RETRY_S
            else:
                if self._redis_down_until:
                    log.warning("rate limit: Redis is back, limits are shared again")
                    self._redis_down_until = 0.0
                return Verdict(wait <= 0, wait, "redis")
        if self._redis is not None:
            RATE_LIMIT_FALLBACKS.inc()
        wait = self._local.take(principal)
        return Verdict(wait <= 0, wait, "local")

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
