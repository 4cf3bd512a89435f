"""The operator's caches: what a child's watch event means, the informer's store, the mesh cache, and
the reads a reconcile no longer makes (a fake API records every request)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders.generated import GeneratedSecret
from actormesh_operator.builders.kinds import DEPLOYMENT
from actormesh_operator.reconcile.children import ChildCache
from actormesh_operator.reconcile.diff import (
    CONTENT_CHANGE,
    NO_CHANGE,
    STATUS_CHANGE,
    ChildKey,
    change_kind,
    compact_child,
    owns_apply_entry,
    replicas_handover,
    same_apply_view,
)
from actormesh_operator.reconcile.generated import ensure_generated_secret
from actormesh_operator.reconcile.informer import Informer
from actormesh_operator.reconcile.kube import KubeApiError, KubeClient, Resource
from actormesh_operator.reconcile.meshes import MeshCache
from actormesh_operator.reconcile.observe import read_secrets
from actormesh_operator.reconcile.queue import STATUS_TRIGGER, stronger
from actormesh_operator.reconcile.secret_watch import SecretWatches
from tests.support.eventually import eventually_async

OWNER = {
    "apiVersion": "actormesh.io/v1alpha1",
    "kind": "ActorMesh",
    "name": "demo",
    "uid": "u1",
    "controller": True,
}


def deployment(version: int = 1, **status: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "demo-gateway",
            "namespace": "ns",
            "resourceVersion": str(version),
            "generation": 1,
            "labels": {"app.kubernetes.io/instance": "demo", "app.kubernetes.io/component": "gateway"},
            "ownerReferences": [OWNER],
            "managedFields": [
                {"manager": "actormesh-operator", "operation": "Apply", "fieldsV1": {"f:spec": {}}},
                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status"},
            ],
        },
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "gateway", "image": "x"}]}}},
        "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, **status},
    }


def test_a_status_update_nobody_reads_is_no_change() -> None:
    old = deployment(1, availableReplicas=1)
    new = copy.deepcopy(old)
    new["metadata"]["resourceVersion"] = "2"
    new["status"]["conditions"] = [{"type": "Progressing", "lastUpdateTime": "now"}]
    assert change_kind(old, new) == NO_CHANGE


def test_rollout_counters_are_a_status_change() -> None:
    assert (
        change_kind(deployment(1, availableReplicas=1), deployment(2, availableReplicas=2)) == STATUS_CHANGE
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "replicas"), 5),
        (("metadata", "labels"), {}),
        (("metadata", "annotations"), {"a": "b"}),
        (("metadata", "ownerReferences"), []),
        (("metadata", "deletionTimestamp"), "2026-01-01T00:00:00Z"),
    ],
    ids=["spec", "labels", "annotations", "owner", "deleting"],
)
def test_anything_but_status_is_a_content_change(path: tuple[str, str], value: Any) -> None:
    new = deployment(2)
    new[path[0]][path[1]] = value
    assert change_kind(deployment(1), new) == CONTENT_CHANGE


def test_the_deployment_controllers_revision_annotation_is_no_content_change() -> None:
    revised = deployment(2)
    revised["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "3"}
    assert change_kind(deployment(1), revised) == NO_CHANGE
    assert same_apply_view(deployment(1), revised)
    ours_too = copy.deepcopy(revised)
    ours_too["metadata"]["annotations"]["actormesh.io/applied-hash"] = "h2"
    assert change_kind(revised, ours_too) == CONTENT_CHANGE


def test_the_apply_view_covers_content_and_our_managed_fields_only() -> None:
    status_only = deployment(2, availableReplicas=5)
    assert same_apply_view(deployment(1), status_only)
    edited = deployment(2)
    edited["spec"]["replicas"] = 7
    assert not same_apply_view(deployment(1), edited)
    taken_over = compact_child(deployment(2), ["actormesh-operator"])
    taken_over["metadata"]["managedFields"] = []  # someone cleared managedFields: our entry is gone
    assert not same_apply_view(compact_child(deployment(1), ["actormesh-operator"]), taken_over)


def test_added_and_deleted_are_content_changes() -> None:
    assert change_kind(None, deployment()) == CONTENT_CHANGE
    assert change_kind(deployment(), None) == CONTENT_CHANGE


def test_the_cache_keeps_only_our_managed_fields() -> None:
    compact = compact_child(deployment(), ["actormesh-operator"])
    assert [e["manager"] for e in compact["metadata"]["managedFields"]] == ["actormesh-operator"]
    assert len(deployment()["metadata"]["managedFields"]) == 2  # the input is not changed


@pytest.mark.parametrize("replicas_ours", [True, False], ids=["replicas-ours", "replicas-not-ours"])
def test_the_compact_entries_decide_like_the_full_ones(replicas_ours: bool) -> None:
    spec_fields: dict[str, Any] = {"f:template": {"f:spec": {"f:containers": {}}}}
    if replicas_ours:
        spec_fields["f:replicas"] = {}
    live = deployment()
    live["spec"] = {"replicas": 3}
    live["metadata"]["managedFields"] = [
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        },
        {"manager": "actormesh-operator", "operation": "Apply", "fieldsV1": {"f:spec": spec_fields}},
    ]
    compact = compact_child(live, ["actormesh-operator", "actormesh-operator-handover"])
    (entry,) = compact["metadata"]["managedFields"]
    assert len(str(entry)) < 120, "the field set is not kept whole"
    desired = {**live, "spec": {}}  # autoscaling switched on: the builder leaves replicas out
    for obj in (live, compact):
        assert owns_apply_entry(obj, "actormesh-operator")
    handovers = [replicas_handover(desired, obj, "actormesh-operator") for obj in (live, compact)]
    assert handovers[0] == handovers[1]
    assert (handovers[1] is not None) is replicas_ours


class FakeKube:
    """Lists from `items`; each watch call serves events put on `events` (an exception ends it)."""

    def __init__(self, items: list[dict[str, Any]], version: str = "10") -> None:
        self.items, self.version = items, version
        self.events: asyncio.Queue[dict[str, Any] | Exception] = asyncio.Queue()
        self.lists = 0
        self.watch_versions: list[str | None] = []

    async def list_versioned(self, resource: Resource, namespace: str | None = None, **_: Any) -> Any:
        self.lists += 1
        return copy.deepcopy(self.items), self.version

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        **_: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        self.watch_versions.append(resource_version)
        while True:
            item = await self.events.get()
            if isinstance(item, Exception):
                raise item
            yield item


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def cache_with(kube: FakeKube, changes: list[tuple[str, str, str, str]]) -> ChildCache:
    cache = ChildCache(
        cast(KubeClient, kube),
        [DEPLOYMENT],
        namespace="ns",
        field_managers=["actormesh-operator"],
        on_change=lambda *change: changes.append(change),
    )
    cache.start()
    return cache


async def test_child_events_wake_the_owner_only_for_changes_it_reads() -> None:
    kube, changes = FakeKube([deployment(5, availableReplicas=1)]), []
    cache = cache_with(kube, changes)
    await cache.wait_synced()
    assert list(cache.children("ns", "demo")) == [("apps", "Deployment", "ns", "demo-gateway")]
    assert changes == []  # the first list wakes nobody

    touched = deployment(6, availableReplicas=1)
    touched["status"]["conditions"] = [{"type": "BenchTouched"}]
    await kube.events.put({"type": "MODIFIED", "object": touched})
    await kube.events.put({"type": "MODIFIED", "object": deployment(7, availableReplicas=2)})
    edited = deployment(8, availableReplicas=2)
    edited["spec"]["replicas"] = 0
    await kube.events.put({"type": "MODIFIED", "object": edited})
    await kube.events.put({"type": "DELETED", "object": edited})
    await settle()
    assert changes == [("ns", "demo", "u1", STATUS_CHANGE), ("ns", "demo", "u1", CONTENT_CHANGE)] * 1 + [
        ("ns", "demo", "u1", CONTENT_CHANGE)
    ]
    assert cache.children("ns", "demo") == {}
    await cache.stop()


async def test_a_child_taken_from_its_mesh_wakes_the_mesh_it_was_taken_from() -> None:
    kube, changes = FakeKube([deployment(5)]), []
    cache = cache_with(kube, changes)
    await cache.wait_synced()
    stripped = deployment(6)
    stripped["metadata"]["ownerReferences"] = []
    await kube.events.put({"type": "MODIFIED", "object": stripped})
    await kube.events.put({"type": "MODIFIED", "object": deployment(7)})  # demo restored it
    other = deployment(8)
    other["metadata"]["ownerReferences"] = [{**OWNER, "name": "other", "uid": "u2"}]
    await kube.events.put({"type": "MODIFIED", "object": other})
    await eventually_async(lambda: len(changes) == 4, what="four wake-ups")
    # Stripped: nobody controls it now, yet demo must restore it. Handed to another mesh: both are told.
    demo, other_mesh = ("ns", "demo", "u1", CONTENT_CHANGE), ("ns", "other", "u2", CONTENT_CHANGE)
    assert changes == [demo, demo, demo, other_mesh]
    await cache.stop()


async def test_the_event_of_our_own_write_is_no_news_and_older_events_are_ignored() -> None:
    kube, changes = FakeKube([]), []
    cache = cache_with(kube, changes)
    await cache.wait_synced()
    cache.put(deployment(20))  # the response of our apply
    await kube.events.put({"type": "ADDED", "object": deployment(20)})
    await kube.events.put({"type": "MODIFIED", "object": deployment(19)})
    # Events are handled in order: once this real news has woken the owner, the two above were read.
    await kube.events.put({"type": "MODIFIED", "object": deployment(21, availableReplicas=1)})
    await eventually_async(lambda: changes, what="the sentinel's wake-up")
    assert changes == [("ns", "demo", "u1", STATUS_CHANGE)]
    assert (
        cache.children("ns", "demo")[("apps", "Deployment", "ns", "demo-gateway")]["metadata"][
            "resourceVersion"
        ]
        == "21"
    )
    changes.clear()
    cache.drop(deployment(21))  # we pruned it: its DELETED event wakes nobody either
    await kube.events.put({"type": "DELETED", "object": deployment(22)})
    await kube.events.put({"type": "ADDED", "object": deployment(23)})  # someone else re-created it
    await eventually_async(lambda: changes, what="the sentinel's wake-up")
    assert changes == [("ns", "demo", "u1", CONTENT_CHANGE)]
    await cache.stop()


async def test_an_expired_watch_relists_and_reports_what_changed_meanwhile() -> None:
    kube, changes = FakeKube([deployment(5)]), []
    cache = cache_with(kube, changes)
    await cache.wait_synced()
    kube.items, kube.version = [], "30"  # deleted while the watch was away
    await kube.events.put(KubeApiError(410, "Expired", "too old"))
    await settle()
    assert kube.lists == 2
    assert kube.watch_versions == ["10", "30"]
    assert changes == [("ns", "demo", "u1", CONTENT_CHANGE)]
    assert cache.children("ns", "demo") == {}
    await cache.stop()


async def test_the_apply_version_stays_through_status_updates_and_moves_with_content() -> None:
    kube, changes = FakeKube([deployment(5)]), list[tuple[str, str, str, str]]()
    cache = cache_with(kube, changes)
    await cache.wait_synced()
    key = ("apps", "Deployment", "ns", "demo-gateway")

    def version_now() -> str:
        return cache.apply_version(key, cache.children("ns", "demo")[key])

    assert version_now() == "5"
    for version, ready in ((6, 2), (7, 1)):  # two status updates after the controller's annotation
        revised = deployment(version, availableReplicas=ready)
        revised["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
        await kube.events.put({"type": "MODIFIED", "object": revised})
    await settle()
    assert version_now() == "5"  # two status updates and the controller's annotation later
    assert cache.apply_version(key, deployment(4)) == "4", "a version the cache does not hold is its own"
    edited = deployment(8)
    edited["spec"]["replicas"] = 0
    await kube.events.put({"type": "MODIFIED", "object": edited})
    await settle()
    assert version_now() == "8"
    cache.put(deployment(9))  # our write
    assert version_now() == "9"
    await kube.events.put({"type": "DELETED", "object": deployment(10)})
    await settle()
    assert cache.children("ns", "demo") == {}
    await kube.events.put({"type": "ADDED", "object": deployment(11)})
    await settle()
    assert version_now() == "11"
    await cache.stop()


async def test_readers_get_copies() -> None:
    kube = FakeKube([deployment(5)])
    informer = Informer(
        cast(KubeClient, kube),
        Resource("apps/v1", "Deployment", "deployments"),
        namespace="ns",
        label_selector="x=y",
        on_event=lambda *_: None,
    )
    task = asyncio.create_task(informer.run())
    await informer.synced.wait()
    got = informer.get(("ns", "demo-gateway"))
    assert got is not None
    got["spec"]["replicas"] = 99
    assert informer.get(("ns", "demo-gateway"))["spec"]["replicas"] == 2  # type: ignore[index]
    task.cancel()


def test_mesh_cache_keeps_the_newest_and_remembers_deletions() -> None:
    meshes = MeshCache()
    body = {"metadata": {"name": "demo", "namespace": "ns", "uid": "u1", "resourceVersion": "5"}}
    meshes.seen(body)
    meshes.seen({"metadata": {**body["metadata"], "resourceVersion": "4"}})
    assert meshes.get("ns", "demo") == body
    meshes.seen(body, deleted=True)
    assert meshes.get("ns", "demo") is None
    assert meshes.is_deleted("u1")
    meshes.seen(body)
    meshes.replace([])  # a list without it: deleted while the watch was away
    assert meshes.get("ns", "demo") is None


def test_a_full_pass_wins_over_a_status_refresh() -> None:
    assert stronger(STATUS_TRIGGER, "child") == "child"
    assert stronger("child", STATUS_TRIGGER) == "child"
    assert stronger(STATUS_TRIGGER, STATUS_TRIGGER) == STATUS_TRIGGER


def test_a_creation_stays_a_creation_when_a_child_event_joins_it() -> None:
    assert stronger("create", "child") == "create"
    assert stronger("child", "create") == "create"
    assert stronger("create", "update") == "update"  # same rank: the latest spec event
    assert stronger("resync", "secret") == "secret"


class RecordingApi:
    """Secrets by name; records every request."""

    def __init__(self, secrets: dict[str, dict[str, Any]]) -> None:
        self.secrets = secrets
        self.calls: list[str] = []

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self.calls.append(f"get {name}")
        return copy.deepcopy(self.secrets.get(name))

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> dict[str, Any]:
        name = path.rsplit("/", 1)[-1] if method == "PATCH" else body["metadata"]["name"]
        self.calls.append(f"{method.lower()} {name}")
        if method == "POST":
            if name in self.secrets:
                raise KubeApiError(409, "AlreadyExists", "exists")
            self.secrets[name] = {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
        else:
            self.secrets[name]["data"].update(body["data"])
        return copy.deepcopy(self.secrets[name])

    async def watch_one(self, *_: Any, **__: Any) -> AsyncIterator[dict[str, Any]]:
        await asyncio.Event().wait()
        yield {}


MESH = ActorMesh.from_body(
    {"metadata": {"name": "demo", "namespace": "ns", "uid": "u1"}, "spec": {"image": "x"}}
)
REDIS = GeneratedSecret(
    name="demo-redis-auth", keys=("password",), random_bytes=32, component="redis", purpose="t"
)


async def test_a_new_generated_secret_costs_one_create_and_no_read_afterwards() -> None:
    api = RecordingApi({})
    cache = SecretWatches(cast(KubeClient, api), lambda *_: None)
    done = await ensure_generated_secret(cast(KubeClient, api), MESH, REDIS, cache)
    assert done == "secret demo-redis-auth (generated)"
    found = await read_secrets(cast(KubeClient, api), "ns", ["demo-redis-auth"], cache)
    assert set(found["demo-redis-auth"]) == {"password"}
    assert await ensure_generated_secret(cast(KubeClient, api), MESH, REDIS, cache) is None
    assert api.calls == ["post demo-redis-auth"]
    await cache.close()


async def test_an_existing_secret_unknown_to_the_cache_is_read_once_and_never_overwritten() -> None:
    existing = {"metadata": {"name": "demo-redis-auth", "resourceVersion": "3"}, "data": {"other": "eA=="}}
    api = RecordingApi({"demo-redis-auth": existing})
    cache = SecretWatches(cast(KubeClient, api), lambda *_: None)
    done = await ensure_generated_secret(cast(KubeClient, api), MESH, REDIS, cache)
    assert done == "secret demo-redis-auth (added password)"
    assert api.secrets["demo-redis-auth"]["data"]["other"] == "eA=="
    await read_secrets(cast(KubeClient, api), "ns", ["demo-redis-auth"], cache)
    assert api.calls == ["post demo-redis-auth", "get demo-redis-auth", "patch demo-redis-auth"]
    await cache.close()


async def test_an_absent_referenced_secret_is_read_once() -> None:
    api = RecordingApi({})
    cache = SecretWatches(cast(KubeClient, api), lambda *_: None)
    assert await read_secrets(cast(KubeClient, api), "ns", ["llm"], cache) == {}
    cache.update("ns", "demo", {"llm"})
    assert await read_secrets(cast(KubeClient, api), "ns", ["llm"], cache) == {}
    assert api.calls == ["get llm"]
    await cache.close()


class LabelWatchApi:
    """One label-selected watch served from a queue; per-name watches recorded (and idle)."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.selectors: list[str | None] = []
        self.single: list[str] = []

    async def watch(
        self, resource: Resource, namespace: str | None = None, **kw: Any
    ) -> AsyncIterator[dict[str, Any]]:
        self.selectors.append(kw.get("label_selector"))
        while True:
            yield await self.events.get()

    async def watch_one(
        self, resource: Resource, name: str, *_: Any, **__: Any
    ) -> AsyncIterator[dict[str, Any]]:
        self.single.append(name)
        await asyncio.Event().wait()
        yield {}


