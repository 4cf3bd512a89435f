"""Every managed child in memory: one informer per child kind, indexed by mesh, deciding per watch event
whether its mesh needs a reconcile, a status refresh, or nothing.

Created by `state.OperatorState`; read by `runner.py` instead of listing (a reconcile that changes
nothing costs no request), kept current by `runner.py`'s own apply responses (`put`, `drop`), so the
watch event of our own write is recognised as no change. The index key is the mesh's instance label
(`builders.labels.mesh_selector`), the same selector the reconcile used to list with.

Each event is classified by the pure `diff.change_kind`; the owner (from the controller
ownerReference, never from labels; before and after the event, when an edit changed it) gets
`on_change(namespace, mesh, uid, kind)` only for `content` and `status` changes. Monitoring kinds and
kinds whose CRD appeared after start-up have no informer: `runner.py` lists those as before.

It also keeps each child's *apply version*: the resourceVersion at which anything an apply decision
reads last changed (`diff.same_apply_view`). A child verified in sync at that version stays verified
through the controller manager's status updates (`apply.apply_children`, `insync.InSync`), so the
resync's pass over an unchanged mesh builds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from actormesh_operator.api.schema import API_VERSION, KIND
from actormesh_operator.builders.kinds import ManagedKind
from actormesh_operator.builders.labels import INSTANCE, MANAGED_BY_SELECTOR
from actormesh_operator.reconcile.diff import (
    NO_CHANGE,
    ChildKey,
    change_kind,
    child_key,
    compact_child,
    resource_version_of,
    same_apply_view,
)
from actormesh_operator.reconcile.informer import Informer, object_key
from actormesh_operator.reconcile.kube import KubeClient, Resource
from actormesh_operator.reconcile.observe import selector_string

ChangeFn = Callable[[str, str, str, str], None]
"""on_change(namespace, mesh name, mesh uid, `content` or `status`)."""


def controller_of(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the ActorMesh controlling a child, from its ownerReferences."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion") == API_VERSION and ref.get("controller"):
            return str(ref.get("name")), str(ref.get("uid"))
    return None


class ChildCache:
    def __init__(
        self,
        kube: KubeClient,
        kinds: Iterable[ManagedKind],
        *,
        namespace: str | None,
        field_managers: Iterable[str],
        on_change: ChangeFn,
    ) -> None:
        self._on_change = on_change
        managers = tuple(field_managers)
        selector = selector_string(MANAGED_BY_SELECTOR)
        self._index: dict[tuple[str, str], set[ChildKey]] = {}
        self._apply_versions: dict[ChildKey, tuple[str, str]] = {}
        """Per child: (its resourceVersion in the store, its apply version)."""
        self._informers: dict[tuple[str, str], Informer] = {}
        for kind in kinds:
            resource = Resource(kind.api_version, kind.kind, kind.plural, kind.namespaced)
            self._informers[kind.group, kind.kind] = Informer(
                kube,
                resource,
                namespace=namespace,
                label_selector=selector,
                on_event=self._event,
                compact=lambda obj, m=managers: compact_child(obj, m),  # type: ignore[misc]
            )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(informer.run(), name=f"informer {informer.resource.plural}")
            for informer in self._informers.values()
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self._informers.values()))

    def covers(self, kind: ManagedKind) -> bool:
        return (kind.group, kind.kind) in self._informers

    def children(self, namespace: str, instance: str) -> dict[ChildKey, dict[str, Any]]:
        """Every cached child labelled with this mesh's instance label (fresh dicts: safe to keep)."""
        out: dict[ChildKey, dict[str, Any]] = {}
        for key in sorted(self._index.get((namespace, instance), ())):
            informer = self._informers.get((key[0], key[1]))
            obj = informer.get((key[2], key[3])) if informer else None
            if obj is not None:
                out[key] = obj
        return out

    def put(self, obj: dict[str, Any]) -> None:
        """An object we just wrote (the API server's response)."""
        informer = self._informer_of(obj)
        if informer is not None:
            stored = informer.put(obj)
            if stored is not None:
                self._reindex(None, stored)
                version = resource_version_of(stored)
                self._apply_versions[child_key(stored)] = (version, version)

    def drop(self, obj: dict[str, Any]) -> None:
        """An object we just deleted."""
        informer = self._informer_of(obj)
        if informer is not None:
            previous = informer.get(object_key(obj))
            informer.drop(object_key(obj))
            self._reindex(previous, None)
            self._apply_versions.pop(child_key(obj), None)

    def apply_version(self, key: ChildKey, obj: Mapping[str, Any]) -> str:
        """The resourceVersion at which what the apply decisions read of `obj` last changed; `obj`'s own
        when the cache has not seen that version of it (a kind listed instead of cached)."""
        version = resource_version_of(obj)
        current, since = self._apply_versions.get(key, ("", ""))
        return since if version and version == current else version

    def _informer_of(self, obj: dict[str, Any]) -> Informer | None:
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        return self._informers.get((group, str(obj.get("kind", ""))))

    def _reindex(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for obj, add in ((old, False), (new, True)):
            if obj is None:
                continue
            meta = obj.get("metadata") or {}
            instance = (meta.get("labels") or {}).get(INSTANCE)
            if instance is None:
                continue
            slot = (str(meta.get("namespace") or ""), str(instance))
            keys = self._index.setdefault(slot, set())
            if add:
                keys.add(child_key(obj))
            else:
                keys.discard(child_key(obj))
                if not keys:
                    del self._index[slot]

    def _event(self, old: dict[str, Any] | None, new: dict[str, Any] | None, initial: bool) -> None:
        self._reindex(old, new)
        self._track_apply_version(old, new)
        if initial:
            return  # start-up: kopf's start-up listing of the meshes reconciles every mesh anyway
        change = change_kind(old, new)
        if change == NO_CHANGE:
            return
        # The controller before the event too: an edit that strips or replaces the mesh's reference
        # leaves a child the garbage collector would not delete with the mesh, and only the mesh it
        # was taken from restores it.
        owners = {owner for obj in (old, new) if obj is not None and (owner := controller_of(obj))}
        namespace = str(((new or old or {}).get("metadata") or {}).get("namespace") or "")
        for name, uid in sorted(owners):
            self._on_change(namespace, name, uid, change)

    def _track_apply_version(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if new is None:
            if old is not None:
                self._apply_versions.pop(child_key(old), None)
            return
        key, version = child_key(new), resource_version_of(new)
        if old is None or not same_apply_view(old, new):
            self._apply_versions[key] = (version, version)
        else:
            _, since = self._apply_versions.get(key, ("", resource_version_of(old)))
            self._apply_versions[key] = (version, since)
