"""Session state for the gateway: small JSON documents by session id, with a TTL.

Redis when REDIS_URL is set (shared by all gateway replicas), in-process otherwise; like the context
cache, Redis going away degrades to "no stored state" (get → None, set → dropped) rather than
failing a request. Usage: `sessions = open_session_store(settings)`, `await sessions.set(id, {...})`,
`await sessions.get(id)`, `await sessions.close()` on shutdown. It also keeps the gateway's
`Idempotency-Key` records (`get_keyed`/`set_keyed`, by derived message id), under a prefix of their own:
a session id may hold ':', so no key under the sessions' prefix could be kept apart from a session's.
"""

from __future__ import annotations

from typing import Any

from actormesh_runtime.settings import RuntimeSettings
from actormesh_runtime.storage.stores import JsonStore, open_store

DEFAULT_SESSION_TTL_S = 24 * 3600.0


class SessionStore:
    def __init__(self, store: JsonStore, *, mesh: str, ttl_s: float = DEFAULT_SESSION_TTL_S) -> None:
        self._store = store
        self._prefix = f"actormesh:{mesh}:session:"
        self._keyed_prefix = f"actormesh:{mesh}:idempotency:"
        self._ttl = ttl_s

    async def get(self, session_id: str) -> dict[str, Any] | None:
        value = await self._store.get(self._prefix + session_id)
        return value if isinstance(value, dict) else None

    async def set(self, session_id: str, state: dict[str, Any], ttl_s: float | None = None) -> None:
        await self._store.set(self._prefix + session_id, state, ttl_s or self._ttl)

    async def delete(self, session_id: str) -> None:
        await self._store.delete(self._prefix + session_id)

    async def get_keyed(self, message_id: str) -> dict[str, Any] | None:
        """The `Idempotency-Key` record of a keyed chat's (derived) message id."""
        value = await self._store.get(self._keyed_prefix + message_id)
        return value if isinstance(value, dict) else None

    async def set_keyed(self, message_id: str, record: dict[str, Any], ttl_s: float) -> None:
        await self._store.set(self._keyed_prefix + message_id, record, ttl_s)

    async def close(self) -> None:
        await self._store.close()


def open_session_store(settings: RuntimeSettings, ttl_s: float = DEFAULT_SESSION_TTL_S) -> SessionStore:
    return SessionStore(open_store(settings, "session"), mesh=settings.mesh_name, ttl_s=ttl_s)
