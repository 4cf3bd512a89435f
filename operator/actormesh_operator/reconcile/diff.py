"""Pure decisions of the apply step: does a child need a server-side apply, and which children to prune.

Called by `apply.py` (and unit-tested without a cluster). A child is re-applied only when

- it does not exist, or our field manager has no `Apply` entry in its managedFields;
- the desired manifest changed since we last applied it (the `actormesh.io/applied-hash` annotation we
  write with every apply holds a hash of exactly what we sent); or
- someone changed a field we set (the desired manifest is no longer a subset of the live object,
  comparing quantities by value: `1000m` equals `1`).

So an operator restart, a resync, or a child's status update cause no request at all, and resource
versions stay put. The hash catches fields we stopped setting (a subset check cannot see those); the
subset check catches edits by others (`kubectl edit`, a careless Helm release).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Protocol

from actormesh_operator.api.observed import ObservedWorkload
from actormesh_operator.api.types import quantity_value

HASH_ANNOTATION = "actormesh.io/applied-hash"

ChildKey = tuple[str, str, str, str]
"""(API group, kind, namespace, name): identifies a child across apiVersion changes."""


def child_key(obj: Mapping[str, Any]) -> ChildKey:
    meta = obj.get("metadata") or {}
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return group, str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", ""))


class ApplyVersions(Protocol):
    """Where a child's apply version comes from (`children.ChildCache`)."""

    def apply_version(self, key: ChildKey, obj: Mapping[str, Any]) -> str: ...


def resource_version_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def version_of(key: ChildKey, obj: Mapping[str, Any] | None, versions: ApplyVersions | None) -> str:
    """The version a child found in sync is remembered at (`apply.apply_children`, `insync.InSync`): its
    apply version when `versions` knows it, else its resourceVersion; "" for a missing child."""
    if obj is None:
        return ""
    if versions is not None:
        return versions.apply_version(key, obj)
    return resource_version_of(obj)


def describe(obj: Mapping[str, Any]) -> str:
    """Human name of a child for messages: `statefulset demo-nats`."""
    return f"{str(obj.get('kind', '')).lower()} {(obj.get('metadata') or {}).get('name', '')}"


def _without_hash(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow view of `manifest` without our hash annotation (nothing is copied deeper than that)."""
    metadata = manifest.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(annotations, Mapping) or (annotations and HASH_ANNOTATION not in annotations):
        return dict(manifest)
    rest = {k: v for k, v in annotations.items() if k != HASH_ANNOTATION}
    meta = {k: v for k, v in metadata.items() if k != "annotations"}  # type: ignore[union-attr]
    if rest:
        meta["annotations"] = rest
    return {**manifest, "metadata": meta}


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """Stable hash of a manifest as we would send it, ignoring our own hash annotation."""
    text = json.dumps(_without_hash(manifest), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def with_hash(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest carrying its own hash, as it is sent to the API server. A new top-level dict with
    new `metadata` and `annotations`; everything deeper is shared with `manifest` (never mutated)."""
    digest = manifest_hash(manifest)
    meta = dict(manifest.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), HASH_ANNOTATION: digest}
    return {**manifest, "metadata": meta}


def owns_apply_entry(live: Mapping[str, Any], field_manager: str) -> bool:
    entries = (live.get("metadata") or {}).get("managedFields") or []
    return any(e.get("manager") == field_manager and e.get("operation") == "Apply" for e in entries)


