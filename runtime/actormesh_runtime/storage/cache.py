"""The customer-context cache: complete customer contexts by email, with a TTL, on a `JsonStore`.

context_retriever fills it and execution_coordinator invalidates it after a change; both hold the
same `ContextCache` per process (`acquire_context_cache` in `start()`, `release_context_cache` in
`stop()`). Redis when REDIS_URL is set, so every replica sees the same entries. Without Redis the
cache lives in the process only where the whole mesh does (`actormesh dev`); in a process per actor
(or group) it is off: execution_coordinator's invalidation after a cancellation would reach only its
own process, and context_retriever would answer from a stale context for up to CACHE_TTL.

An invalidation must also win over a fill already under way: context_retriever may have read the
orders just before another message's cancellation and store them just after its invalidation, and
every message for CACHE_TTL would then see the order as it was. So each customer has a generation,
raised by every invalidation; a fill records the generation it read before asking the APIs, and an
entry whose generation is no longer the current one is a miss.

The keys name a customer by a digest, never by the address: whoever can list Redis's keys (`SCAN`,
`MONITOR`, the slowlog, a dashboard) would otherwise read every customer's email. The digest is the
full sha256 of `actormesh:<mesh>:<email, stripped and lower-cased>` (`customer_digest`): all 64 hex
digits, because two customers sharing a key would be served each other's orders (the 8-digit
pseudonym of the logs, `observability/emails.py`, is for display only); the mesh name in it keeps
the keys from being looked up in the published tables of plain sha256(email) ("hashed emails") and
differs between meshes. It is a pseudonym, not encryption: whoever has a list of candidate addresses
and the mesh name can test them. To find one customer's entry:
`printf 'actormesh:%s:%s' MESH john.doe@example.com | sha256sum`.

Rolling upgrade from a version whose keys held the address (`actormesh:<mesh>:ctx:<email>`,
`...:ctxgen:<email>`): old and new processes see only their own keys. So that a new
execution_coordinator's (or approvals executor's) invalidation also reaches an old
context_retriever, `invalidate` still deletes the old-format entry and raises the old-format
generation if it exists (read first, so no key holding the address is created, barring one that
expires between the two commands); the address is then in those commands, not in any key. Not
covered, each at most CACHE_TTL of a stale context and only while old processes run: an old fill
already under way for a customer without an old-format generation, and an old process's
invalidation, which new processes do not read. Remove `_invalidate_legacy` in the release after.
"""

from __future__ import annotations

import hashlib
import logging
from typing import NamedTuple

from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from actormesh_runtime import resources
from actormesh_runtime.envelope import CustomerContext
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.storage.stores import JsonStore, open_store

log = logging.getLogger(__name__)
CACHE_LOOKUPS = Counter("actormesh_cache_lookups_total", "Customer-context cache lookups", ["result"])


class CachedContext(BaseModel):
    """A stored entry: the context and the customer's generation when it was read from the APIs."""

    generation: int
    context: CustomerContext


class CacheRead(NamedTuple):
    context: CustomerContext | None
    """The cached context, or None on a miss."""
    generation: int
    """The customer's current generation: what a fill after this miss must `put` with."""


class ContextCache:
    """Complete customer contexts by email, with a TTL. Partial (any `errors`) or unknown contexts
    are not cached; one cut to the newest orders (`orders_total`) is complete, and is. Without a
    store (`context_store`) the cache is off: every lookup misses and nothing is kept."""

    def __init__(self, store: JsonStore | None, *, mesh: str, ttl_s: float) -> None:
        self._store = store
        self._mesh = mesh
        self._ttl = ttl_s

    def _key(self, email: str) -> str:
        return context_key(self._mesh, email)

    def _generation_key(self, email: str) -> str:
        return generation_key(self._mesh, email)

    async def get(self, email: str) -> CustomerContext | None:
        return (await self.read(email)).context

    async def read(self, email: str) -> CacheRead:
        """The entry and the generation, in one round trip."""
        if self._store is None:
            return CacheRead(None, 0)
        raw, raw_generation = await self._store.get_many_json([self._key(email), self._generation_key(email)])
        generation = _generation(raw_generation)
        context: CustomerContext | None = None
        if raw is not None:
            # Validated straight from the stored text (one pass, no intermediate dicts): every hit
            # decodes a fresh object, so the caller may keep and change it without a copy.
            try:
                entry = CachedContext.model_validate_json(raw)
            except ValidationError:
                entry = None  # written by another version, or not JSON: treat as a miss
            if entry is not None and entry.generation == generation:
                context = entry.context
        CACHE_LOOKUPS.labels("hit" if context is not None else "miss").inc()
        if context is not None:
            context.cached = True
        return CacheRead(context, generation)

    async def put(self, context: CustomerContext, generation: int) -> None:
        """Keep `context`, read from the APIs after a `read` that returned `generation`."""
        if self._store is None or not context.found or context.errors:
            return
        entry = CachedContext(generation=generation, context=context)
        await self._store.set(self._key(context.email), entry.model_dump(mode="json"), self._ttl)

    async def invalidate(self, email: str) -> None:
        """After a change to the customer's orders, so the next message sees fresh data: a new
        generation (which outlives any entry a fill still under way may store), then the entry goes."""
        if self._store is not None:
            await self._store.increment(self._generation_key(email), 2 * self._ttl)
            await self._store.delete(self._key(email))
            await self._invalidate_legacy(self._store, email)

    async def _invalidate_legacy(self, store: JsonStore, email: str) -> None:
        """For one release: what an old process (keys holding the address) keeps for this customer.
        Its generation is raised only if it exists, so no key that names the customer is created."""
        normalised = email.strip().lower()
        legacy_generation = f"actormesh:{self._mesh}:ctxgen:{normalised}"
        if await store.get_json(legacy_generation) is not None:
            await store.increment(legacy_generation, 2 * self._ttl)
        await store.delete(f"actormesh:{self._mesh}:ctx:{normalised}")

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()


def customer_digest(mesh: str, email: str) -> str:
    """What the cache's keys name a customer by: sha256 (all 64 hex digits) of the mesh name and the
    address, stripped and lower-cased as every lookup is."""
    return hashlib.sha256(f"actormesh:{mesh}:{email.strip().lower()}".encode()).hexdigest()


def context_key(mesh: str, email: str) -> str:
    """The key of the customer's cached context."""
    return f"actormesh:{mesh}:ctx:{customer_digest(mesh, email)}"


def generation_key(mesh: str, email: str) -> str:
    """The key of the customer's generation (raised by every invalidation)."""
    return f"actormesh:{mesh}:ctxgen:{customer_digest(mesh, email)}"


def _generation(raw: str | bytes | None) -> int:
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return -1  # not ours: matches no entry, so every read misses until the next invalidation


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
