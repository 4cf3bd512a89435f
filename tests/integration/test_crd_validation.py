"""The generated CRD on a real kube-apiserver: it installs, accepts every sample, rejects bad specs
with messages naming the field, keeps storage sizes immutable, and stores the full status we compute."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from actormesh_operator.api import schema
from actormesh_operator.api.observed import ObservedState, ObservedWorkload
from actormesh_operator.api.spec import ActorMesh, InvalidSpec
from actormesh_operator.status import compute_status
from tests.support.actormesh_crd import CRD_FILE, install_actormesh_crd
from tests.support.eventually import eventually
from tests.support.k8s import KubeControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "config" / "samples").glob("*.yaml"))


@pytest.fixture
def crd_installed(actormesh_crd: KubeControlPlane) -> KubeControlPlane:
    return actormesh_crd


def _mesh(spec: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "actormesh.io/v1alpha1",
        "kind": "ActorMesh",
        "metadata": {"name": name or f"m-{uuid.uuid4().hex[:8]}"},
        "spec": spec,
    }


def _apply(kube: KubeControlPlane, namespace: str, body: dict[str, Any], *extra: str) -> tuple[int, str]:
    result = kube.kubectl(
        "apply",
        "-n",
        namespace,
        "--validate=strict",
        *extra,
        "-f",
        "-",
        input=yaml.safe_dump(body),
        check=False,
    )
    return result.returncode, result.stderr + result.stdout


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_sample_is_accepted(crd_installed: KubeControlPlane, kube_namespace: str, sample: Path) -> None:
    result = crd_installed.kubectl(
        "apply", "-n", kube_namespace, "--dry-run=server", "--validate=strict", "-f", str(sample), check=False
    )
    assert result.returncode == 0, result.stderr


ROUTERS = {"name": "routers", "actors": ["decisionRouter", "escalationRouter"]}
BAD_SPECS = [
    pytest.param({}, "spec.image", id="image-required"),
    pytest.param(
        {"image": "x", "gateway": {"anonymous": True, "authSecretRef": {"name": "k", "key": "jwt"}}},
        "spec.gateway.anonymous cannot be true when spec.gateway.authSecretRef is set",
        id="anonymous-with-key",
    ),
    pytest.param(
        {"image": "x", "redis": {"external": {"url": "redis://:hunter2@r:6379/0"}}},
        "spec.redis.external.url must not contain a password",
        id="redis-url-password",
    ),
    pytest.param(
        {"image": "x", "nats": {"external": {"url": "nats://a:4222,nats://bus:hunter2@b:4222"}}},
        "spec.nats.external.url must not contain a password",
        id="nats-url-password",
    ),
    pytest.param(
        {"image": "x", "nats": {"external": {"url": "tls://hunter2@b:4222"}}},
        "spec.nats.external.url must not contain a password or a token",
        id="nats-url-token",
    ),
    pytest.param(
        {
            "image": "x",
            "nats": {
                "external": {
                    "url": "nats://b:4222",
                    "credentialsSecretRef": {"name": "c"},
                    "tokenSecretRef": {"name": "t", "key": "token"},
                }
            },
        },
        "spec.nats.external sets credentialsSecretRef or tokenSecretRef, not both",
        id="nats-user-and-token",
    ),
    pytest.param(
        {"image": "x", "networkPolicy": {"egressExcept": ["metadata"]}},
        "spec.networkPolicy.egressExcept",
        id="egress-except-not-a-cidr",
    ),
    pytest.param({"image": "x", "nats": {"replicas": 2}}, "spec.nats.replicas", id="nats-replicas-1-or-3"),
    pytest.param(
        {"image": "x", "monitoring": {"tracing": {"endpoint": "otel-collector:4318"}}},
        "spec.monitoring.tracing.endpoint",
        id="tracing-endpoint-not-a-url",
    ),
    pytest.param(
        {"image": "x", "monitoring": {"tracing": {"headersSecretRef": {"name": "otlp", "key": "headers"}}}},
        "spec.monitoring.tracing.headersSecretRef needs spec.monitoring.tracing.endpoint",
        id="tracing-headers-without-endpoint",
    ),
    pytest.param(
        {"image": "x", "nats": {"replicas": 3, "external": {"url": "nats://n:4222"}}},
        "spec.nats.external cannot be combined",
        id="nats-external-vs-managed",
    ),
    pytest.param(
        {"image": "x", "redis": {"storage": {"size": "1Gi"}, "external": {"url": "redis://r:6379"}}},
        "spec.redis.external cannot be combined",
        id="redis-external-vs-managed",
    ),
    pytest.param(
        {
            "image": "x",
            "redis": {"passwordSecretRef": {"name": "p", "key": "k"}, "external": {"url": "redis://r:6379"}},
        },
        "spec.redis.external cannot be combined",
        id="redis-external-vs-managed-password",
    ),
    pytest.param(
        {"image": "x", "redis": {"enabled": False, "external": {"url": "redis://r:6379"}}},
        "spec.redis.external requires spec.redis.enabled",
        id="redis-external-but-disabled",
    ),
    pytest.param(
        {"image": "x", "gateway": {"autoscaling": {"minReplicas": 4, "maxReplicas": 2}}},
        "spec.gateway.autoscaling.minReplicas must be less than or equal",
        id="gateway-min-gt-max",
    ),
    pytest.param(
        {"image": "x", "actors": {"defaults": {"autoscaling": {"minReplicas": 9}}}},
        "spec.actors.defaults.autoscaling.minReplicas must be less than or equal",
        id="actor-defaults-min-gt-default-max",
    ),
    pytest.param(
        {
            "image": "x",
            "actors": {
                "defaults": {"autoscaling": {"maxReplicas": 3}},
                "intentAnalyzer": {"autoscaling": {"minReplicas": 4}},
            },
        },
        "spec.actors.intentAnalyzer.autoscaling.minReplicas must be less than or equal",
        id="actor-override-min-gt-merged-max",
    ),
    pytest.param(
        {
            "image": "x",
            "nats": {"external": {"url": "nats://n:4222"}},
            "actors": {"intentAnalyzer": {"autoscaling": {"enabled": True, "mode": "queueLag"}}},
        },
        "spec.actors.*.autoscaling.mode: queueLag needs the managed NATS",
        id="queue-lag-with-external-nats",
    ),
    pytest.param(
        {
            "image": "x",
            "nats": {"external": {"url": "nats://n:4222"}},
            "actors": {"defaults": {"autoscaling": {"mode": "queueLag"}}},
        },
        "spec.actors.*.autoscaling.mode: queueLag needs the managed NATS",
        id="queue-lag-default-with-external-nats",
    ),
    pytest.param(
        {"image": "x", "nats": {"storage": {"size": "5Gi"}, "jetstream": {"maxFileStore": "8Gi"}}},
        "spec.nats.jetstream.maxFileStore must not exceed spec.nats.storage.size",
        id="file-store-above-the-volume",
    ),
    pytest.param(
        {"image": "x", "nats": {"jetstream": {"maxFileStore": "11Gi"}}},
        "spec.nats.jetstream.maxFileStore must not exceed spec.nats.storage.size",
        id="file-store-above-the-default-volume",
    ),
    pytest.param(
        {"image": "x", "gateway": {"ingress": {"enabled": True}}},
        "spec.gateway.ingress.host is required",
        id="ingress-needs-host",
    ),
    pytest.param(
        {"image": "x", "extraLabels": {"app.kubernetes.io/name": "x"}},
        "spec.extraLabels must not set app.kubernetes.io/",
        id="reserved-extra-labels",
    ),
    pytest.param(
        {"image": "x", "nats": {"storage": {"size": "lots"}}}, "spec.nats.storage.size", id="bad-quantity"
    ),
    pytest.param(
        {"image": "x", "actors": {"sentimentAnalyzer": {"autoscaling": {"mode": "magic"}}}},
        "spec.actors.sentimentAnalyzer.autoscaling.mode",
        id="bad-autoscaling-mode",
    ),
    pytest.param(
        {"image": "x", "nats": {"external": {"url": "http://n"}}}, "spec.nats.external.url", id="bad-nats-url"
    ),
    pytest.param(
        {"image": "x", "persistence": {"reclaimPolicy": "Recycle"}},
        "spec.persistence.reclaimPolicy",
        id="bad-reclaim",
    ),
    pytest.param(
        {"image": "x", "history": {"backup": {"existingClaim": "b", "storage": {"size": "1Gi"}}}},
        "spec.history.backup.existingClaim cannot be combined with spec.history.backup.storage",
        id="backup-claim-and-storage",
    ),
    pytest.param(
        {"image": "x", "history": {"backup": {"interval": "90s"}}},
        "spec.history.backup.interval",
        id="backup-interval-in-seconds",
    ),
    pytest.param(
        {"image": "x", "history": {"backup": {"preMigrationRetention": 0}}},
        "spec.history.backup.preMigrationRetention: Invalid value",  # a bound, not an unknown field
        id="backup-no-pre-migration-copy",
    ),
    pytest.param(
        {"image": "x", "history": {"backup": {"preMigrationMaxAgeDays": 36501}}},
        "spec.history.backup.preMigrationMaxAgeDays: Invalid value",  # a bound, not an unknown field
        id="backup-pre-migration-age-over-a-century",
    ),
    pytest.param(
        {
            "image": "x",
            "actors": {"groups": [{**ROUTERS, "env": [{"name": "DIRECT_HOPS", "value": "true"}]}]},
        },
        "DIRECT_HOPS from spec.actors.directHops",
        id="direct-hops-by-env",
    ),
    pytest.param(
        {"image": "x", "actors": {"directHops": "sometimes"}},
        "spec.actors.directHops",
        id="direct-hops-not-a-bool",
    ),
    pytest.param(
        {"image": "x", "imagePullSecrets": [{"name": "reg"}, {"name": "reg"}]},
        "spec.imagePullSecrets",
        id="duplicate-pull-secret",
    ),
    pytest.param(
        {"image": "x", "nats": {"external": {"url": "nats://n:99999"}}},
        "spec.nats.external.url",
        id="nats-url-port-out-of-range",
    ),
    pytest.param(
        {"image": "x", "redis": {"external": {"url": "redis://r:6379x/0"}}},
        "spec.redis.external.url",
        id="redis-url-port-not-a-number",
    ),
    pytest.param(
        {"image": "x", "commerceApis": {"ordersUrl": "https://o:80800/v1"}},
        "spec.commerceApis.ordersUrl",
        id="commerce-url-port",
    ),
    pytest.param(
        {"image": "x", "llm": {"model": "m", "apiBase": "https://l:443000/v1"}},
        "spec.llm.apiBase",
        id="llm-url-port",
    ),
    pytest.param(
        {"image": "x", "monitoring": {"tracing": {"endpoint": "http://o:431800"}}},
        "spec.monitoring.tracing.endpoint",
        id="otlp-url-port",
    ),
    pytest.param(
        {"image": "x", "nats": {"jetstream": {"maxMemory": "1e999999"}}},
        "spec.nats.jetstream.maxMemory",
        id="absurd-exponent",
    ),
    pytest.param(
        {"image": "x", "networkPolicy": {"egressExcept": ["300.0.0.0/8"]}},
        "spec.networkPolicy.egressExcept",
        id="egress-except-octet",
    ),
    pytest.param(
        {"image": "x", "networkPolicy": {"egressExcept": ["1:2/8"]}},
        "spec.networkPolicy.egressExcept",
        id="egress-except-short-ipv6",
    ),
    pytest.param(
        {"image": "x", "networkPolicy": {"egressExcept": ["0.0.0.0/0"]}},
        "spec.networkPolicy.egressExcept",
        id="egress-except-everything-v4",
    ),
    pytest.param(
        {"image": "x", "networkPolicy": {"egressExcept": ["10.0.0.0/8", "::/0"]}},
        "spec.networkPolicy.egressExcept",
        id="egress-except-everything-v6",
    ),
    pytest.param(
        {"image": "x", "extraLabels": {"team.example.com/" + "a" * 64: "x"}},
        "spec.extraLabels",
        id="label-key-name-too-long",
    ),
    pytest.param(
        {"image": "x", "history": {"storage": {"size": 0}}}, "spec.history.storage.size", id="size-zero"
    ),
    pytest.param(
        {"image": "x", "history": {"storage": {"size": "-5Gi"}}},
        "spec.history.storage.size",
        id="size-negative",
    ),
    pytest.param(
        {"image": "x", "history": {"backup": {"storage": {"size": "0Gi"}}}},
        "spec.history.backup.storage.size",
        id="backup-size-zero",
    ),
    pytest.param(
        {"image": "x", "history": {"storage": {"storageClassName": "Fast_SSD"}}},
        "spec.history.storage.storageClassName",
        id="storage-class-not-a-subdomain",
    ),
    pytest.param({"image": "x", "bogus": 1}, "spec.bogus", id="unknown-field"),
    pytest.param(
        {"image": "x", "scheduling": {"affinity": {"nodeAfinity": {}}}},
        "spec.scheduling.affinity.nodeAfinity",
        id="affinity-misspelt",
    ),
    pytest.param(
        {
            "image": "x",
            "scheduling": {
                "affinity": {
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 50, "podAffinityTerm": {"topologykey": "kubernetes.io/hostname"}}
                        ]
                    }
                }
            },
        },
        "podAffinityTerm.topologykey",
        id="affinity-term-misspelt",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), BAD_SPECS)
def test_invalid_spec_is_rejected_naming_the_field(
    crd_installed: KubeControlPlane, kube_namespace: str, spec: dict[str, Any], expected: str
) -> None:
    code, output = _apply(crd_installed, kube_namespace, _mesh(spec))
    assert code != 0, f"accepted: {spec}"
    assert expected in output


READABLE_REFUSALS = [
    pytest.param({"nats": {"external": {"url": "http://n"}}}, "spec.nats.external.url",
                 "must be NATS server URLs", id="nats"),
    pytest.param({"redis": {"external": {"url": "redis://r:6379x/0"}}}, "spec.redis.external.url",
                 "must be a redis:// or rediss:// URL", id="redis"),
    pytest.param({"commerceApis": {"ordersUrl": "https://o:80800/v1"}}, "spec.commerceApis.ordersUrl",
                 "must be an http:// or https:// URL", id="commerce"),
    pytest.param({"monitoring": {"tracing": {"endpoint": "http://c:4318/?q=1"}}},
                 "spec.monitoring.tracing.endpoint", "no query", id="otlp"),
    pytest.param({"networkPolicy": {"egressExcept": ["10.0.0.0/33"]}}, "spec.networkPolicy.egressExcept[0]",
                 "must be an IPv4 or IPv6 address range", id="cidr"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "field", "message"), READABLE_REFUSALS)
def test_a_bad_address_is_refused_in_words_not_with_its_pattern(
    crd_installed: KubeControlPlane, kube_namespace: str, spec: dict[str, Any], field: str, message: str
) -> None:
    """As an OpenAPI `pattern`, the refusal quoted the ~1,600-character expression (3,271 characters for
    a NATS URL); a CEL rule on the field says what is expected, and the API server names the field."""
    code, output = _apply(crd_installed, kube_namespace, _mesh({"image": "x", **spec}))
    assert code != 0, f"accepted: {spec}"
    assert f"{field}: Invalid value" in output
    assert message in output
    assert "[0-9a-fA-F]" not in output
    with pytest.raises(InvalidSpec) as info:
        ActorMesh.from_body(_mesh({"image": "x", **spec}))  # type: ignore[arg-type]
    (problem,) = info.value.problems
    assert message in problem
    assert problem.startswith(field.replace("[0]", ".0") + ": ")


def test_the_model_rejects_what_the_api_server_rejects() -> None:
    """The pydantic model names the same field for each bad spec (for objects that skipped admission)."""
    from actormesh_operator.api.spec import InvalidSpec

    for param in BAD_SPECS:
        spec, expected = param.values
        field = str(expected).split()[0]
        with pytest.raises(InvalidSpec) as info:
            ActorMesh.from_body(_mesh(spec))  # type: ignore[arg-type]
        assert field in str(info.value), param.id


def test_long_mesh_name_is_rejected(crd_installed: KubeControlPlane, kube_namespace: str) -> None:
    code, output = _apply(crd_installed, kube_namespace, _mesh({"image": "x"}, name="m" * 41))
    assert code != 0
    assert "metadata.name must be at most 40 characters" in output


@pytest.mark.parametrize("name", ["1shop", "shop.v2"])
def test_mesh_name_that_no_service_can_start_with_is_rejected(
    crd_installed: KubeControlPlane, kube_namespace: str, name: str
) -> None:
    code, output = _apply(crd_installed, kube_namespace, _mesh({"image": "x"}, name=name))
    assert code != 0
    assert "metadata.name must be a DNS-1035 label" in output


def test_storage_class_alone_keeps_the_sections_size(
    crd_installed: KubeControlPlane, kube_namespace: str
) -> None:
    body = _mesh(
        {
            "image": "x",
            "nats": {"storage": {"storageClassName": "fast"}},
            "history": {"backup": {"enabled": True, "storage": {"storageClassName": "nfs"}}},
        }
    )
    code, output = _apply(crd_installed, kube_namespace, body)
    assert code == 0, output
    name = body["metadata"]["name"]
    live = json.loads(crd_installed.kubectl("get", "am", name, "-n", kube_namespace, "-o", "json").stdout)
    assert live["spec"]["nats"]["storage"] == {"size": "10Gi", "storageClassName": "fast"}
    assert live["spec"]["history"]["backup"]["storage"] == {"size": "5Gi", "storageClassName": "nfs"}


def test_egress_except_with_host_bits_is_accepted_as_its_network(
    crd_installed: KubeControlPlane, kube_namespace: str
) -> None:
    """Kubernetes reads `10.1.2.3/8` in an ipBlock as 10.0.0.0/8; so do the CRD and the model."""
    body = _mesh({"image": "x", "networkPolicy": {"egressExcept": ["10.1.2.3/8", "fd00::1/8"]}})
    code, output = _apply(crd_installed, kube_namespace, body)
    assert code == 0, output
    spec = ActorMesh.from_body(body).spec
    assert spec.network_policy.egress_except == ["10.0.0.0/8", "fd00::/8"]


@pytest.mark.parametrize("component", ["nats", "redis", "history"])
def test_storage_size_is_immutable(
    crd_installed: KubeControlPlane, kube_namespace: str, component: str
) -> None:
    body = _mesh({"image": "x", component: {"storage": {"size": "1Gi"}}})
    assert _apply(crd_installed, kube_namespace, body)[0] == 0
    body["spec"][component]["storage"]["size"] = "2Gi"
    code, output = _apply(crd_installed, kube_namespace, body)
    assert code != 0
    assert f"spec.{component}.storage.size is immutable" in output
    # Changing anything else is still allowed.
    body["spec"][component]["storage"]["size"] = "1Gi"
    body["spec"]["image"] = "example/runtime:2"
    code, output = _apply(crd_installed, kube_namespace, body)
    assert code == 0, output


STORAGE_TRANSITIONS = [
    pytest.param(
        {"nats": {"storage": {"size": "20Gi"}}}, {}, "spec.nats.storage.size is immutable", id="size-removed"
    ),
    pytest.param(
        {}, {"nats": {"storage": {"size": "20Gi"}}}, "spec.nats.storage.size is immutable", id="size-added"
    ),
    pytest.param({}, {"nats": {"storage": {"size": "10Gi"}}}, None, id="default-made-explicit"),
    pytest.param(
        {"history": {"storage": {"size": 1073741824}}},
        {"history": {"storage": {"size": "1073741824"}}},
        None,
        id="integer-size-as-string",
    ),
    pytest.param(
        {},
        {"history": {"storage": {"storageClassName": "fast"}}},
        "spec.history.storage.storageClassName is immutable",
        id="class-added",
    ),
    pytest.param(
        {"redis": {"storage": {"size": "2Gi"}}},
        {"redis": {"external": {"url": "redis://r:6379"}}},
        None,
        id="redis-to-external",
    ),
    pytest.param(
        {"nats": {"external": {"url": "nats://n:4222"}}},
        {"nats": {"storage": {"size": "20Gi"}}},
        None,
        id="nats-external-to-managed",
    ),
]


@pytest.mark.parametrize(("before", "after", "error"), STORAGE_TRANSITIONS)
def test_effective_storage_cannot_change_by_adding_or_removing_the_field(
    crd_installed: KubeControlPlane,
    kube_namespace: str,
    before: dict[str, Any],
    after: dict[str, Any],
    error: str | None,
) -> None:
    """The claim templates follow the effective value (explicit or default), so that is what is frozen,
    as long as the component stays managed (an external or disabled one has no claims of ours)."""
    body = _mesh({"image": "x", **before})
    code, output = _apply(crd_installed, kube_namespace, body)
    assert code == 0, output
    body["spec"] = {"image": "x", **after}
    code, output = _apply(crd_installed, kube_namespace, body)
    if error is None:
        assert code == 0, output
    else:
        assert code != 0, f"accepted: {before} -> {after}"
        assert error in output


def _history_storage(crd: dict[str, Any]) -> dict[str, Any]:
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    history = root["properties"]["spec"]["properties"]["history"]
    storage: dict[str, Any] = history["properties"]["storage"]["properties"]
    return storage


def test_a_stored_storage_value_kubernetes_refuses_may_still_be_corrected(
    crd_installed: KubeControlPlane, kube_namespace: str
) -> None:
    """An object stored before the schema refused `size: 0` or a class that is no DNS name never got a
    claim, so the immutability rules let it be corrected (once); the CRD is swapped for one without the
    new checks just long enough to store such an object."""
    lenient = schema.crd()
    _history_storage(lenient)["size"].pop("x-kubernetes-validations")
    _history_storage(lenient)["storageClassName"].pop("pattern")
    bad = {"image": "x", "history": {"storage": {"size": 0, "storageClassName": "Fast_SSD"}}}
    body = _mesh(bad)
    try:
        crd_installed.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(lenient)
        )
        eventually(lambda: _apply(crd_installed, kube_namespace, body)[0] == 0, what="the bad spec stored")
    finally:
        install_actormesh_crd(crd_installed)
    eventually(
        lambda: _apply(crd_installed, kube_namespace, _mesh(bad))[0] != 0, what="the CRD's checks back"
    )
    body["spec"]["history"]["storage"] = {"size": "2Gi", "storageClassName": "fast-ssd"}
    code, output = _apply(crd_installed, kube_namespace, body)
    assert code == 0, output
    body["spec"]["history"]["storage"] = {"size": "3Gi", "storageClassName": "fast"}
    code, output = _apply(crd_installed, kube_namespace, body)
    assert code != 0
    assert "spec.history.storage.size is immutable" in output
    assert "spec.history.storage.storageClassName is immutable" in output


def test_file_store_may_equal_the_volume_in_another_spelling(
    crd_installed: KubeControlPlane, kube_namespace: str
) -> None:
    spec = {"image": "x", "nats": {"storage": {"size": "1Gi"}, "jetstream": {"maxFileStore": "1024Mi"}}}
    code, output = _apply(crd_installed, kube_namespace, _mesh(spec))
    assert code == 0, output
    ActorMesh.from_body(_mesh(spec))  # the model agrees


def test_quantities_accept_integers(crd_installed: KubeControlPlane, kube_namespace: str) -> None:
    body = _mesh({"image": "x", "actors": {"defaults": {"resources": {"requests": {"cpu": 1}}}}})
    code, output = _apply(crd_installed, kube_namespace, body)
    assert code == 0, output


def test_computed_status_is_stored_unpruned_and_printed(
    crd_installed: KubeControlPlane, kube_namespace: str
) -> None:
    body = _mesh({"image": "x", "redis": {"enabled": False}})
    name = body["metadata"]["name"]
    assert _apply(crd_installed, kube_namespace, body)[0] == 0
    live = json.loads(crd_installed.kubectl("get", "am", name, "-n", kube_namespace, "-o", "json").stdout)
    mesh = ActorMesh.from_body(live)
    observed = ObservedState(
        workloads=[ObservedWorkload(component="nats", kind="StatefulSet", name=f"{name}-nats", desired=1)]
    )
    status = compute_status(mesh, observed, None, datetime(2026, 1, 1, tzinfo=UTC))
    status["conditions"].append(
        {
            "type": "example.com/Audited",
            "status": "True",
            "reason": "Other",
            "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    )
    crd_installed.kubectl(
        "patch", "am", name, "-n", kube_namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    stored = json.loads(crd_installed.kubectl("get", "am", name, "-n", kube_namespace, "-o", "json").stdout)
    assert stored["status"] == status
    table = crd_installed.kubectl("get", "am", name, "-n", kube_namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "READY", "PHASE", "ACTORS", "GATEWAY", "AGE"]
    assert row.split()[1:4] == ["False", "Progressing", "0/9"]
    # The short name and the category both find it.
    assert name in crd_installed.kubectl("get", "actormesh", "-n", kube_namespace, "-o", "name").stdout


def test_config_crd_kustomization_renders_the_generated_crd(kube_control_plane: KubeControlPlane) -> None:
    rendered = kube_control_plane.kubectl("kustomize", str(ROOT / "config" / "crd")).stdout
    assert yaml.safe_load(rendered) == yaml.safe_load(CRD_FILE.read_text())
