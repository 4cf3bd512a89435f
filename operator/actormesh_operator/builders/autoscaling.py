"""Autoscalers: an autoscaling/v2 HPA on CPU per autoscaled actor and for the gateway, or a KEDA
ScaledObject on an actor's JetStream consumer lag (`mode: queueLag`).

Called by `build_children`, which passes `keda_available` (whether the keda.sh CRDs exist). Queue-lag
mode needs KEDA and a NATS monitoring endpoint the operator knows (the managed NATS: the spec rejects
queueLag with an external NATS). Without KEDA the actor falls back to a CPU HPA so it still scales,
and the status says why (`Stalled`, reason `KedaNotInstalled`). Whichever autoscaler exists owns
`replicas`: the Deployment builders leave the field out.

With direct hops (`spec.actors.directHops`) only the first step's consumer holds a backlog; the later
actors' work waits in their pods (`actormesh_direct_hops_waiting`), where no JetStream lag shows it. Their
ScaledObjects therefore scale on CPU as well (KEDA takes the higher of the two), so `queueLag` on a
later actor still scales under load instead of staying at its minimum.
"""

from __future__ import annotations

from actormesh_operator.api.spec import ActorMesh, ActorWorkload, CPUAutoscaling, EffectiveActorSpec
from actormesh_operator.builders import labels, names
from actormesh_operator.builders.meta import Manifest, manifest, object_meta
from actormesh_operator.builders.runtime_config import service_host
from actormesh_operator.settings import OperatorSettings
from actormesh_runtime.catalog import DEFAULT_ROUTE, Ports, Subjects

KEDA_API_VERSION = "keda.sh/v1alpha1"
NATS_ACCOUNT = "$G"
"""The managed NATS has no accounts configured, so every client is in the global account."""


def uses_scaled_object(mesh: ActorMesh, actor: EffectiveActorSpec, *, keda_available: bool) -> bool:
    a = actor.autoscaling
    return a.enabled and a.mode == "queueLag" and keda_available and mesh.spec.nats.managed


def _hpa(mesh: ActorMesh, name: str, component: str, scaling: CPUAutoscaling) -> Manifest:
    metric = {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {
                "type": "Utilization",
                "averageUtilization": scaling.target_cpu_utilization_percentage,
            },
        },
    }
    return manifest(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        object_meta(mesh, name, component),
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [metric],
        },
    )


def build_actor_hpa(mesh: ActorMesh, workload: ActorWorkload) -> Manifest:
    name = names.actor_workload(mesh.name, workload.component)
    return _hpa(mesh, name, workload.component, workload.process.autoscaling)


def build_gateway_hpa(mesh: ActorMesh) -> Manifest | None:
    scaling = mesh.spec.gateway.autoscaling
    if not scaling.enabled:
        return None
    return _hpa(mesh, names.gateway(mesh.name), labels.GATEWAY, scaling)


def build_actor_scaled_object(
    mesh: ActorMesh, workload: ActorWorkload, settings: OperatorSettings
) -> Manifest:
    """KEDA ScaledObject on the durable consumer of each actor the workload runs (a group: one trigger
    per member; KEDA scales on the highest), plus CPU for a workload direct hops reach without its
    consumer (see the module docstring); KEDA creates and owns the HPA behind it."""
    name = names.actor_workload(mesh.name, workload.component)
    subjects = Subjects(mesh.name)
    # The headless Service: clustered, KEDA queries the consumer's leader at `<server_name>.<endpoint>`
    # (nats.conf has no_advertise), and only the StatefulSet's governing Service resolves `<pod>.<svc>`.
    monitor = f"{service_host(mesh, names.nats_headless(mesh.name), settings)}:{Ports.NATS_MONITOR}"
    scaling = workload.process.autoscaling
    triggers = [
        {
            "type": "nats-jetstream",
            "metadata": {
                "natsServerMonitoringEndpoint": monitor,
                "account": NATS_ACCOUNT,
                "stream": subjects.stream,
                "consumer": subjects.consumer(info.name),
                "lagThreshold": str(scaling.lag_threshold),
            },
        }
        for info in workload.infos
    ]
    if mesh.spec.actors.direct_hops and all(info.name != DEFAULT_ROUTE[0] for info in workload.infos):
        triggers.append(
            {
                "type": "cpu",
                "metricType": "Utilization",
                "metadata": {"value": str(scaling.target_cpu_utilization_percentage)},
            }
        )
    return manifest(
        KEDA_API_VERSION,
        "ScaledObject",
        object_meta(mesh, name, workload.component),
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "triggers": triggers,
        },
    )


def build_autoscalers(mesh: ActorMesh, settings: OperatorSettings, *, keda_available: bool) -> list[Manifest]:
    """Gateway HPA, then one HPA or ScaledObject per autoscaled actor workload (actor or group)."""
    out: list[Manifest] = []
    gateway_hpa = build_gateway_hpa(mesh)
    if gateway_hpa is not None:
        out.append(gateway_hpa)
    for workload in mesh.spec.actors.workloads():
        if not workload.process.autoscaling.enabled:
            continue
        if uses_scaled_object(mesh, workload.process, keda_available=keda_available):
            out.append(build_actor_scaled_object(mesh, workload, settings))
        else:
            out.append(build_actor_hpa(mesh, workload))
    return out
