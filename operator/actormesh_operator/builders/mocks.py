"""The demo commerce APIs: a Deployment running `actormesh mocks` (customers, orders, tracking on
8001-8003) and one Service exposing the three ports.

Called by `build_children` only when `spec.mockServices.enabled`. One replica: the mock state lives
in memory, so two replicas would disagree about an order cancelled on the other.
"""

from __future__ import annotations

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels, names
from actormesh_operator.builders.meta import Manifest, manifest, object_meta
from actormesh_operator.builders.runtime_config import MOCKS_KEYS, hash_for
from actormesh_operator.builders.workload import deployment, http_probe, runtime_container, runtime_pod
from actormesh_operator.settings import OperatorSettings
from actormesh_runtime.catalog import Ports

MOCK_PORTS: dict[str, int] = {
    "customers": Ports.CUSTOMER_API,
    "orders": Ports.ORDERS_API,
    "tracking": Ports.TRACKING_API,
}


def build_mocks_deployment(mesh: ActorMesh, settings: OperatorSettings) -> Manifest:
    container = runtime_container(
        mesh,
        "mocks",
        ["mocks"],
        ports=[{"name": name, "containerPort": port} for name, port in MOCK_PORTS.items()],
        resources={"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "192Mi"}},
        # The three apps share one process: the customers app answering means all are up.
        startupProbe=http_probe("/healthz", "customers", period=2, failures=30),
        readinessProbe=http_probe("/healthz", "customers", period=5),
        livenessProbe=http_probe("/healthz", "customers", period=15),
    )
    return deployment(
        mesh,
        names.mocks(mesh.name),
        labels.MOCKS,
        runtime_pod(mesh, container),
        replicas=1,
        config_hash=hash_for(mesh, settings, MOCKS_KEYS),
    )


def build_mocks_service(mesh: ActorMesh) -> Manifest:
    return manifest(
        "v1",
        "Service",
        object_meta(mesh, names.mocks(mesh.name), labels.MOCKS),
        spec={
            "type": "ClusterIP",
            "selector": labels.selector_labels(mesh.name, labels.MOCKS),
            "ports": [
                {"name": name, "port": port, "targetPort": name, "appProtocol": "http"}
                for name, port in MOCK_PORTS.items()
            ],
        },
    )
