"""diff.py: when a child is (not) re-applied, and which children are pruned. No cluster needed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import build_children
from actormesh_operator.reconcile.diff import (
    HASH_ANNOTATION,
    apply_reason,
    child_key,
    claim_never_shrinks,
    first_difference,
    manifest_hash,
    parse_quantity,
    replicas_handover,
    select_prunable,
    with_hash,
)
from actormesh_operator.settings import OperatorSettings

MANAGER = "actormesh-operator"
UID = "0b7f-mesh-uid"


def _deployment(**template_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "demo-gateway", "namespace": "ns", "labels": {"app": "x"}},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "containers": [
                        {"name": "gateway", "image": "img:1", "resources": {"requests": {"cpu": "500m"}}}
                    ],
                    "tolerations": [],
                    **template_spec,
                },
            },
        },
    }


def _live(desired: dict[str, Any], manager: str = MANAGER) -> dict[str, Any]:
    """What the API server returns after our apply: defaults added, quantities normalised."""
    live = copy.deepcopy(desired)
    live["metadata"].update(
        resourceVersion="42",
        uid="child-uid",
        managedFields=[{"manager": manager, "operation": "Apply", "fieldsType": "FieldsV1"}],
    )
    live["spec"]["replicas"] = 1
    live["spec"]["template"]["spec"].pop("tolerations")  # empty lists are dropped
    container = live["spec"]["template"]["spec"]["containers"][0]
    container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    container["resources"]["requests"]["cpu"] = "0.5"
    live["status"] = {"replicas": 1}
    return live


def test_unchanged_child_is_not_applied() -> None:
    desired = with_hash(_deployment())
    assert apply_reason(desired, _live(desired), MANAGER) is None


def test_missing_child_is_applied() -> None:
    assert apply_reason(with_hash(_deployment()), None, MANAGER) == "missing"


def test_child_without_our_apply_entry_is_applied() -> None:
    desired = with_hash(_deployment())
    assert apply_reason(desired, _live(desired, manager="kubectl-client-side-apply"), MANAGER) == (
        "not applied by us"
    )


def test_changed_desired_state_is_applied() -> None:
    old = with_hash(_deployment())
    new = with_hash(_deployment(serviceAccountName="runtime"))
    assert apply_reason(new, _live(old), MANAGER) == "desired state changed"


def test_field_we_stopped_setting_is_caught_by_the_hash() -> None:
    old = with_hash(_deployment(serviceAccountName="runtime"))
    new = with_hash(_deployment())
    # The live object still contains everything new wants (a subset check alone would say "fine").
    assert first_difference(_deployment(), _live(old)) is None
    assert apply_reason(new, _live(old), MANAGER) == "desired state changed"


def test_edited_field_is_drift() -> None:
    desired = with_hash(_deployment())
    live = _live(desired)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:1"
    assert apply_reason(desired, live, MANAGER) == "drifted at .spec.template.spec.containers[0].image"


def test_removed_label_is_drift() -> None:
    desired = with_hash(_deployment())
    live = _live(desired)
    del live["metadata"]["labels"]["app"]
    assert apply_reason(desired, live, MANAGER) == "drifted at .metadata.labels.app"


def test_replicas_owned_by_an_hpa_are_not_drift() -> None:
    desired = with_hash(_deployment())  # the builder omits replicas when an HPA scales the Deployment
    live = _live(desired)
    live["spec"]["replicas"] = 7
    assert apply_reason(desired, live, MANAGER) is None


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        pytest.param("500m", "0.5", True, id="milli"),
        pytest.param("1", "1000m", True, id="one-cpu"),
        pytest.param("1Gi", "1024Mi", True, id="binary"),
        pytest.param("1G", "1Gi", False, id="decimal-vs-binary"),
        pytest.param("1e3", "1k", True, id="exponent"),
        pytest.param(2, "2", True, id="int-as-yaml"),
        pytest.param("abc", "abc", True, id="plain-string"),
        pytest.param("abc", "abd", False, id="other-string"),
        pytest.param(True, 1, False, id="bool-is-not-int"),
    ],
)
def test_scalars_compare_as_quantities(a: Any, b: Any, equal: bool) -> None:
    assert (first_difference(a, b) is None) is equal


def test_parse_quantity() -> None:
    assert parse_quantity("250m") == parse_quantity("0.25")
    assert parse_quantity("2Ki") == 2048
    assert parse_quantity("nope") is None
    assert parse_quantity("1e999999999999") is None  # beyond Decimal's range: not a crash


def test_hash_ignores_its_own_annotation_and_is_stable() -> None:
    body = _deployment()
    hashed = with_hash(body)
    assert manifest_hash(hashed) == manifest_hash(body) == hashed["metadata"]["annotations"][HASH_ANNOTATION]
    assert with_hash(hashed) == hashed
    assert "annotations" not in body["metadata"]  # the builder's manifest is not mutated


def test_every_built_child_is_stable_against_its_own_echo() -> None:
    """A restart rebuilds the same manifests: applying nothing when the live objects echo them back."""
    mesh = ActorMesh.from_body(
        {
            "metadata": {"name": "demo", "namespace": "ns", "uid": UID, "generation": 3},
            "spec": {"image": "x:1"},
        }
    )
    first = build_children(mesh, OperatorSettings(), keda_available=False)
    again = build_children(mesh, OperatorSettings(), keda_available=False)
    for child, rebuilt in zip(first, again, strict=True):
        live = copy.deepcopy(with_hash(child))
        live["metadata"]["managedFields"] = [{"manager": MANAGER, "operation": "Apply"}]
        assert apply_reason(with_hash(rebuilt), live, MANAGER) is None, child_key(child)


def _child(kind: str, name: str, *, owner: str | None = UID, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns"}
    if owner is not None:
        meta["ownerReferences"] = [{"kind": "ActorMesh", "name": "demo", "uid": owner, "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "apps/v1" if kind == "Deployment" else "v1", "kind": kind, "metadata": meta}


def test_prune_selects_only_undesired_children_this_mesh_controls() -> None:
    desired = [_child("Deployment", "demo-gateway"), _child("Service", "demo-gateway")]
    live = [
        _child("Deployment", "demo-gateway"),
        _child("Service", "demo-gateway"),
        _child("Deployment", "demo-mocks"),  # disabled component: prune
        _child("Service", "demo-mocks"),  # disabled component: prune
        _child("Deployment", "demo-copied", owner=None),  # our labels copied by hand: keep
        _child("Deployment", "demo-old", owner="previous-mesh-uid"),  # a deleted namesake's: GC's job
        _child("Deployment", "demo-going", deleting=True),  # already being deleted
    ]
    pruned = select_prunable(live, desired, UID)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in pruned) == [
        ("Deployment", "demo-mocks"),
        ("Service", "demo-mocks"),
    ]


def test_prune_tells_kinds_apart() -> None:
    desired = [_child("Service", "demo-gateway")]
    live = [_child("Deployment", "demo-gateway")]
    assert select_prunable(live, desired, UID) == live


OLDER_RELEASE_POLICIES = [
    "deny-all", "allow-dns", "allow-nats", "allow-nats-clients", "allow-nats-monitor", "allow-mocks",
    "allow-commerce-apis", "allow-redis", "allow-redis-clients", "allow-gateway",
]  # fmt: skip
"""The per-flow NetworkPolicies of a minimal mesh before they were cut by destination."""


def test_an_upgrade_prunes_the_per_flow_policies_of_an_older_release() -> None:
    mesh = ActorMesh.from_body(
        {"metadata": {"name": "demo", "namespace": "ns", "uid": UID}, "spec": {"image": "x:1"}}
    )
    desired = build_children(mesh, OperatorSettings(), keda_available=False)
    owner = {"kind": "ActorMesh", "name": "demo", "uid": UID, "controller": True}
    older = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"demo-{flow}", "namespace": "ns", "ownerReferences": [owner]},
        }
        for flow in OLDER_RELEASE_POLICIES
    ]
    live = [copy.deepcopy(c) for c in desired if c["kind"] != "NetworkPolicy"] + older
    for child in live:
        child["metadata"]["ownerReferences"] = [owner]
    pruned = {o["metadata"]["name"] for o in select_prunable(live, desired, UID)}
    assert pruned == {
        "demo-deny-all",
        "demo-allow-dns",
        "demo-allow-nats-clients",
        "demo-allow-nats-monitor",
        "demo-allow-commerce-apis",
        "demo-allow-redis-clients",
    }


def _owned_replicas(live: dict[str, Any], manager: str = MANAGER, subresource: str | None = None) -> None:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": "Apply" if manager == MANAGER else "Update",
        "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}},
    }
    if subresource:
        entry["subresource"] = subresource
    live["metadata"]["managedFields"] = [entry]


def test_replicas_are_handed_over_when_autoscaling_takes_them() -> None:
    desired = with_hash(_deployment())  # autoscaled: no replicas
    live = _live(desired)
    live["spec"]["replicas"] = 4
    _owned_replicas(live)
    handover = replicas_handover(desired, live, MANAGER)
    assert handover == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "demo-gateway", "namespace": "ns"},
        "spec": {"replicas": 4},
    }


@pytest.mark.parametrize(
    "case",
    ["we-still-set-replicas", "someone-else-owns-them", "only-via-scale-subresource", "new-object"],
)
def test_no_handover_needed(case: str) -> None:
    desired = with_hash(_deployment())
    live: dict[str, Any] | None = _live(desired)
    assert live is not None
    if case == "we-still-set-replicas":
        desired["spec"]["replicas"] = 2
        _owned_replicas(live)
    elif case == "someone-else-owns-them":
        _owned_replicas(live, manager="kube-controller-manager")
    elif case == "only-via-scale-subresource":
        _owned_replicas(live, subresource="scale")
    else:
        live = None
    assert replicas_handover(desired, live, MANAGER) is None


def _claim(size: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "demo-history-backups", "namespace": "ns"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


@pytest.mark.parametrize(
    ("spec", "live", "applied"),
    [
        ("5Gi", None, "5Gi"),
        ("5Gi", "5Gi", "5Gi"),
        ("1Gi", "5Gi", "5Gi"),  # asked smaller: Kubernetes refuses to shrink, the claim stays
        ("5Gi", "20Gi", "20Gi"),  # grown by hand (kubectl patch pvc): it stays grown
        ("5120Mi", "5Gi", "5120Mi"),  # the same quantity spelt otherwise: nothing to raise
        ("10Gi", "5Gi", "10Gi"),  # asked larger: applied, a volume expansion
    ],
    ids=["new", "same", "smaller", "grown-by-hand", "same-quantity", "larger"],
)
def test_a_claim_is_never_asked_to_shrink(spec: str, live: str | None, applied: str) -> None:
    desired = _claim(spec)
    raised = claim_never_shrinks(desired, _claim(live) if live else None)
    assert raised["spec"]["resources"]["requests"]["storage"] == applied
    assert desired == _claim(spec), "the builder's manifest is left as it was"


def test_only_claims_are_raised() -> None:
    deployment = _deployment()
    assert claim_never_shrinks(deployment, _deployment()) is deployment


def test_a_false_paused_the_api_server_does_not_store_is_no_drift_but_a_pause_is() -> None:
    desired = {"spec": {"paused": False, "revisionHistoryLimit": 3}}
    assert first_difference(desired, {"spec": {"revisionHistoryLimit": 3}}) is None
    assert first_difference(desired, {"spec": {"paused": True, "revisionHistoryLimit": 3}}) == ".spec.paused"
    # Only where Kubernetes drops a false: elsewhere a missing false is a difference.
    assert first_difference({"spec": {"hostNetwork": False}}, {"spec": {}}) == ".spec.hostNetwork"


def test_every_deployment_says_it_is_not_paused() -> None:
    mesh = ActorMesh.from_body(
        {"metadata": {"name": "demo", "namespace": "ns", "uid": UID}, "spec": {"image": "x:1"}}
    )
    built = build_children(mesh, OperatorSettings(), keda_available=False)
    deployments = [c for c in built if c["kind"] == "Deployment"]
    assert deployments
    assert all(d["spec"]["paused"] is False for d in deployments)
