"""Two meshes of one name in two namespaces on one external NATS or Redis: the newer one is refused
(`reconcile/clash.py`), since the runtime names its stream, subjects, consumers and Redis keys after the
mesh's name alone and the two would read each other's conversations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pytest

from actormesh_operator.api.status import Reason
from actormesh_operator.reconcile.clash import (
    NATS_FIELD,
    REDIS_FIELD,
    SharedNameClash,
    servers,
    shared_name_clash,
)
from actormesh_operator.reconcile.kube import KubeClient, KubeCredentials, Resource
from actormesh_operator.reconcile.meshes import MeshCache
from actormesh_operator.reconcile.runner import MeshReconciler
from actormesh_operator.reconcile.state import OperatorState
from actormesh_operator.settings import OperatorSettings

OLDER = "2026-01-01T00:00:00Z"
NEWER = "2026-02-01T00:00:00Z"
NATS = "nats://nats.infra:4222"
REDIS = "redis://redis.infra:6379/0"


def _mesh(
    namespace: str,
    *,
    name: str = "shop",
    created: str = NEWER,
    nats: str | None = NATS,
    redis: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"image": "actormesh/actormesh:0.1.0"}
    if nats is not None:
        spec["nats"] = {"external": {"url": nats}}
    if redis is not None:
        spec["redis"] = {"external": {"url": redis}}
    return {
        "apiVersion": "actormesh.io/v1alpha1",
        "kind": "ActorMesh",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": created,
        },
        "spec": spec,
    }


def test_the_newer_mesh_clashes_and_the_message_names_field_mesh_and_stream() -> None:
    older, newer = _mesh("team-a", created=OLDER), _mesh("team-b", created=NEWER)

    clash = shared_name_clash(newer, [older, newer])

    assert clash == SharedNameClash(
        NATS_FIELD,
        "team-a/shop",
        "JetStream stream ACTORMESH-shop (subjects actormesh.shop.>)",
        ("nats.infra:4222",),
    )
    message = clash.message()
    for part in ("spec.nats.external.url", "team-a/shop", "ACTORMESH-shop", "Rename this mesh"):
        assert part in message
    assert shared_name_clash(older, [older, newer]) is None, "the older mesh keeps working"


def test_equal_creation_times_go_to_the_namespace_that_sorts_first() -> None:
    a, b = _mesh("team-a", created=OLDER), _mesh("team-b", created=OLDER)

    assert shared_name_clash(a, [a, b]) is None
    clash = shared_name_clash(b, [a, b])
    assert clash is not None
    assert clash.other == "team-a/shop"


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(_mesh("team-a", name="cart", created=OLDER), id="different-name"),
        pytest.param(_mesh("team-a", created=OLDER, nats="nats://other.infra:4222"), id="different-url"),
        pytest.param(_mesh("team-a", created=OLDER, nats="nats://nats.infra:4223"), id="different-port"),
        pytest.param(_mesh("team-a", created=OLDER, nats=None), id="other-on-managed-nats"),
        pytest.param(_mesh("team-b", created=OLDER), id="same-namespace"),
    ],
)
def test_no_clash(other: dict[str, Any]) -> None:
    assert shared_name_clash(_mesh("team-b", created=NEWER), [other]) is None


def test_a_mesh_on_managed_nats_never_clashes() -> None:
    mine = _mesh("team-b", created=NEWER, nats=None)
    assert shared_name_clash(mine, [_mesh("team-a", created=OLDER)]) is None


def test_a_deleted_mesh_no_longer_blocks_the_name() -> None:
    cache = MeshCache()
    older, newer = _mesh("team-a", created=OLDER), _mesh("team-b", created=NEWER)
    cache.seen(older)
    cache.seen(newer)
    cache.seen(_mesh("team-c", name="cart", created=OLDER))
    assert shared_name_clash(newer, cache.named("shop")) is not None

    cache.seen(older, deleted=True)

    assert shared_name_clash(newer, cache.named("shop")) is None


@pytest.mark.parametrize(
    ("mine", "theirs", "clash"),
    [
        pytest.param("nats://a:4222", "nats://user:pw@a", True, id="userinfo-and-default-port"),
        pytest.param("nats://a:4222", "tls://a", True, id="scheme-insensitive"),
        pytest.param("NATS://A.infra.:4222/", "nats://a.infra", True, id="case-trailing-dot-path"),
        pytest.param("tls://a:4222,nats://b:4222", "nats://c:4222, nats://b", True, id="lists-overlap"),
        pytest.param("tls://a:4222,nats://b:4222", "nats://c:4222,nats://d:4222", False, id="lists-apart"),
        pytest.param("nats://a:4222", "nats://a:5222", False, id="other-port"),
        pytest.param("nats://[fd00::1]:4222", "nats://[FD00::1]", True, id="ipv6"),
        pytest.param("ws://a", "nats://a", False, id="websocket-port-differs"),
    ],
)
def test_nats_urls_are_compared_as_servers(mine: str, theirs: str, clash: bool) -> None:
    body, other = _mesh("team-b", nats=mine), _mesh("team-a", created=OLDER, nats=theirs)
    assert (shared_name_clash(body, [other]) is not None) is clash


def test_redis_urls_are_compared_as_servers() -> None:
    assert servers("redis://user@r.infra/0") == servers("rediss://r.infra:6379/3") == {("r.infra", 6379)}
    assert servers("redis://r.infra:6380") != servers("redis://r.infra")


def test_the_same_external_redis_clashes_and_names_the_key_prefix() -> None:
    older = _mesh("team-a", created=OLDER, nats=None, redis="redis://redis.infra/0")
    newer = _mesh("team-b", created=NEWER, nats=None, redis="rediss://redis.infra:6379/1")

    clash = shared_name_clash(newer, [older])

    assert clash is not None
    assert (clash.field, clash.other) == (REDIS_FIELD, "team-a/shop")
    assert clash.shared == "Redis key prefix actormesh:shop:"
    assert "spec.redis.external.url" in clash.message()
    assert shared_name_clash(_mesh("team-b", nats=None, redis="redis://elsewhere"), [older]) is None


def test_a_disabled_redis_shares_no_keys() -> None:
    older = _mesh("team-a", created=OLDER, nats=None, redis=REDIS)
    older["spec"]["redis"]["enabled"] = False  # an invalid body (the CRD refuses it); still no clash
    assert shared_name_clash(_mesh("team-b", nats=None, redis=REDIS), [older]) is None


class _Kube:
    """Just enough API for a pass that stops before writing children: empty lists, no CRDs served;
    records status patches and posted Events, and fails on anything else (an apply, a create)."""

    def __init__(self, meshes: list[dict[str, Any]]) -> None:
        self.meshes = meshes
        self.statuses: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    async def list(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return self.meshes if resource.kind == "ActorMesh" else []

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        return next(m for m in self.meshes if m["metadata"]["namespace"] == namespace)

    async def served_plurals(self, api_version: str) -> set[str]:
        return set()

    async def patch_status(
        self,
        resource: Resource,
        name: str,
        namespace: str | None,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        self.statuses.append(dict(status))
        return {}

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        assert (method, path.rsplit("/", 1)[-1]) == ("POST", "events"), f"unexpected {method} {path}"
        self.events.append(dict(kwargs["body"]))
        return {}


@pytest.mark.parametrize("cached", [True, False], ids=["mesh-cache", "no-cache-lists"])
async def test_the_runner_stalls_the_newer_mesh_without_applying_anything(cached: bool) -> None:
    older, newer = _mesh("team-a", created=OLDER), _mesh("team-b", created=NEWER)
    kube = _Kube([older, newer])
    meshes = None
    if cached:
        meshes = MeshCache()
        meshes.seen(older)
        meshes.seen(newer)
    reconciler = MeshReconciler(OperatorSettings(), cast(KubeClient, kube), meshes=meshes)

    error = await reconciler.reconcile("team-b", "shop", trigger="create")

    assert error is not None
    assert "team-a/shop" in str(error)
    conditions = {c["type"]: c for c in kube.statuses[-1]["conditions"]}
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Stalled"]["reason"] == Reason.SHARED_NAME_CLASH.value
    assert "spec.nats.external.url" in conditions["Stalled"]["message"]
    assert conditions["Ready"]["status"] == "False"
    (event,) = kube.events
    assert (event["type"], event["reason"]) == ("Warning", "SharedNameClash")


def _stalled_by_clash(body: dict[str, Any]) -> dict[str, Any]:
    condition = {"type": "Stalled", "status": "True", "reason": "SharedNameClash", "message": "..."}
    return {**body, "status": {"conditions": [condition]}}


@pytest.mark.parametrize("event", ["DELETED", "MODIFIED"])
def test_deleting_or_changing_a_mesh_wakes_its_namesakes_stalled_by_a_clash(event: str) -> None:
    state = OperatorState(OperatorSettings(), cast(KubeCredentials, None))
    woken: list[tuple[str, str, str]] = []
    state.wake = lambda ns, name, trigger, delay=None: woken.append((ns, name, trigger))  # type: ignore[method-assign]
    older = _mesh("team-a", created=OLDER)
    state.meshes.seen(_stalled_by_clash(_mesh("team-b")))
    state.meshes.seen(_mesh("team-c", redis=REDIS))  # a namesake not stalled: left alone
    state.meshes.seen(_stalled_by_clash(_mesh("team-d", name="cart")))  # another name: left alone
    state.mesh_event(None, older)  # known to this run (start-up listing)
    woken.clear()

    if event == "DELETED":
        state.meshes.seen(older, deleted=True)
        state.mesh_event("DELETED", older)
    else:
        moved = {**older, "metadata": {**older["metadata"], "generation": 2}}
        state.meshes.seen(moved)
        state.mesh_event("MODIFIED", moved)

    assert ("team-b", "shop", "resync") in woken
    assert {ns for ns, _, _ in woken} <= {"team-a", "team-b"}