def apply_reason(
    desired: Mapping[str, Any], live: Mapping[str, Any] | None, field_manager: str
) -> str | None:
    """Why `desired` (as returned by `with_hash`) must be applied over `live`; None when up to date."""
    if live is None:
        return "missing"
    if not owns_apply_entry(live, field_manager):
        return "not applied by us"
    want = ((desired.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    have = ((live.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    if want != have:
        return "desired state changed"
    path = first_difference(desired, live)
    if path is not None:
        return f"drifted at {path}"
    return None


OMITTED_WHEN_FALSE = frozenset({".spec.paused"})
"""Fields the API server never stores as false (plain booleans with `omitempty`: a Deployment's
`spec.paused`): false in the desired child and absent in the live one are the same."""


def first_difference(desired: Any, live: Any, path: str = "") -> str | None:
    """The first path where `desired` is not contained in `live`, or None if it is.

    Dicts: every desired key must be in live (empty desired values may be absent: the API server drops
    empty lists and maps). Lists: element by element, extras in live allowed (added by other managers).
    Scalars: equal, or equal as Kubernetes quantities.
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return path or "."
        for key, value in desired.items():
            sub = f"{path}.{key}"
            if key not in live:
                if _is_empty(value) or (value is False and sub in OMITTED_WHEN_FALSE):
                    continue
                return sub
            found = first_difference(value, live[key], sub)
            if found is not None:
                return found
        return None
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) < len(desired):
            return path or "."
        for index, (want, have) in enumerate(zip(desired, live, strict=False)):
            found = first_difference(want, have, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return None if scalars_equal(desired, live) else (path or ".")


def claim_never_shrinks(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """`desired`, with a PersistentVolumeClaim's storage request raised to the live claim's when that is
    larger: the spec's size is a floor. Kubernetes refuses to shrink a claim (every apply of the smaller
    size would be rejected and the mesh stall, its other changes with it), and a claim grown by hand
    (`kubectl patch pvc`, the usual way to expand a volume) must stay grown. Asking for more is applied:
    a volume expansion, where the storage class allows one."""
    if desired.get("kind") != "PersistentVolumeClaim" or live is None:
        return desired
    want = ((desired.get("spec") or {}).get("resources") or {}).get("requests") or {}
    have = ((live.get("spec") or {}).get("resources") or {}).get("requests") or {}
    wanted, held = parse_quantity(want.get("storage")), parse_quantity(have.get("storage"))
    if wanted is None or held is None or held <= wanted:
        return desired
    spec = dict(desired["spec"])
    spec["resources"] = {**spec["resources"], "requests": {**want, "storage": have["storage"]}}
    return {**desired, "spec": spec}


def _is_empty(value: Any) -> bool:
    return value is None or value == {} or value == [] or value == ""


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity's value (`500m` → 0.5, `1Gi` → 1073741824), None if it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    return quantity_value(str(value))


def scalars_equal(desired: Any, live: Any) -> bool:
    if desired == live and type(desired) is type(live):
        return True
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired == live and isinstance(desired, bool) and isinstance(live, bool)
    if desired == live:  # 1 == 1.0
        return True
    a, b = parse_quantity(desired), parse_quantity(live)
    return a is not None and a == b


def replicas_handover(
    desired: Mapping[str, Any], live: Mapping[str, Any] | None, field_manager: str
) -> dict[str, Any] | None:
    """The apply that hands `spec.replicas` over before we stop setting it, or None if not needed.

    When autoscaling is switched on, the builder leaves `replicas` out. Were we its only owner, our next
    apply would remove the field and the API server would default it to 1: every pod but one gone
    until the HPA scales back up. So first a second field manager (`<manager>-handover`) applies the
    current value, making it a co-owner; our apply then drops only our claim, the value stays, and the
    autoscaler's next scale update takes the field over (Kubernetes' "transferring ownership").
    """
    if live is None or "replicas" in (desired.get("spec") or {}):
        return None
    replicas = (live.get("spec") or {}).get("replicas")
    if replicas is None or not _owns_replicas(live, field_manager):
        return None
    meta = desired.get("metadata") or {}
    return {
        "apiVersion": desired["apiVersion"],
        "kind": desired["kind"],
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
        "spec": {"replicas": replicas},
    }


def _owns_replicas(live: Mapping[str, Any], field_manager: str) -> bool:
    return any(
        entry.get("manager") == field_manager
        and not entry.get("subresource")
        and "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
        for entry in (live.get("metadata") or {}).get("managedFields") or []
    )


def controlled_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == owner_uid and r.get("controller") for r in refs)


def select_prunable(
    live: Iterable[Mapping[str, Any]], desired: Iterable[Mapping[str, Any]], owner_uid: str
) -> list[Mapping[str, Any]]:
    """Live children no longer desired. Only objects this very mesh controls (by owner UID) qualify:
    a label copied by hand, or a leftover of a deleted mesh of the same name, is never touched."""
    wanted = {child_key(d) for d in desired}
    return [
        obj
        for obj in live
        if child_key(obj) not in wanted
        and controlled_by(obj, owner_uid)
        and not (obj.get("metadata") or {}).get("deletionTimestamp")
    ]


def pending_changes(
    desired: Iterable[Mapping[str, Any]],
    live: Mapping[ChildKey, Mapping[str, Any]],
    field_manager: str,
    owner_uid: str,
) -> list[str]:
    """What a reconcile would do now, in words (`deployment demo-gateway (drifted at .spec.replicas)`,
    `delete service demo-mocks`), without doing it: the Paused condition lists it."""
    wanted = list(desired)
    changes = []
    for manifest in wanted:
        body = with_hash(claim_never_shrinks(manifest, live.get(child_key(manifest))))
        reason = apply_reason(body, live.get(child_key(body)), field_manager)
        if reason is not None:
            changes.append(f"{describe(body)} ({reason})")
    changes += [f"delete {describe(obj)}" for obj in select_prunable(list(live.values()), wanted, owner_uid)]
    return changes


# --- watch events of children: what a change means (pure; `children.ChildCache` acts on it)

NO_CHANGE = "none"
STATUS_CHANGE = "status"
CONTENT_CHANGE = "content"

_STATUS_KINDS = ("Service", "Ingress")
"""Besides workloads, the kinds whose status the mesh status reads (the gateway's address)."""


CONTROLLER_ANNOTATION_PREFIXES = ("deployment.kubernetes.io/",)
"""Annotations Kubernetes' own controllers write on our children (the Deployment controller's
`revision`, once per rollout): no builder sets such a key, so no apply decision reads one."""


def _content(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    meta = obj.get("metadata") or {}
    body = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith(CONTROLLER_ANNOTATION_PREFIXES)
    }
    # An empty map and none are the same object: the API server drops empty maps.
    return (
        body,
        meta.get("labels"),
        annotations or None,
        meta.get("ownerReferences"),
        meta.get("deletionTimestamp"),
    )


def _status_view(obj: Mapping[str, Any]) -> Any:
    kind = obj.get("kind")
    if kind in ("Deployment", "StatefulSet"):
        return ObservedWorkload.from_object(obj)
    if kind in _STATUS_KINDS:
        return (obj.get("status") or {}).get("loadBalancer")
    if kind == "HTTPRoute":  # HTTPRouteReady reads which Gateways accepted it
        return (obj.get("status") or {}).get("parents")
    return None


def change_kind(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str:
    """What a watch event of a child means for its mesh:

    - `content`: added, deleted, or anything but its status changed (someone's edit, a label, an
      autoscaler's replicas): a full reconcile decides whether to repair it;
    - `status`: only what the mesh status reads changed (rollout counters, the gateway's address): the
      status is recomputed, nothing is applied;
    - `none`: nothing the operator reads changed (a condition's timestamp, another manager's
      managedFields): no work at all — the common case, a controller manager's status update."""
    if old is None or new is None:
        return CONTENT_CHANGE
    if _content(old) != _content(new):
        return CONTENT_CHANGE
    if _status_view(old) != _status_view(new):
        return STATUS_CHANGE
    return NO_CHANGE


def same_apply_view(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when every apply decision (`apply_reason`, `replicas_handover`, `select_prunable`) gives the
    same answer for `new` as for `old`: they read only its content and our own managedFields entries
    (all a compacted child keeps of them), so a status update or a controller's revision annotation
    leaves a child verified as it was (`children.ChildCache.apply_version`)."""
    old_fields = (old.get("metadata") or {}).get("managedFields")
    new_fields = (new.get("metadata") or {}).get("managedFields")
    return old_fields == new_fields and _content(old) == _content(new)


def compact_child(obj: Mapping[str, Any], managers: Iterable[str]) -> dict[str, Any]:
    """The child as the cache keeps it: managedFields only of our own field managers, and of those only
    what the apply decisions read (`owns_apply_entry`, `_owns_replicas`): the field set of an entry
    mirrors everything we apply, and with the other managers' entries it was most of an object's size."""
    meta = dict(obj.get("metadata") or {})
    wanted = set(managers)
    if "managedFields" in meta:
        meta["managedFields"] = [
            _compact_entry(e) for e in meta["managedFields"] or [] if e.get("manager") in wanted
        ]
    return {**obj, "metadata": meta}


def _compact_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    kept = {k: entry[k] for k in ("manager", "operation", "subresource") if k in entry}
    if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}):
        kept["fieldsV1"] = {"f:spec": {"f:replicas": {}}}
    return kept
