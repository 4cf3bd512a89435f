"""names.py and labels.py: limits, stability, uniqueness, and the label contract."""

from __future__ import annotations

import re

import pytest

from actormesh_operator.builders import labels as lbl
from actormesh_operator.builders import names
from actormesh_runtime.catalog import ACTORS
from tests.unit.builder_helpers import RICH_SPEC, children, make_mesh

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LONGEST_MESH = "m" * 20 + "-" + "x" * 19  # 40 characters, the CRD's maximum


@pytest.mark.parametrize("mesh_name", ["demo", "a", LONGEST_MESH], ids=["short", "one-char", "longest"])
def test_every_child_name_fits_its_limit(mesh_name: str) -> None:
    objs = children(RICH_SPEC, keda=True, name=mesh_name)
    for obj in objs:
        name = obj["metadata"]["name"]
        assert DNS_LABEL.match(name), name
        limit = names.STATEFULSET_NAME_MAX if obj["kind"] == "StatefulSet" else names.DNS_LABEL_MAX
        assert len(name) <= limit, name
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63, value


def test_longest_allowed_mesh_name_needs_no_hash() -> None:
    info = next(a for a in ACTORS if a.k8s_name == "execution-coordinator")
    assert names.actor(LONGEST_MESH, info) == f"{LONGEST_MESH}-execution-coordinator"
    assert names.nats(LONGEST_MESH) == f"{LONGEST_MESH}-nats"


def test_fit_keeps_short_names_and_hashes_long_ones_stably() -> None:
    assert names.fit("demo", "nats") == "demo-nats"
    too_long = "m" * 50  # longer than the CRD allows: names.py must still cope
    long_a = names.fit(too_long, "execution-coordinator")
    long_b = names.fit(too_long[:-1] + "y", "execution-coordinator")
    assert len(long_a) == 63
    assert long_a.endswith("-execution-coordinator")
    assert long_a != long_b, "two long mesh names sharing a prefix must not collide"
    assert long_a == names.fit(too_long, "execution-coordinator"), "names must be stable"
    assert len(names.nats(too_long)) <= names.STATEFULSET_NAME_MAX


def test_fit_pins_its_hash() -> None:
    # Child names of existing meshes must never change across operator versions.
    assert names.fit("a" * 60, "gateway") == "a" * 46 + "-ef873901-gateway"


def test_nats_pod_dns_names_fit() -> None:
    sts, svc = names.nats(LONGEST_MESH), names.nats_headless(LONGEST_MESH)
    assert len(f"{sts}-2") <= 63
    assert len(svc) <= 63


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/example/actormesh:0.1.0", "0.1.0"),
        ("nats:2.12-alpine", "2.12-alpine"),
        ("localhost:5000/actormesh", None),
        ("actormesh@sha256:abcd", None),
        ("registry:5000/team/actormesh:v1+build", "v1-build"),
    ],
    ids=["tag", "alpine", "registry-port-no-tag", "digest", "plus-sanitised"],
)
def test_version_label(image: str, expected: str | None) -> None:
    assert lbl.version_label(image) == expected


def test_labels_have_the_app_kubernetes_io_set_and_extra_labels_never_win() -> None:
    mesh = make_mesh({"extraLabels": {"cost-center": "cx"}})
    got = lbl.labels(mesh, lbl.GATEWAY, image="ghcr.io/example/actormesh:0.1.0")
    assert got == {
        "cost-center": "cx",
        "app.kubernetes.io/name": "actormesh",
        "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/component": "gateway",
        "app.kubernetes.io/part-of": "actormesh",
        "app.kubernetes.io/managed-by": "actormesh-operator",
        "app.kubernetes.io/version": "0.1.0",
    }


def test_selectors_are_subsets_of_pod_labels_and_exclude_mutable_labels() -> None:
    for obj in children(RICH_SPEC, keda=True):
        if obj["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        selector = obj["spec"]["selector"]["matchLabels"]
        assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
        # Selectors are immutable: nothing that can change (version, extra labels) may be in them.
        assert set(selector) == {lbl.NAME, lbl.INSTANCE, lbl.COMPONENT}


def test_mesh_selector_matches_every_pod_of_the_mesh_only() -> None:
    selector = lbl.mesh_selector("demo")
    assert selector == {
        "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/managed-by": "actormesh-operator",
    }
    other = lbl.mesh_selector("demo2")
    for obj in children():
        if obj["kind"] in {"Deployment", "StatefulSet"}:
            pod_labels = obj["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= pod_labels.items()
            assert not other.items() <= pod_labels.items()