def secret(name: str, value: str, version: str, *, generated: bool) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "actormesh-operator"} if generated else {}
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": version, "labels": labels},
        "data": {"k": value},
    }


async def test_generated_secrets_share_one_label_selected_watch() -> None:
    api, woken = LabelWatchApi(), []
    watches = SecretWatches(
        cast(KubeClient, api),
        lambda ns, mesh, why: woken.append(mesh),
        generated_labels={"app.kubernetes.io/managed-by": "actormesh-operator"},
        namespace="ns",
    )
    watches.remember("ns", "demo-redis-auth", secret("demo-redis-auth", "djE=", "5", generated=True))
    watches.remember("ns", "llm", secret("llm", "a2V5", "6", generated=False))
    watches.update("ns", "demo", {"demo-redis-auth", "llm"})
    await settle()
    assert api.selectors == ["app.kubernetes.io/managed-by=actormesh-operator"]
    assert api.single == ["llm"]  # the user's Secret: its own watch
    assert watches.watched == {("ns", "llm")}

    await api.events.put({"type": "ADDED", "object": secret("demo-redis-auth", "djE=", "5", generated=True)})
    await settle()
    assert woken == []  # what the reconcile already read
    await api.events.put(
        {"type": "MODIFIED", "object": secret("demo-redis-auth", "djI=", "7", generated=True)}
    )
    await settle()
    assert woken == ["demo"]
    assert watches.lookup("ns", "demo-redis-auth") == (True, {"k": "djI="})
    await watches.close()


