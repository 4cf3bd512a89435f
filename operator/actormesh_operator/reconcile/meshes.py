"""The ActorMesh objects in memory, fed by kopf's watch of them (its event handler sees every event)
and by our own status writes, so a reconcile starts without reading the mesh again.

Created by `state.OperatorState`; `handlers.py` feeds it, `runner.py` reads it and stores its status
responses, the resync replaces it from a list every few minutes (kopf's watch, unlike an informer,
never reports a mesh deleted while the watch was down). Deleted meshes' UIDs are remembered for a
while, so the garbage collector's deletion of their children wakes nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from actormesh_operator.reconcile.informer import object_key, resource_version

MeshKey = tuple[str, str]
DELETED_KEPT = 10_000
"""UIDs of deleted meshes remembered (a few hundred KB at most)."""


class MeshCache:
    def __init__(self) -> None:
        self._bodies: dict[MeshKey, dict[str, Any]] = {}
        self._deleted: OrderedDict[str, None] = OrderedDict()

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._bodies.get((namespace, name))

    def seen(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A watch event of a mesh (or an API response about it): keep it if it is newer."""
        key = object_key(body)
        if deleted:
            self._bodies.pop(key, None)
            uid = str((body.get("metadata") or {}).get("uid") or "")
            if uid:
                self._deleted[uid] = None
                while len(self._deleted) > DELETED_KEPT:
                    self._deleted.popitem(last=False)
            return
        known = self._bodies.get(key)
        if known is not None:
            have, new = resource_version(known), resource_version(body)
            if have is not None and new is not None and new < have:
                return
        self._bodies[key] = _plain(body, drop=_UNREAD)

    def named(self, name: str) -> list[dict[str, Any]]:
        """Every cached mesh called `name`, in any namespace (for `clash.shared_name_clash`)."""
        return [body for (_, mesh), body in self._bodies.items() if mesh == name]

    def is_deleted(self, uid: str) -> bool:
        return uid in self._deleted

    def replace(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """A fresh list of every mesh: drops meshes deleted while the watch was away (one created
        since the list was answered is dropped too, and simply read again when needed)."""
        listed = set()
        for body in bodies:
            listed.add(object_key(body))
            self.seen(body)
        for key in set(self._bodies) - listed:
            del self._bodies[key]


_UNREAD = frozenset({"managedFields"})
"""Metadata nobody reads from a cached mesh (most of its size once a few managers wrote to it)."""


def _plain(body: Mapping[str, Any], drop: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A plain-dict copy (kopf hands out read-only views of its own objects), without the `drop` keys
    of `metadata`."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key == "metadata" and drop and isinstance(value, Mapping):
            out[key] = _plain({k: v for k, v in value.items() if k not in drop})
        else:
            out[key] = _plain(value) if isinstance(value, Mapping) else _copy(value)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) if isinstance(v, Mapping) else _copy(v) for v in value]
    return value
