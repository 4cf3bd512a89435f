"""The Secret watches: one per referenced Secret, following the meshes' references, waking readers on a
change of data only (the API server is replaced by a queue of watch events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from actormesh_operator.builders.labels import MANAGED_BY_SELECTOR
from actormesh_operator.reconcile.kube import KubeApiError
from actormesh_operator.reconcile.observe import selector_string
from actormesh_operator.reconcile.secret_watch import SecretWatches


class FakeWatchApi:
    """Serves each watch of (namespace, name) from its own queue; records the resourceVersions asked for."""

    def __init__(self) -> None:
        self.queues: dict[tuple[str, str], asyncio.Queue[dict[str, Any] | Exception]] = {}
        self.versions: list[str | None] = []

    def queue(self, namespace: str, name: str) -> asyncio.Queue[dict[str, Any] | Exception]:
        return self.queues.setdefault((namespace, name), asyncio.Queue())

    async def watch_one(
        self, resource: Any, name: str, namespace: str, *, resource_version: str | None, timeout_s: int
    ) -> AsyncIterator[dict[str, Any]]:
        self.versions.append(resource_version)
        while True:
            item = await self.queue(namespace, name).get()
            if isinstance(item, Exception):
                raise item
            yield item


def _event(kind: str, data: dict[str, str], version: str) -> dict[str, Any]:
    return {"type": kind, "object": {"metadata": {"resourceVersion": version}, "data": data}}


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_readers_are_woken_when_the_data_changes_and_only_then() -> None:
    api, woken = FakeWatchApi(), []
    watches = SecretWatches(api, lambda ns, mesh, why: woken.append((ns, mesh, why)), retry_s=0)  # type: ignore[arg-type]
    watches.update("shop", "a", {"llm"})
    watches.update("shop", "b", {"llm", "jwt"})
    assert watches.watched == {("shop", "llm"), ("shop", "jwt")}
    q = api.queue("shop", "llm")

    await q.put(_event("ADDED", {"k": "djE="}, "1"))  # the current object: readers checked once
    await _settle()
    assert woken == [("shop", "a", "secret"), ("shop", "b", "secret")]
    woken.clear()

    await q.put(_event("MODIFIED", {"k": "djE="}, "2"))  # labels or annotations only
    await q.put({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "3"}}})
    await _settle()
    assert woken == []

    await q.put(_event("MODIFIED", {"k": "djI="}, "4"))  # rotated
    await _settle()
    assert woken == [("shop", "a", "secret"), ("shop", "b", "secret")]
    woken.clear()

    await q.put(_event("DELETED", {"k": "djI="}, "5"))
    await _settle()
    assert len(woken) == 2
    await watches.close()


async def test_watches_follow_the_references_and_resume_from_the_last_version() -> None:
    api, woken = FakeWatchApi(), []
    watches = SecretWatches(api, lambda ns, mesh, why: woken.append(mesh), retry_s=0)  # type: ignore[arg-type]
    watches.update("shop", "a", {"llm"})
    q = api.queue("shop", "llm")
    await q.put(_event("ADDED", {"k": "djE="}, "7"))
    await q.put(KubeApiError(500, "InternalError", "stream reset"))
    await _settle()
    assert api.versions == [None, "7"]  # resumed where it was, so no change is missed
    await q.put(KubeApiError(410, "Expired", "too old"))
    await _settle()
    assert api.versions[-1] is None  # expired: start over from the current object

    watches.update("shop", "a", set())  # the mesh no longer reads it (or is gone)
    await _settle()
    assert watches.watched == set()
    await watches.close()


class RecordingWatchApi:
    """Records every Secret watch opened (its namespace and selectors); each waits forever."""

    def __init__(self) -> None:
        self.opened: list[tuple[str | None, str | None, str | None]] = []

    async def _forever(self) -> AsyncIterator[dict[str, Any]]:
        await asyncio.Event().wait()
        yield {}

    def watch_one(
        self, resource: Any, name: str, namespace: str, *, resource_version: str | None, timeout_s: int
    ) -> AsyncIterator[dict[str, Any]]:
        self.opened.append((namespace, None, f"metadata.name={name}"))
        return self._forever()

    def watch(
        self,
        resource: Any,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout_s: int = 0,
    ) -> AsyncIterator[dict[str, Any]]:
        self.opened.append((namespace, label_selector, field_selector))
        return self._forever()


async def test_every_secret_watch_is_narrowed_to_referenced_or_generated_secrets() -> None:
    """Never a watch of all Secrets: a user Secret by name, the generated ones by our label."""
    api = RecordingWatchApi()
    watches = SecretWatches(api, lambda ns, mesh, why: None, generated_labels=MANAGED_BY_SELECTOR)  # type: ignore[arg-type]
    generated = {"metadata": {"name": "demo-gateway-auth", "labels": dict(MANAGED_BY_SELECTOR)}, "data": {}}
    watches.remember("shop", "demo-gateway-auth", generated)
    watches.update("shop", "demo", {"demo-gateway-auth", "llm"})
    await _settle()
    assert sorted(api.opened, key=str) == sorted(
        [(None, selector_string(MANAGED_BY_SELECTOR), None), ("shop", None, "metadata.name=llm")], key=str
    )
    await watches.close()