async def apply_desired(
    kube: Any,
    desired: dict[str, Any],
    live: dict[ChildKey, dict[str, Any]],
    verified: dict[ChildKey, tuple[str, str]],
    cache: Any = None,
) -> None:
    """`apply.apply_children` of one desired child as a reconcile calls it, against `kube`'s fake."""
    from actormesh_operator.reconcile.apply import ApplyOutcome, apply_children

    await apply_children(
        cast(KubeClient, kube),
        [desired],
        live,
        field_manager="actormesh-operator",
        outcome=ApplyOutcome(),
        cache=cache,
        verified=verified,
    )


class ApplyRecorder:
    def __init__(self) -> None:
        self.applied: list[str] = []

    async def apply(self, resource: Resource, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.applied.append(body["metadata"]["name"])
        return {**body, "metadata": {**body["metadata"], "resourceVersion": "99"}}


async def test_a_child_verified_at_the_same_version_is_not_compared_again() -> None:
    from actormesh_operator.reconcile.diff import HASH_ANNOTATION, child_key, with_hash

    desired = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "ns"},
        "data": {"a": "1"},
    }
    sent = with_hash(desired)
    live_ok = {
        **sent,
        "metadata": {
            **sent["metadata"],
            "resourceVersion": "5",
            "managedFields": [{"manager": "actormesh-operator", "operation": "Apply"}],
        },
    }
    key = child_key(live_ok)
    kube, verified = ApplyRecorder(), dict[ChildKey, tuple[str, str]]()

    async def apply_once(live: dict[str, Any]) -> None:
        await apply_desired(kube, desired, {key: live}, verified)

    await apply_once(live_ok)
    assert kube.applied == []
    assert verified == {key: ("5", sent["metadata"]["annotations"][HASH_ANNOTATION])}

    drifted = {**live_ok, "data": {"a": "2"}}  # same version: only possible if the memo is trusted
    await apply_once(drifted)
    assert kube.applied == []
    drifted["metadata"] = {**drifted["metadata"], "resourceVersion": "6"}  # a real edit bumps it
    await apply_once(drifted)
    assert kube.applied == ["cm"]


