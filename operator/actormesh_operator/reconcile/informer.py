"""An informer: one kind's objects kept in memory by a list and then a watch, so reads cost no request.

Used by `children.ChildCache` (one per managed child kind, label-selected on
`app.kubernetes.io/managed-by`). The list gives the starting state and the resourceVersion the watch
continues from; the watch resumes from the last version seen (bookmarks included) whenever the API
server ends it, and only an expired version (410 Gone) costs a new list, which replaces the store — so
an object deleted while the watch was down does not linger, unlike a cache fed by watch events alone.

Objects are stored as compact JSON (about a tenth of the memory of the parsed dicts; orjson, which
parses and writes it several times faster than the standard library) and parsed on every read, which
also means no reader can mutate the store. `on_event(old, new, initial)` is called for every change
(`old` None: added; `new` None: deleted); the first list's objects come with `initial` True.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from actormesh_operator.reconcile.kube import KubeApiError, KubeClient, Resource

logger = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, name)."""
EventFn = Callable[[dict[str, Any] | None, dict[str, Any] | None, bool], None]
"""on_event(old, new, initial): `initial` for the objects of the first list (nothing changed)."""

WATCH_TIMEOUT_S = 270
RETRY_S = 5.0


def resource_version(obj: Mapping[str, Any]) -> int | None:
    """The object's resourceVersion as a number, when it is one (etcd revisions are); else None."""
    value = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(value) if value.isdigit() else None


def object_key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Informer:
    """List + watch of one resource kind, optionally in one namespace, with a label selector."""

    def __init__(
        self,
        kube: KubeClient,
        resource: Resource,
        *,
        namespace: str | None,
        label_selector: str,
        on_event: EventFn,
        compact: Callable[[dict[str, Any]], dict[str, Any]] = lambda obj: obj,
        timeout_s: int = WATCH_TIMEOUT_S,
        retry_s: float = RETRY_S,
    ) -> None:
        self._kube = kube
        self.resource = resource
        self._namespace = namespace
        self._selector = label_selector
        self._on_event = on_event
        self._compact = compact
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._store: dict[Key, bytes] = {}
        self._versions: dict[Key, int | None] = {}
        self.synced = asyncio.Event()
        """Set once the first list is in the store."""

    def get(self, key: Key) -> dict[str, Any] | None:
        text = self._store.get(key)
        return None if text is None else dict(orjson.loads(text))

    def put(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Store `obj` (an API response we just caused) unless the store already has a newer version;
        returns it as stored (None if not newer). The watch event of the same version is then seen as
        no change."""
        stored, _, current = self._store_object(obj, previous=False)
        return current if stored else None

    def _store_object(
        self, obj: dict[str, Any], *, previous: bool = True
    ) -> tuple[bool, dict[str, Any] | None, dict[str, Any]]:
        """(stored, the previous object if asked for, the object as stored); not stored when not newer."""
        key, version = object_key(obj), resource_version(obj)
        known = self._versions.get(key)
        if key in self._store and known is not None and version is not None and version <= known:
            return False, None, obj
        obj = self._compact({"apiVersion": self.resource.api_version, "kind": self.resource.kind, **obj})
        before = self.get(key) if previous else None
        self._store[key] = orjson.dumps(obj)
        self._versions[key] = version
        return True, before, obj

    def drop(self, key: Key) -> None:
        """Forget an object we deleted ourselves (its DELETED event then wakes nobody)."""
        self._store.pop(key, None)
        self._versions.pop(key, None)

    async def run(self) -> None:
        version = await self._relist(first=True)
        while True:
            try:
                async for event in self._kube.watch(
                    self.resource,
                    self._namespace,
                    label_selector=self._selector,
                    resource_version=version,
                    timeout_s=self._timeout_s,
                ):
                    obj = event.get("object") or {}
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if event.get("type") != "BOOKMARK":
                        self._apply(str(event.get("type")), obj)
            except asyncio.CancelledError:
                raise
            except KubeApiError as exc:
                if exc.status == 410:
                    version = await self._relist(first=False)
                    continue
                logger.warning("watch of %s failed: %s", self.resource.plural, exc)
                await asyncio.sleep(self._retry_s)
            except Exception as exc:  # connection dropped, API server restarting
                logger.info("watch of %s interrupted: %r", self.resource.plural, exc)
                await asyncio.sleep(self._retry_s)

    def _apply(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            key = object_key(obj)
            previous = self.get(key)
            self.drop(key)
            if previous is not None:
                self._on_event(previous, None, False)
            return
        stored, previous, current = self._store_object(obj)
        if stored:
            self._on_event(previous, current, False)

    async def _relist(self, *, first: bool) -> str:
        while True:
            try:
                items, version = await self._kube.list_versioned(
                    self.resource, self._namespace, label_selector=self._selector
                )
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("list of %s failed: %s", self.resource.plural, exc)
                await asyncio.sleep(self._retry_s)
        old = {key: self.get(key) for key in list(self._store)}
        self._store.clear()
        self._versions.clear()
        for item in items:
            self.put(item)
        for key in set(old) | set(self._store):
            before, after = old.get(key), self.get(key)
            if first:
                self._on_event(None, after, True)
            elif before != after:  # what changed while the watch was away
                self._on_event(before, after, False)
        self.synced.set()
        return version
