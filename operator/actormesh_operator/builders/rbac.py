"""The ServiceAccount every pod of a mesh runs as. Called by `build_children`.

The runtime never talks to the Kubernetes API, so the account has no Role and no token is mounted:
a compromised pod gets no credentials.
"""

from __future__ import annotations

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels, names
from actormesh_operator.builders.meta import Manifest, manifest, object_meta


def build_service_account(mesh: ActorMesh) -> Manifest:
    return manifest(
        "v1",
        "ServiceAccount",
        object_meta(mesh, names.service_account(mesh.name), labels.RUNTIME),
        automountServiceAccountToken=False,
    )