class ApplyServer(ApplyRecorder):
    """Answers an apply as the API server does: our Apply entry, a new version, and `mutate`'s change
    (a mutating webhook's) if given."""

    def __init__(self, mutate: Any = None) -> None:
        super().__init__()
        self.mutate = mutate

    async def apply(self, resource: Resource, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.applied.append(body["metadata"]["name"])
        ours = [{"manager": "actormesh-operator", "operation": "Apply"}]
        live = copy.deepcopy(body)
        live["metadata"].update(resourceVersion="99", managedFields=ours)
        if self.mutate is not None:
            self.mutate(live)
        return live


@pytest.mark.parametrize("webhook", [False, True], ids=["as-sent", "mutated-by-a-webhook"])
async def test_a_child_is_verified_by_its_apply_response_unless_it_differs(webhook: bool) -> None:
    from actormesh_operator.reconcile.diff import HASH_ANNOTATION, with_hash

    desired = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}}
    desired["data"] = {"a": "1"}
    kube = ApplyServer(mutate=(lambda obj: obj["data"].update(a="2")) if webhook else None)
    verified: dict[ChildKey, tuple[str, str]] = {}
    await apply_desired(kube, desired, {}, verified)
    assert kube.applied == ["cm"]
    digest = with_hash(desired)["metadata"]["annotations"][HASH_ANNOTATION]
    assert verified == ({} if webhook else {("", "ConfigMap", "ns", "cm"): ("99", digest)})


