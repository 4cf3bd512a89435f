"""nats.py: the StatefulSet, Services and nats.conf, shaped like the upstream NATS chart."""

from __future__ import annotations

import pytest

from actormesh_operator.api.spec import InvalidSpec
from actormesh_operator.api.types import quantity_bytes
from actormesh_operator.builders import nats
from tests.unit.builder_helpers import SETTINGS, children, container, index, make_mesh


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("8Gi", 8 * 2**30),
        ("256Mi", 256 * 2**20),
        ("1.5Gi", 3 * 2**29),
        ("1G", 10**9),
        ("1e9", 10**9),
        ("500k", 500_000),
        ("1024", 1024),
        ("1500m", 2),
        ("1Ei", 2**60),
        ("1E", 10**18),
    ],
    ids=[
        "Gi",
        "Mi",
        "fractional-Gi",
        "G",
        "exponent",
        "k",
        "plain",
        "milli-rounds-up",
        "Ei",
        "exa-not-exponent",
    ],
)
def test_quantity_bytes(quantity: str, expected: int) -> None:
    assert quantity_bytes(quantity) == expected


def test_quantity_bytes_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        quantity_bytes("ten gigs")


@pytest.mark.parametrize(("replicas", "routed"), [(1, False), (3, True)], ids=["single", "cluster-of-3"])
def test_cluster_routes_only_when_clustered(replicas: int, routed: bool) -> None:
    mesh = make_mesh({"nats": {"replicas": replicas}})
    conf = nats.render_config(mesh, SETTINGS)
    assert "server_name: $POD_NAME" in conf
    assert ("cluster {" in conf) is routed
    if routed:
        host = "demo-nats-headless.shop.svc.cluster.local"
        routes = [f"nats://demo-nats-{i}.{host}:6222" for i in range(3)]
        assert f"  routes: [{', '.join(routes)}]" in conf
        assert "  name: demo-nats" in conf


def test_config_has_jetstream_limits_and_lame_duck() -> None:
    conf = nats.render_config(make_mesh({"nats": {"jetstream": {"maxFileStore": "2Gi"}}}), SETTINGS)
    assert "  store_dir: /data" in conf
    assert f"  max_file_store: {2 * 2**30}" in conf
    assert f"  max_memory_store: {256 * 2**20}" in conf
    assert "lame_duck_duration: 30s" in conf
    assert "pid_file: /var/run/nats/nats.pid" in conf


@pytest.mark.parametrize(
    ("nats_spec", "expected"),
    [
        pytest.param({}, 8 * 2**30, id="default-80-percent-of-10Gi"),
        pytest.param({"storage": {"size": "5Gi"}}, 4 * 2**30, id="follows-a-smaller-volume"),
        pytest.param(
            {"storage": {"size": "5Gi"}, "jetstream": {"maxFileStore": "5Gi"}}, 5 * 2**30, id="explicit"
        ),
    ],
)
def test_file_store_limit_fits_the_volume(nats_spec: dict[str, object], expected: int) -> None:
    """JetStream must never believe it has more disk than its claim, or it fails writes when full."""
    conf = nats.render_config(make_mesh({"nats": nats_spec}), SETTINGS)
    assert f"  max_file_store: {expected}\n" in conf


def test_file_store_limit_above_the_volume_is_an_invalid_spec() -> None:
    with pytest.raises(
        InvalidSpec, match=r"spec.nats.jetstream.maxFileStore must not exceed spec.nats.storage.size"
    ):
        make_mesh({"nats": {"storage": {"size": "5Gi"}, "jetstream": {"maxFileStore": "6Gi"}}})


def test_statefulset_shape() -> None:
    objs = index(children({"nats": {"replicas": 3, "storage": {"size": "20Gi", "storageClassName": "fast"}}}))
    sts = objs[("StatefulSet", "demo-nats")]
    spec = sts["spec"]
    assert spec["replicas"] == 3
    assert spec["serviceName"] == "demo-nats-headless"
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    [claim] = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "jetstream"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    c = container(sts)
    assert c["image"] == SETTINGS.nats_image
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "nats": 4222,
        "cluster": 6222,
        "monitor": 8222,
    }
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz?js-server-only=true"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz?js-enabled-only=true"
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["nats-server", "-sl=ldm=/var/run/nats/nats.pid"]
    assert {"name": "jetstream", "mountPath": "/data"} in c["volumeMounts"]
    assert c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    pod = spec["template"]["spec"]
    [spread] = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert pod["terminationGracePeriodSeconds"] > nats.LAME_DUCK_DURATION_S + nats.LAME_DUCK_GRACE_S


def test_claim_template_metadata_is_immutable_safe() -> None:
    # volumeClaimTemplates cannot be updated: extra labels or an image bump must not touch them.
    plain = index(children())[("StatefulSet", "demo-nats")]["spec"]["volumeClaimTemplates"]
    changed = index(children({"extraLabels": {"x": "y"}, "nats": {"image": "nats:2.99-alpine"}}))
    assert changed[("StatefulSet", "demo-nats")]["spec"]["volumeClaimTemplates"] == plain


def test_services() -> None:
    objs = index(children())
    headless = objs[("Service", "demo-nats-headless")]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True
    assert {p["port"] for p in headless["ports"]} == {4222, 6222, 8222}
    client = objs[("Service", "demo-nats")]["spec"]
    assert {p["port"] for p in client["ports"]} == {4222, 8222}
    assert client["selector"] == headless["selector"]


def test_config_change_rolls_nats() -> None:
    def digest(spec: dict[str, object]) -> str:
        sts = index(children(spec))[("StatefulSet", "demo-nats")]
        value: str = sts["spec"]["template"]["metadata"]["annotations"]["actormesh.io/config-hash"]
        return value

    assert digest({}) != digest({"nats": {"jetstream": {"maxMemory": "512Mi"}}})
    assert digest({}) == digest({"llm": {"model": "gpt-4o-mini"}})


def test_spec_image_overrides_settings() -> None:
    sts = index(children({"nats": {"image": "registry.local/nats:2.12"}}))[("StatefulSet", "demo-nats")]
    assert container(sts)["image"] == "registry.local/nats:2.12"
    assert sts["metadata"]["labels"]["app.kubernetes.io/version"] == "2.12"


def test_single_server_has_no_spread_constraint() -> None:
    pod = index(children())[("StatefulSet", "demo-nats")]["spec"]["template"]["spec"]
    assert "topologySpreadConstraints" not in pod
