"""The customer-context cache: complete customer contexts by email, with a TTL, on a `JsonStore`.

context_retriever fills it and execution_coordinator invalidates it after a change; both hold the
same `ContextCache` per process (`acquire_context_cache` in `start()`, `release_context_cache` in
`stop()`). Redis when REDIS_URL is set, so every replica sees the same entries. Without Redis the
cache lives in the process only where the whole mesh does (`actormesh dev`); in a process per actor
(or group) it is off: execution_coordinator's invalidation after a cancellation would reach only its
own process, and context_retriever would answer from a stale context for up to CACHE_TTL.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter
from pydantic import ValidationError

from actormesh_runtime import resources
from actormesh_runtime.envelope import CustomerContext
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.storage.stores import JsonStore, open_store

log = logging.getLogger(__name__)
CACHE_LOOKUPS = Counter("actormesh_cache_lookups_total", "Customer-context cache lookups", ["result"])


class ContextCache:
    """Complete customer contexts by email, with a TTL. Partial or unknown contexts are not cached.
    Without a store (`context_store`) the cache is off: every lookup misses and nothing is kept."""

    def __init__(self, store: JsonStore | None, *, mesh: str, ttl_s: float) -> None:
        self._store = store
        self._prefix = f"actormesh:{mesh}:ctx:"
        self._ttl = ttl_s

    def _key(self, email: str) -> str:
        return self._prefix + email.strip().lower()

    async def get(self, email: str) -> CustomerContext | None:
        if self._store is None:
            return None
        # Validated straight from the stored text (one pass, no intermediate dicts): every hit
        # decodes a fresh object, so the caller may keep and change it without a copy.
        raw = await self._store.get_json(self._key(email))
        context: CustomerContext | None = None
        if raw is not None:
            try:
                context = CustomerContext.model_validate_json(raw)
            except ValidationError:
                context = None  # written by another version, or not JSON: treat as a miss
        CACHE_LOOKUPS.labels("hit" if context is not None else "miss").inc()
        if context is not None:
            context.cached = True
        return context

    async def put(self, context: CustomerContext) -> None:
        if self._store is None or not context.found or context.errors:
            return
        await self._store.set(self._key(context.email), context.model_dump(mode="json"), self._ttl)

    async def invalidate(self, email: str) -> None:
        """After a change to the customer's orders, so the next message sees fresh data."""
        if self._store is not None:
            await self._store.delete(self._key(email))

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()


_SHARED_KEY = "context_cache"


def context_store(deps: ActorDeps) -> JsonStore | None:
    """Redis when configured; else the process's memory if the whole mesh runs here, else none."""
    if deps.settings.redis_url or deps.whole_mesh:
        return open_store(deps.settings, "context")
    log.warning(
        "no REDIS_URL: the customer-context cache is off in this process (kept per process, it would "
        "serve contexts another process has changed); every message reads the commerce APIs"
    )
    return None


def acquire_context_cache(deps: ActorDeps) -> ContextCache:
    """The process-wide context cache (kept in `deps.extras`); pair with `release_context_cache`."""
    settings = deps.settings

    def build() -> ContextCache:
        return ContextCache(context_store(deps), mesh=settings.mesh_name, ttl_s=settings.cache_ttl)

    return resources.acquire(deps, _SHARED_KEY, build, ContextCache.close)


async def release_context_cache(deps: ActorDeps) -> None:
    await resources.release(deps, _SHARED_KEY)