class ApplyVersionsAt:
    """A cache that reports every child's apply version as `version` (`ChildCache.apply_version`)."""

    def __init__(self, version: str) -> None:
        self.version = version

    def put(self, obj: dict[str, Any]) -> None:
        pass

    def drop(self, obj: dict[str, Any]) -> None:
        pass

    def apply_version(self, key: Any, obj: Any) -> str:
        return self.version


async def test_a_child_verified_at_its_apply_version_is_not_compared_after_a_status_update() -> None:
    from actormesh_operator.reconcile.diff import HASH_ANNOTATION, child_key, with_hash

    desired = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}}
    sent = with_hash(desired)
    ours = [{"manager": "actormesh-operator", "operation": "Apply"}]
    live = {**sent, "metadata": {**sent["metadata"], "resourceVersion": "5", "managedFields": ours}}
    key, kube, verified = child_key(live), ApplyRecorder(), dict[ChildKey, tuple[str, str]]()
    cache = ApplyVersionsAt("5")

    async def apply_once(obj: dict[str, Any]) -> None:
        await apply_desired(kube, desired, {key: obj}, verified, cache)

    await apply_once(live)
    assert verified == {key: ("5", sent["metadata"]["annotations"][HASH_ANNOTATION])}
    # Another resourceVersion at the same apply version (a status update): trusted, not compared.
    later = {**live, "metadata": {**live["metadata"], "resourceVersion": "8"}, "data": {"x": "y"}}
    await apply_once(later)
    assert kube.applied == []
    cache.version = "8"  # the content moved: compared again, and the drift is repaired
    later["metadata"]["annotations"] = {}
    await apply_once(later)
    assert kube.applied == ["cm"]


async def test_another_mesh_reporting_its_secrets_does_not_forget_ours() -> None:
    # Concurrent passes: A has created its Secret but not reported yet when B reports its own.
    api = LabelWatchApi()
    watches = SecretWatches(
        cast(KubeClient, api),
        lambda *_: None,
        generated_labels={"app.kubernetes.io/managed-by": "actormesh-operator"},
        namespace="ns",
    )
    watches.remember("ns", "a-redis-auth", secret("a-redis-auth", "djE=", "5", generated=True))
    watches.update("ns", "b", {"b-redis-auth"})
    assert watches.lookup("ns", "a-redis-auth") == (True, {"k": "djE="})
    watches.update("ns", "a", {"a-redis-auth"})
    await settle()
    assert api.single == ["b-redis-auth"]  # unknown when reported: its own watch; A's needs none
    watches.update("ns", "a", set())  # A no longer reads it: now it is forgotten
    assert watches.lookup("ns", "a-redis-auth") == (False, None)
    await watches.close()
