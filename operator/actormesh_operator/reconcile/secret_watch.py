"""Watches on exactly the Secrets the meshes' pods read, so a rotated value rolls them within seconds.

Created by `state.OperatorState`; the runner reports after every pass which Secrets a mesh reads
(`update`), and this module keeps one watch per referenced user Secret — `GET .../secrets?watch=true&
fieldSelector=metadata.name=<name>` in the mesh's namespace — plus one label-selected watch of the
Secrets the operator generates (`labelSelector=app.kubernetes.io/managed-by=actormesh-operator`);
never a list, never a watch of all Secrets.
When a Secret's data changes (or it appears or goes), every mesh reading it is woken; the reconcile then
re-reads it and the changed `actormesh.io/secret-hash` rolls exactly the pods using it
(builders/secret_hash.py).

The watches also serve as the reconcile's cache of these Secrets (`lookup`; `remember` stores what a
GET or a create returned, and the watch then starts from that version): a reconcile that changes
nothing reads no Secret. So the data of the referenced Secrets is held in memory, as any
informer-backed controller holds it; it is never logged and goes nowhere but into the hash.

Why watches and not a kopf handler: kopf watches a whole resource kind (label selectors only), which
for Secrets would mean every Secret of every namespace; user Secrets carry no label we could select on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from actormesh_operator.reconcile.kube import KubeApiError, KubeClient
from actormesh_operator.reconcile.observe import SECRETS, selector_string

logger = logging.getLogger(__name__)

WATCH_TIMEOUT_S = 270
"""Server-side watch timeout; the watch then resumes from the last resourceVersion."""
RETRY_S = 5.0
"""Pause after a failed watch (API server away) before the next attempt."""

_UNKNOWN = "unknown"


class _Known:
    __slots__ = ("data", "version")

    def __init__(self, data: dict[str, str] | None, version: str | None) -> None:
        self.data = data
        """None: the Secret does not exist."""
        self.version = version


def data_digest(secret: Mapping[str, Any] | None) -> str | None:
    """A digest of a Secret's data (None: the Secret does not exist)."""
    if secret is None:
        return None
    data = dict(sorted((secret.get("data") or {}).items()))
    return hashlib.sha256(json.dumps(data, separators=(",", ":")).encode()).hexdigest()


