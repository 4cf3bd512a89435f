"""Issue 11 on the real API server: the generated Secrets and the anonymous-mode warning.

- the gateway key and the NATS passwords are generated once into mesh-owned Secrets (random, >= 32
  bytes, a different value per key), a hand-set value is never overwritten, a deleted key is added back
  alone, and a Secret that existed before the mesh (a pinned key) is used as it is;
- switching to anonymous mode keeps the generated key (no pruning), sets GATEWAY_ANONYMOUS, raises the
  AnonymousGateway warning and one Warning Event; switching back clears the warning.
"""

from __future__ import annotations

import base64
import json

import pytest

from actormesh_operator.builders.generated import GENERATED_ANNOTATION
from actormesh_runtime.catalog import NATS_USERS
from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import (
    apply,
    condition,
    get,
    matching,
    merge_patch,
    minimal_mesh,
    try_get,
)
from tests.support.eventually import eventually
from tests.support.k8s import KubeControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]


def _data(kube: KubeControlPlane, ns: str, name: str) -> dict[str, str]:
    secret = try_get(kube, ns, "secret", name)
    if secret is None:
        return {}
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def _gateway_env(kube: KubeControlPlane, ns: str, mesh: str) -> dict[str, object]:
    dep = get(kube, ns, "deployment", f"{mesh}-gateway")
    [container] = dep["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def _events(kube: KubeControlPlane, ns: str, mesh: str, reason: str) -> list[str]:
    selector = f"involvedObject.name={mesh},reason={reason}"
    return [e["type"] for e in get(kube, ns, "events", "--field-selector", selector)["items"]]


def test_generated_secrets_are_created_once_and_never_overwritten(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "keys"
    operators.start()
    apply(kube, ns, minimal_mesh(mesh))
    eventually(lambda: matching(kube, ns, mesh) is not None, what="reconciled", timeout_s=60)
    live = matching(kube, ns, mesh)
    assert live is not None

    auth, users = _data(kube, ns, f"{mesh}-gateway-auth"), _data(kube, ns, f"{mesh}-nats-users")
    assert set(auth) == {"jwt-secret"}
    assert len(auth["jwt-secret"].encode()) >= 32
    assert set(users) == set(NATS_USERS)
    assert all(len(p) >= 32 for p in users.values())
    assert len(set(users.values()) | {auth["jwt-secret"]}) == len(users) + 1
    for name in (f"{mesh}-gateway-auth", f"{mesh}-nats-users"):
        meta = get(kube, ns, "secret", name)["metadata"]
        assert [(o["kind"], o["uid"]) for o in meta["ownerReferences"]] == [
            ("ActorMesh", live["metadata"]["uid"])
        ]
        assert GENERATED_ANNOTATION in meta["annotations"]
    assert _gateway_env(kube, ns, mesh)["JWT_SECRET"] == {
        "secretKeyRef": {"name": f"{mesh}-gateway-auth", "key": "jwt-secret"}
    }
    assert "GATEWAY_ANONYMOUS" not in _gateway_env(kube, ns, mesh)
    assert condition(live, "AnonymousGateway") == {}

    # A key set by hand stays; a key deleted by hand comes back, alone, with no change to the mesh (the
    # Secret's watch wakes the operator: a pass over unchanged inputs would otherwise build nothing);
    # nothing else changes.
    pinned = base64.b64encode(b"k" * 40).decode()
    merge_patch(kube, ns, f"secret/{mesh}-gateway-auth", {"data": {"jwt-secret": pinned}})
    kube.kubectl(
        "patch", f"secret/{mesh}-nats-users", "-n", ns, "--type=json",
        "-p", json.dumps([{"op": "remove", "path": "/data/admin"}]),
    )  # fmt: skip
    eventually(
        lambda: "admin" in _data(kube, ns, f"{mesh}-nats-users"),
        what="admin password added back",
        timeout_s=60,
    )
    after = _data(kube, ns, f"{mesh}-nats-users")
    assert after["admin"] != users["admin"]
    assert len(after["admin"]) >= 32
    assert {k: v for k, v in after.items() if k != "admin"} == {
        k: v for k, v in users.items() if k != "admin"
    }
    assert _data(kube, ns, f"{mesh}-gateway-auth") == {"jwt-secret": "k" * 40}

    # Emergency revocation (docs/security.md): the deleted key Secret is generated afresh at once.
    kube.kubectl("delete", "secret", f"{mesh}-gateway-auth", "-n", ns)
    eventually(
        lambda: _data(kube, ns, f"{mesh}-gateway-auth").get("jwt-secret", "k" * 40) != "k" * 40,
        what="a new gateway key",
        timeout_s=60,
    )
    assert len(_data(kube, ns, f"{mesh}-gateway-auth")["jwt-secret"].encode()) >= 32


def test_a_secret_created_before_the_mesh_pins_the_key(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "pinned"
    kube.kubectl(
        "create", "secret", "generic", f"{mesh}-gateway-auth", "-n", ns,
        "--from-literal=jwt-secret=" + "p" * 48, "--from-literal=jwt-previous-secret=" + "q" * 48,
    )  # fmt: skip
    operators.start()
    apply(kube, ns, minimal_mesh(mesh))
    eventually(lambda: matching(kube, ns, mesh) is not None, what="reconciled", timeout_s=60)
    assert _data(kube, ns, f"{mesh}-gateway-auth") == {
        "jwt-secret": "p" * 48,
        "jwt-previous-secret": "q" * 48,
    }
    env = _gateway_env(kube, ns, mesh)
    assert env["JWT_PREVIOUS_SECRET"] == {
        "secretKeyRef": {"name": f"{mesh}-gateway-auth", "key": "jwt-previous-secret", "optional": True}
    }


def test_anonymous_mode_warns_and_keeps_the_generated_key(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "open"
    operators.start()
    apply(kube, ns, minimal_mesh(mesh))
    eventually(lambda: matching(kube, ns, mesh) is not None, what="reconciled", timeout_s=60)
    key = _data(kube, ns, f"{mesh}-gateway-auth")
    assert key

    merge_patch(kube, ns, f"actormesh/{mesh}", {"spec": {"gateway": {"anonymous": True}}})
    eventually(
        lambda: (
            (body := matching(kube, ns, mesh)) is not None
            and condition(body, "AnonymousGateway").get("status") == "True"
        ),
        what="the warning",
        timeout_s=60,
    )
    live = matching(kube, ns, mesh)
    assert live is not None
    warning = condition(live, "AnonymousGateway")
    assert warning["reason"] == "AnonymousModeEnabled"
    assert "spec.gateway.anonymous" in warning["message"]
    eventually(
        lambda: _events(kube, ns, mesh, "AnonymousModeEnabled") == ["Warning"],
        what="one Warning Event",
        timeout_s=60,
    )
    env = _gateway_env(kube, ns, mesh)
    assert env["GATEWAY_ANONYMOUS"] == "true"
    assert "JWT_SECRET" not in env
    assert _data(kube, ns, f"{mesh}-gateway-auth") == key  # not pruned, not rotated

    merge_patch(kube, ns, f"actormesh/{mesh}", {"spec": {"gateway": {"anonymous": False}}})
    eventually(
        lambda: (
            (body := matching(kube, ns, mesh)) is not None
            and body["metadata"]["generation"] == 3
            and condition(body, "AnonymousGateway") == {}
        ),
        what="the warning cleared",
        timeout_s=60,
    )
    assert _gateway_env(kube, ns, mesh)["JWT_SECRET"] == {
        "secretKeyRef": {"name": f"{mesh}-gateway-auth", "key": "jwt-secret"}
    }
    assert _data(kube, ns, f"{mesh}-gateway-auth") == key
    assert _events(kube, ns, mesh, "AnonymousModeEnabled") == ["Warning"]
