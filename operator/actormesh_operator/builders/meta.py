"""Object metadata shared by every child: name, namespace, labels, annotations, owner reference.

Called by every builder. The owner reference (controller=true, blockOwnerDeletion=true) lets the
garbage collector delete the children with the mesh and lets the reconcile layer map a child event
back to its mesh.
"""

from __future__ import annotations

from typing import Any

from actormesh_operator.api.schema import API_VERSION, KIND
from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels as lbl

CONFIG_HASH_ANNOTATION = "actormesh.io/config-hash"
"""Pod-template annotation: changes exactly when the configuration a workload reads changes."""

Manifest = dict[str, Any]


def owner_reference(mesh: ActorMesh) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": mesh.name,
        "uid": mesh.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    mesh: ActorMesh,
    name: str,
    component: str,
    *,
    image: str | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """metadata of a child object (extra annotations from the spec, then the builder's own; `labels`
    are added to ours)."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": mesh.namespace,
        "labels": {**lbl.labels(mesh, component, image=image), **(labels or {})},
        "ownerReferences": [owner_reference(mesh)],
    }
    merged = {**mesh.spec.extra_annotations, **(annotations or {})}
    if merged:
        meta["annotations"] = merged
    return meta


def template_meta(
    mesh: ActorMesh,
    component: str,
    *,
    image: str | None = None,
    config_hash: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """metadata of a pod template: labels (incl. the selector, plus `labels`), spec annotations and the
    config hash."""
    meta: dict[str, Any] = {"labels": {**lbl.labels(mesh, component, image=image), **(labels or {})}}
    annotations = dict(mesh.spec.extra_annotations)
    if config_hash is not None:
        annotations[CONFIG_HASH_ANNOTATION] = config_hash
    if annotations:
        meta["annotations"] = annotations
    return meta


def manifest(api_version: str, kind: str, metadata: dict[str, Any], **body: Any) -> Manifest:
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}
