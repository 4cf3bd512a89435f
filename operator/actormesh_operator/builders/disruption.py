"""PodDisruptionBudgets: at most one pod down at a time during voluntary disruptions (node drains).

Called by `build_children` when `spec.podDisruptionBudget.enabled`. Only workloads that can lose a
pod and keep serving get one — clustered NATS (quorum 2 of 3), and the gateway or an actor (or a group
of actors) with more than one replica or an autoscaler. A budget on a single-replica workload would
either block every drain (minAvailable 1) or protect nothing, so those get none.
"""

from __future__ import annotations

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels, names
from actormesh_operator.builders.meta import Manifest, manifest, object_meta


def _pdb(mesh: ActorMesh, name: str, component: str) -> Manifest:
    return manifest(
        "policy/v1",
        "PodDisruptionBudget",
        object_meta(mesh, name, component),
        spec={
            "maxUnavailable": 1,
            "selector": {"matchLabels": labels.selector_labels(mesh.name, component)},
            # Unready pods may always be evicted, so a broken rollout never blocks a node drain.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    )


def build_pdbs(mesh: ActorMesh) -> list[Manifest]:
    spec = mesh.spec
    if not spec.pod_disruption_budget.enabled:
        return []
    out: list[Manifest] = []
    if spec.nats.managed and spec.nats.replicas > 1:
        out.append(_pdb(mesh, names.nats(mesh.name), labels.NATS))
    if spec.gateway.replicas > 1 or spec.gateway.autoscaling.enabled:
        out.append(_pdb(mesh, names.gateway(mesh.name), labels.GATEWAY))
    for workload in spec.actors.workloads():
        process = workload.process
        if process.replicas > 1 or process.autoscaling.enabled:
            name = names.actor_workload(mesh.name, workload.component)
            out.append(_pdb(mesh, name, workload.component))
    return out
