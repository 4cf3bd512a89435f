"""Every (API group, resource, verb) the operator uses, and why: the source of config/rbac.

The ClusterRole in config/rbac/role.yaml and the Role in config/namespaced/role.yaml must grant exactly
these (tests/unit/test_reconcile_rbac.py fails on anything missing or extra), and the integration tests
run the operator with the namespaced Role's credentials, so a call made without a permission listed
here fails there. Change this list in the same commit as the call that needs it.

Not listed because no RBAC rule is involved: API discovery (`/api`, `/apis/...`, readable by every
authenticated client) used for the CRD check and KEDA detection.
"""

from __future__ import annotations

from dataclasses import dataclass

from actormesh_operator.api.schema import GROUP, PLURAL
from actormesh_operator.builders.kinds import MANAGED_KINDS


@dataclass(frozen=True)
class Permission:
    group: str
    resource: str
    verbs: tuple[str, ...]
    why: str


CHILD_VERBS = ("list", "watch", "create", "patch", "delete")
"""list: observe.list_children; watch: handlers' child watch; create+patch: server-side apply (an
apply that creates the object needs `create` too); delete: apply.prune_children."""

PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        GROUP,
        PLURAL,
        ("get", "list", "watch"),
        "get: runner reads the mesh when the cache has none (or after a status conflict); list+watch: "
        "kopf and the resync. No patch: nothing but the status is written (kopf has no change "
        "handlers here, so it stores no annotations and adds no finalizer)",
    ),
    Permission(GROUP, f"{PLURAL}/status", ("patch",), "runner writes status with a merge patch"),
    Permission(
        GROUP,
        f"{PLURAL}/finalizers",
        ("update",),
        "children's ownerReferences set blockOwnerDeletion (OwnerReferencesPermissionEnforcement)",
    ),
    *(Permission(kind.group, kind.plural, CHILD_VERBS, f"children: {kind.kind}") for kind in MANAGED_KINDS),
    Permission(
        "",
        "secrets",
        ("get", "watch", "create", "patch"),
        "get: observe.read_secrets checks referenced Secrets and hashes their values; watch: "
        "secret_watch opens one watch per referenced Secret (fieldSelector metadata.name), never all; "
        "create+patch: reconcile/generated.py creates the generated Secrets once and adds missing keys "
        "(never overwrites a value)",
    ),
    Permission(
        "", "events", ("create",), "reconcile/events.py posts Applied, Paused, Resumed and stall Events"
    ),
)


def granted(permissions: tuple[Permission, ...] = PERMISSIONS) -> set[tuple[str, str, str]]:
    """Flattened (group, resource, verb) triples."""
    return {(p.group, p.resource, verb) for p in permissions for verb in p.verbs}
