"""`CommerceActor`: the base of the actors that call the commerce APIs, and the `CommerceAccess` it holds.

`CommerceAccess` is the process's shared commerce client and customer-context cache, acquired in
`start()` and released in `stop()`. context_retriever (reads, fills the cache) and
execution_coordinator (mutations, invalidates the cache after a change) both derive from
`CommerceActor`, so they hold the same connection pool and cache in one process.
"""

from __future__ import annotations

from typing import ClassVar

from actormesh_runtime.catalog import ActorName
from actormesh_runtime.clients.commerce import (
    CommerceClient,
    acquire_commerce_client,
    release_commerce_client,
)
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.storage.cache import ContextCache, acquire_context_cache, release_context_cache


class CommerceAccess:
    def __init__(self, deps: ActorDeps, owner: str) -> None:
        self._deps = deps
        self._owner = owner
        self._client: CommerceClient | None = None
        self._cache: ContextCache | None = None

    async def open(self) -> None:
        self._client = acquire_commerce_client(self._deps)
        self._cache = acquire_context_cache(self._deps)

    async def close(self) -> None:
        if self._client is not None:
            self._client = None
            await release_commerce_client(self._deps)
        if self._cache is not None:
            self._cache = None
            await release_context_cache(self._deps)

    def require(self) -> tuple[CommerceClient, ContextCache]:
        """The client and cache; a clear error when the actor was never started."""
        if self._client is None or self._cache is None:
            raise RuntimeError(f"{self._owner} used before start()")
        return self._client, self._cache


class CommerceActor:
    """Base for an actor that calls the commerce APIs: `start`/`stop` open and close its access.

    Subclasses set `name` and implement `handle`, which calls `self._access.require()`.
    """

    name: ClassVar[ActorName]

    def __init__(self, deps: ActorDeps) -> None:
        self.deps = deps
        self._access = CommerceAccess(deps, self.name.value)

    async def start(self) -> None:
        await self._access.open()

    async def stop(self) -> None:
        await self._access.close()
