"""Every sample in config/samples/ is reconciled into exactly the expected children."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders.generated import generated_secrets
from actormesh_operator.builders.secret_hash import SECRET_HASH_ANNOTATION
from actormesh_operator.reconcile.diff import HASH_ANNOTATION, with_hash
from actormesh_operator.render import main as render_main
from tests.integration.operator.conftest import ROOT, OperatorFactory
from tests.integration.operator.kubeapi import (
    FIELD_MANAGER,
    apply,
    children,
    condition,
    create_referenced_secrets,
    expected_children,
    get,
    load_sample,
    reconciled,
    template_annotations,
)
from tests.support.eventually import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

SAMPLES = sorted((ROOT / "config" / "samples").glob("*.yaml"))


def _render_equals_what_was_applied(
    sample: Path, mesh: dict[str, Any], live: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    """`actormesh-operator render -f <sample> --namespace <ns>` on the file as written (given the mesh's
    uid, which only the cluster knows) prints exactly what the reconcile applied: each child's
    `actormesh.io/applied-hash` matches once the Secret hashes (the other thing only a cluster knows)
    are copied in."""
    body = load_sample(sample)
    body["metadata"]["uid"] = mesh["metadata"]["uid"]
    source = tmp_path / sample.name
    source.write_text(yaml.safe_dump(body))
    out = io.StringIO()
    assert render_main(["-f", str(source), "--namespace", mesh["metadata"]["namespace"]], out=out) == 0
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out.getvalue())}
    assert set(rendered) == set(live)
    for key, doc in rendered.items():
        have = live[key]
        secret_hash = template_annotations(have).get(SECRET_HASH_ANNOTATION)
        if secret_hash is not None:
            template = doc["spec"]["template"]
            template.setdefault("metadata", {}).setdefault("annotations", {})[SECRET_HASH_ANNOTATION] = (
                secret_hash
            )
        applied = have["metadata"]["annotations"][HASH_ANNOTATION]
        assert with_hash(doc)["metadata"]["annotations"][HASH_ANNOTATION] == applied, f"{key}: render differs"


def test_there_are_samples() -> None:
    assert {p.name for p in SAMPLES} >= {"minimal.yaml", "production.yaml", "external.yaml"}


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_is_reconciled_into_exactly_the_expected_children(
    operators: OperatorFactory, kube_namespace: str, sample: Path, tmp_path: Path
) -> None:
    kube, ns = operators.kube, kube_namespace
    body = load_sample(sample)
    name = body["metadata"]["name"]
    create_referenced_secrets(kube, ns, body)
    operators.start()
    apply(kube, ns, body)

    eventually(lambda: reconciled(kube, ns, name) is not None, what=f"{sample.name} reconciled", timeout_s=60)
    mesh = reconciled(kube, ns, name)
    assert mesh is not None
    expected = expected_children(mesh)
    eventually(
        lambda: set(children(kube, ns, name)) == expected, what=f"{sample.name}: children", timeout_s=60
    )

    _render_equals_what_was_applied(sample, mesh, children(kube, ns, name), tmp_path)

    retained = (body["spec"].get("persistence") or {}).get("reclaimPolicy", "Retain") == "Retain"
    for (kind, child), obj in children(kube, ns, name).items():
        owners = obj["metadata"].get("ownerReferences") or []
        # The history backups' own claim outlives the mesh under Retain: no owner to collect it.
        expected_owners = [] if kind == "PersistentVolumeClaim" and retained else [
            ("ActorMesh", name, mesh["metadata"]["uid"], True)
        ]  # fmt: skip
        assert [(o["kind"], o["name"], o["uid"], o.get("controller")) for o in owners] == expected_owners, (
            f"{kind}/{child} owner references"
        )
        managers = {(m["manager"], m["operation"]) for m in obj["metadata"].get("managedFields") or []}
        assert (FIELD_MANAGER, "Apply") in managers, f"{kind}/{child} not applied by {FIELD_MANAGER}"
        assert not any(
            key.startswith("actormesh.io/kopf") for key in obj["metadata"].get("annotations") or {}
        )

    # The generated Secrets (gateway key unless anonymous or user-provided; NATS passwords with the
    # managed NATS), and the anonymous-mode warning exactly on the demo sample.
    for secret in generated_secrets(ActorMesh.from_body(mesh)):
        assert set(get(kube, ns, "secret", secret.name)["data"]) == set(secret.keys), secret.name
    anonymous = bool((body["spec"].get("gateway") or {}).get("anonymous"))
    assert anonymous is (sample.name == "minimal.yaml")
    assert (condition(mesh, "AnonymousGateway").get("status") == "True") is anonymous

    # No kubelet: nothing becomes ready, so the mesh is progressing, never stalled, never Ready.
    assert condition(mesh, "Stalled")["status"] == "False"
    assert condition(mesh, "Ready")["status"] == "False"
    assert mesh["status"]["phase"] == "Progressing"
    # Nothing but our status: kopf writes no bookkeeping (no change handlers), neither in status
    # nor in annotations.
    assert set(mesh["status"]) <= {
        "observedGeneration",
        "phase",
        "conditions",
        "components",
        "actorsReady",
        "gatewayEndpoint",
    }
    ours = [key for key in mesh["metadata"].get("annotations") or {} if key.startswith("actormesh.io/")]
    assert not ours, "kopf wrote its diff base or progress"
    assert not mesh["metadata"].get("finalizers"), "no finalizer: deleting a mesh never needs the operator"