class SecretWatches:
    """One watch task per (namespace, Secret) that some mesh reads; wakes those meshes on a change."""

    def __init__(
        self,
        kube: KubeClient,
        wake: Callable[[str, str, str], None],
        *,
        timeout_s: int = WATCH_TIMEOUT_S,
        retry_s: float = RETRY_S,
        generated_labels: Mapping[str, str] | None = None,
        namespace: str | None = None,
    ) -> None:
        self._kube = kube
        self._wake = wake
        self._labels = dict(generated_labels) if generated_labels is not None else None
        """Labels of the Secrets the operator generates: one label-selected watch covers all of them."""
        self._namespace = namespace
        self._labelled: set[tuple[str, str]] = set()
        """Secrets carrying the generated label: the one label-selected watch reports their changes."""
        self._labelled_task: asyncio.Task[None] | None = None
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._reads: dict[tuple[str, str], frozenset[str]] = {}
        """(namespace, mesh) → the Secrets its pods read."""
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        """(namespace, Secret) → its watch."""
        self._known: dict[tuple[str, str], _Known] = {}
        """(namespace, Secret) → its data as last seen (by a watch, a GET or our create)."""

    def lookup(self, namespace: str, name: str) -> tuple[bool, dict[str, str] | None]:
        """(known, data): known False means ask the API server; data None means it does not exist."""
        known = self._known.get((namespace, name))
        return (False, None) if known is None else (True, known.data)

    def remember(self, namespace: str, name: str, secret: Mapping[str, Any] | None) -> None:
        """What a GET (None: 404) or our own create returned; kept while a mesh reads the Secret."""
        if secret is None:
            self._known[(namespace, name)] = _Known(None, None)
            return
        meta = secret.get("metadata") or {}
        self._known[(namespace, name)] = _Known(dict(secret.get("data") or {}), meta.get("resourceVersion"))
        if self._is_generated(meta):
            self._labelled.add((namespace, name))

    def _is_generated(self, meta: Mapping[str, Any]) -> bool:
        if self._labels is None:
            return False
        labels = meta.get("labels") or {}
        return all(labels.get(k) == v for k, v in self._labels.items())

    @property
    def watched(self) -> set[tuple[str, str]]:
        return set(self._tasks)

    def update(self, namespace: str, mesh: str, secrets: set[str]) -> None:
        """The Secrets `mesh` reads now (empty: none, or the mesh is gone); watches follow."""
        key = (namespace, mesh)
        before = self._wanted()
        if secrets:
            self._reads[key] = frozenset(secrets)
        else:
            self._reads.pop(key, None)
        wanted = self._wanted()
        if self._labels is not None and self._labelled_task is None and wanted:
            self._labelled_task = asyncio.create_task(self._watch_generated(), name="watch generated secrets")
        # A generated Secret is covered by the one label-selected watch; the others get their own.
        single = wanted - self._labelled
        for target in single - set(self._tasks):
            self._tasks[target] = asyncio.create_task(self._watch(*target), name=f"watch secret {target}")
        for target in set(self._tasks) - single:
            self._tasks.pop(target).cancel()
        # Forget only what no mesh reads any more: a Secret another pass has just created or read, and
        # will report in a moment, must stay known (concurrent passes interleave at every await).
        for target in before - wanted:
            self._known.pop(target, None)
            self._labelled.discard(target)

    def _wanted(self) -> set[tuple[str, str]]:
        return {(ns, name) for (ns, _), names in self._reads.items() for name in names}

    def readers(self, namespace: str, secret: str) -> list[str]:
        return sorted(
            mesh for (ns, mesh), names in self._reads.items() if ns == namespace and secret in names
        )

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        if self._labelled_task is not None:
            tasks.append(self._labelled_task)
            self._labelled_task = None
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _seen(self, namespace: str, name: str, event: Mapping[str, Any], version: str | None) -> None:
        """A watch event of a Secret we may read: keep its data, wake its readers if it changed."""
        key = (namespace, name)
        obj = event.get("object") or {}
        deleted = event.get("type") == "DELETED"
        known = self._known.get(key)
        if known is None and not self.readers(namespace, name):
            return  # nobody reads it (yet): the reconcile reads it when it needs it
        before = (
            _UNKNOWN if known is None else (None if known.data is None else data_digest({"data": known.data}))
        )
        self._known[key] = _Known(None if deleted else dict(obj.get("data") or {}), version)
        if (None if deleted else data_digest(obj)) != before:
            for mesh in self.readers(namespace, name):
                self._wake(namespace, mesh, "secret")

    async def _watch_generated(self) -> None:
        """One watch of every Secret the operator generates (label-selected; no list, which RBAC does
        not grant: started without a version, the API server first sends each existing one as ADDED)."""
        selector = selector_string(self._labels or {})

        def events(version: str | None) -> AsyncIterator[dict[str, Any]]:
            return self._kube.watch(
                SECRETS,
                self._namespace,
                label_selector=selector,
                resource_version=version,
                timeout_s=self._timeout_s,
            )

        await self._follow("generated secrets", events, None)

    async def _watch(self, namespace: str, name: str) -> None:
        # Started from the version the reconcile read, nothing is missed and nothing repeated. Unknown
        # (or absent), the first event (the current object, or its creation) wakes the readers once.
        known = self._known.get((namespace, name))

        def events(version: str | None) -> AsyncIterator[dict[str, Any]]:
            return self._kube.watch_one(
                SECRETS, name, namespace, resource_version=version, timeout_s=self._timeout_s
            )

        await self._follow(
            f"secret {namespace}/{name}", events, known.version if known else None, (namespace, name)
        )

    async def _follow(
        self,
        what: str,
        events: Callable[[str | None], AsyncIterator[dict[str, Any]]],
        version: str | None,
        only: tuple[str, str] | None = None,
    ) -> None:
        """Feed every event of a watch to `_seen`, resuming from the last version after the server ends
        it, from the current objects after 410 Gone, and after a pause on any other failure. `only`: the
        one Secret a per-name watch follows; else the Secrets are the generated ones (`_labelled`)."""
        while True:
            try:
                async for event in events(version):
                    meta = (event.get("object") or {}).get("metadata") or {}
                    version = meta.get("resourceVersion") or version
                    if event.get("type") == "BOOKMARK":
                        continue
                    key = only or (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
                    if only is None:
                        self._labelled.add(key)
                    self._seen(*key, event, version)
            except asyncio.CancelledError:
                raise
            except KubeApiError as exc:
                if exc.status == 410:  # resourceVersion too old: start over from the current objects
                    version = None
                    continue
                logger.warning("watch of %s failed: %s", what, exc)
                await asyncio.sleep(self._retry_s)
            except Exception as exc:  # connection dropped, API server restarting: retry
                logger.info("watch of %s interrupted: %r", what, exc)
                await asyncio.sleep(self._retry_s)
