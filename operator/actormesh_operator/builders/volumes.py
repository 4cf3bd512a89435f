"""PersistentVolumeClaim templates and their retention, shared by the NATS, Redis and history StatefulSets.

PVCs created from volumeClaimTemplates are owned by the StatefulSet controller, not by the mesh, so they
cannot carry the mesh's ownerReference. What happens to them when the mesh is deleted is the
StatefulSet's `persistentVolumeClaimRetentionPolicy.whenDeleted`, taken from
`spec.persistence.reclaimPolicy`: `Delete` makes the StatefulSet controller add the StatefulSet as the
PVCs' owner, so the garbage collector removes them after the StatefulSet (itself collected with the
mesh); `Retain` (default) leaves them for a re-created mesh of the same name to reuse.
"""

from __future__ import annotations

from typing import Any

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels


def volume_claim_template(
    mesh: ActorMesh, claim: str, component: str, size: str, storage_class: str | None
) -> dict[str, Any]:
    """A StatefulSet volumeClaimTemplate. Its metadata carries only the immutable selector labels:
    volumeClaimTemplates cannot change after creation, so nothing mutable (extra labels, version) goes in.
    """
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": claim, "labels": labels.selector_labels(mesh.name, component)}, "spec": spec}


def retention_policy(mesh: ActorMesh) -> dict[str, str]:
    """whenDeleted from the spec; whenScaled Retain, so scaling NATS 3 → 1 → 3 keeps the stores."""
    return {"whenDeleted": mesh.spec.persistence.reclaim_policy, "whenScaled": "Retain"}
