"""`reconcile/insync.py`: which changes make a mesh's last complete pass stale."""

from __future__ import annotations

import copy
from typing import Any

from actormesh_operator.reconcile.insync import InSync, inputs_digest, secrets_digest

BODY: dict[str, Any] = {
    "metadata": {"name": "demo", "namespace": "ns", "uid": "u1", "generation": 3, "labels": {"team": "a"},
                 "resourceVersion": "10", "managedFields": [{"manager": "x", "time": "t1"}]},
    "spec": {"image": "actormesh/actormesh:0.1.0"},
    "status": {"phase": "Running"},
}  # fmt: skip
FLAGS: dict[str, Any] = {"keda": False, "monitoring": frozenset(), "gateway_api": False}
DEPLOY = ("Deployment", "demo-gateway")
CONFIG = ("ConfigMap", "demo-runtime")


def digest(body: dict[str, Any], **flags: Any) -> bytes:
    return inputs_digest(body, **{**FLAGS, **flags})


def changed(edit: Any) -> dict[str, Any]:
    body = copy.deepcopy(BODY)
    edit(body)
    return body


def test_status_writes_leave_the_inputs_as_they_were() -> None:
    after_status_write = changed(
        lambda b: (
            b["metadata"].update(resourceVersion="11", managedFields=[{"manager": "x", "time": "t2"}]),
            b.update(status={"phase": "Degraded"}),
        )
    )
    assert digest(after_status_write) == digest(BODY)


def test_what_a_builder_reads_changes_the_inputs() -> None:
    assert digest(changed(lambda b: b["spec"].update(image="other:1"))) != digest(BODY)
    assert digest(changed(lambda b: b["metadata"]["labels"].update(team="b"))) != digest(BODY)
    assert digest(changed(lambda b: b["metadata"].update(generation=4))) != digest(BODY)
    assert digest(BODY, keda=True) != digest(BODY)
    assert digest(BODY, monitoring=frozenset({"ServiceMonitor"})) != digest(BODY)
    assert digest(BODY, gateway_api=True) != digest(BODY)


def live(**versions: str) -> dict[tuple[str, str], dict[str, Any]]:
    keys = {"deploy": DEPLOY, "config": CONFIG}
    return {keys[k]: {"metadata": {"resourceVersion": v}} for k, v in versions.items()}


def test_it_holds_only_while_every_child_is_verified_at_its_current_version() -> None:
    secrets = secrets_digest({"demo-gateway-auth": {"key": "c2VjcmV0"}})
    known = InSync(digest(BODY), frozenset({"demo-gateway-auth"}), secrets, {DEPLOY: "h1", CONFIG: "h2"})
    verified = {DEPLOY: ("5", "h1"), CONFIG: ("6", "h2")}
    assert known.still_holds(digest(BODY), secrets, live(deploy="5", config="6"), verified)
    # A child edited by hand (new resourceVersion, not verified since), deleted, or one more present.
    assert not known.still_holds(digest(BODY), secrets, live(deploy="7", config="6"), verified)
    assert not known.still_holds(digest(BODY), secrets, live(deploy="5"), verified)
    extra = {**live(deploy="5", config="6"), ("Service", "demo-x"): {"metadata": {"resourceVersion": "8"}}}
    assert not known.still_holds(digest(BODY), secrets, extra, verified)
    # Verified against another hash (the desired child changed), a Secret's value, the inputs.
    assert not known.still_holds(
        digest(BODY), secrets, live(deploy="5", config="6"), {**verified, CONFIG: ("6", "h0")}
    )
    rotated = secrets_digest({"demo-gateway-auth": {"key": "bmV3"}})
    assert not known.still_holds(digest(BODY), rotated, live(deploy="5", config="6"), verified)
    assert not known.still_holds(digest(BODY, keda=True), secrets, live(deploy="5", config="6"), verified)


class ApplyVersions:
    def __init__(self, versions: dict[Any, str]) -> None:
        self.versions = versions

    def apply_version(self, key: Any, obj: Any) -> str:
        return self.versions.get(key) or obj["metadata"]["resourceVersion"]


def test_it_holds_through_status_updates_at_the_same_apply_version() -> None:
    secrets = secrets_digest({})
    known = InSync(digest(BODY), frozenset(), secrets, {DEPLOY: "h1", CONFIG: "h2"})
    verified = {DEPLOY: ("5", "h1"), CONFIG: ("6", "h2")}
    after_status_updates = live(deploy="9", config="6")
    assert not known.still_holds(digest(BODY), secrets, after_status_updates, verified)
    assert known.still_holds(
        digest(BODY), secrets, after_status_updates, verified, ApplyVersions({DEPLOY: "5"})
    )
    edited = ApplyVersions({DEPLOY: "9"})
    assert not known.still_holds(digest(BODY), secrets, after_status_updates, verified, edited)
