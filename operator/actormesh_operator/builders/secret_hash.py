"""Secret rotation: a pod-template annotation hashing the Secret values each workload reads.

Called by the reconcile layer after `build_children`, with the data of the Secrets it read (this module
reads nothing). The Secrets are found in the built pod templates themselves — env `valueFrom.secretKeyRef`,
`envFrom.secretRef` and secret volumes — so every source counts: `spec.llm.apiKeySecretRef`, the gateway's
auth Secret, Redis passwords, and the `env` escape hatch alike. A changed value changes the annotation of
exactly the workloads reading it, so they roll; the values themselves go no further than the hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from actormesh_operator.builders.meta import Manifest

SECRET_HASH_ANNOTATION = "actormesh.io/secret-hash"
"""Pod-template annotation: changes exactly when a Secret value the pods read changes."""

WHOLE = "*"
"""Key of a reference to a whole Secret (envFrom, volume)."""

SecretData = Mapping[str, Mapping[str, str]]
"""Secret name → its `data` (base64 values, as the API returns them); an absent Secret is left out."""

_WORKLOADS = ("Deployment", "StatefulSet")


def template_secret_refs(template: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(Secret name, key or WHOLE) for every Secret a pod template reads."""
    spec = template.get("spec") or {}
    refs: set[tuple[str, str]] = set()
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for var in container.get("env") or []:
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref["key"]))
        for source in container.get("envFrom") or []:
            if source.get("secretRef"):
                refs.add((source["secretRef"]["name"], WHOLE))
    for volume in spec.get("volumes") or []:
        if volume.get("secret"):
            refs.add((volume["secret"]["secretName"], WHOLE))
    return refs


def referenced_secret_names(children: Iterable[Manifest]) -> set[str]:
    """Every Secret some workload's pods read: what the reconcile reads, and what the operator watches."""
    return {name for child in children for name, _ in _refs(child)}


def secrets_hash(refs: Iterable[tuple[str, str]], secrets: SecretData) -> str:
    """sha256 over the referenced values (absent ones marked as such), 16 hex characters."""
    entries = []
    for name, key in sorted(refs):
        data = secrets.get(name)
        if key == WHOLE:
            entries.append([name, key, dict(sorted(data.items())) if data is not None else None])
        else:
            entries.append([name, key, None if data is None else data.get(key)])
    canonical = json.dumps(entries, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def with_secret_hashes(children: Iterable[Manifest], secrets: SecretData) -> list[Manifest]:
    """The children, each workload reading a Secret carrying SECRET_HASH_ANNOTATION on its pod template
    (copies: the inputs are not changed). Workloads reading no Secret are returned as they were."""
    out = []
    for child in children:
        refs = _refs(child)
        if not refs:
            out.append(child)
            continue
        template = child["spec"]["template"]
        meta = dict(template.get("metadata") or {})
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            SECRET_HASH_ANNOTATION: secrets_hash(refs, secrets),
        }
        out.append({**child, "spec": {**child["spec"], "template": {**template, "metadata": meta}}})
    return out


def _refs(child: Mapping[str, Any]) -> set[tuple[str, str]]:
    if child.get("kind") not in _WORKLOADS:
        return set()
    return template_secret_refs((child.get("spec") or {}).get("template") or {})
