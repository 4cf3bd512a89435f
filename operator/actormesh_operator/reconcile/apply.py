"""Apply the desired children with server-side apply, and prune the ones no longer desired.

Called by `runner.py` once per reconcile, after `observe.py` listed the live children. Decisions are
pure and live in `diff.py`; this module only performs them, in the builders' order, naming each action
so a failure reads "apply statefulset demo-nats: 422 Invalid: ...". The `live` mapping is updated in
place with every response, so the status computed afterwards sees what was just written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from actormesh_operator.builders.kinds import MANAGED_KINDS, ManagedKind
from actormesh_operator.reconcile import metrics
from actormesh_operator.reconcile.diff import (
    HASH_ANNOTATION,
    ApplyVersions,
    ChildKey,
    apply_reason,
    child_key,
    claim_never_shrinks,
    describe,
    replicas_handover,
    select_prunable,
    version_of,
    with_hash,
)
from actormesh_operator.reconcile.errors import action
from actormesh_operator.reconcile.kube import KubeClient, Resource

logger = logging.getLogger(__name__)

_KINDS: dict[tuple[str, str], ManagedKind] = {(k.group, k.kind): k for k in MANAGED_KINDS}


def resource_of(kind: ManagedKind) -> Resource:
    return Resource(kind.api_version, kind.kind, kind.plural, kind.namespaced)


def resource_for(manifest: Mapping[str, Any]) -> Resource:
    """Where a builder's manifest lives; only MANAGED_KINDS may be emitted (they are what we prune)."""
    group = str(manifest.get("apiVersion", "")).rpartition("/")[0]
    kind = _KINDS.get((group, str(manifest.get("kind", ""))))
    if kind is None:
        raise ValueError(
            f"builder emitted {manifest.get('kind')} ({manifest.get('apiVersion')}), not in MANAGED_KINDS"
        )
    return resource_of(kind)


class WriteCache(ApplyVersions, Protocol):
    """Where the responses of our writes go (`children.ChildCache`)."""

    def put(self, obj: dict[str, Any]) -> None: ...

    def drop(self, obj: dict[str, Any]) -> None: ...


def field_managers(field_manager: str) -> tuple[str, str]:
    """Every field manager our writes use: the reconcile's, and the one that hands `spec.replicas` over
    to an autoscaler (the child cache keeps their managedFields entries; the apply decisions read them)."""
    return field_manager, f"{field_manager}-handover"


@dataclass
class ApplyOutcome:
    """What one reconcile wrote: `applied` and `pruned` hold human names with the reason."""

    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.pruned)


async def apply_children(
    kube: KubeClient,
    desired: Iterable[Mapping[str, Any]],
    live: MutableMapping[ChildKey, dict[str, Any]],
    *,
    field_manager: str,
    outcome: ApplyOutcome,
    cache: WriteCache | None = None,
    verified: dict[ChildKey, tuple[str, str]] | None = None,
    hashes: dict[ChildKey, str] | None = None,
) -> None:
    """Server-side apply each desired child that is missing, changed or drifted; skip the rest.
    Every response goes into `cache` too, so the watch event of our own write is no news.

    `verified` remembers, per child, the (version, desired hash) last found in sync: the same pair again
    needs no field-by-field comparison. The version is the child's resourceVersion, or with a `cache` the
    one at which anything the comparison reads last changed (a status update changes only the former).
    `hashes` receives every desired child's hash (`insync.py`)."""
    for manifest in desired:
        body = with_hash(claim_never_shrinks(manifest, live.get(child_key(manifest))))
        key = child_key(body)
        if hashes is not None:
            hashes[key] = body["metadata"]["annotations"][HASH_ANNOTATION]
        current = live.get(key)
        stamp = (version_of(key, current, cache), body["metadata"]["annotations"][HASH_ANNOTATION])
        if verified is not None and current is not None and verified.get(key) == stamp:
            continue
        reason = apply_reason(body, current, field_manager)
        if reason is None:
            if verified is not None and stamp[0]:
                verified[key] = stamp
            continue
        name = describe(body)
        handover = replicas_handover(body, live.get(key), field_manager)
        if handover is not None:
            with action(f"hand over replicas of {name}"):
                await kube.apply(resource_for(body), handover, field_manager=field_managers(field_manager)[1])
            logger.info("handed spec.replicas of %s over to its autoscaler", name)
        with action(f"apply {name}"):
            live[key] = await kube.apply(resource_for(body), body, field_manager=field_manager)
        if cache is not None:
            cache.put(live[key])
        if verified is not None and apply_reason(body, live[key], field_manager) is None:
            # The response is the child as it now is: verified here, the pass that the watch events
            # of this very write cause finds the mesh in sync and builds nothing.
            verified[key] = (version_of(key, live[key], cache), stamp[1])
        metrics.CHILD_WRITES.labels(kind=body["kind"], action="apply").inc()
        logger.info("applied %s: %s", name, reason)
        outcome.applied.append(f"{name} ({reason})")


async def prune_children(
    kube: KubeClient,
    desired: Iterable[Mapping[str, Any]],
    live: MutableMapping[ChildKey, dict[str, Any]],
    *,
    owner_uid: str,
    outcome: ApplyOutcome,
    cache: WriteCache | None = None,
) -> None:
    """Delete children this mesh controls that the builders no longer emit (disabled components)."""
    for obj in select_prunable(list(live.values()), list(desired), owner_uid):
        name = describe(obj)
        meta = obj.get("metadata") or {}
        with action(f"delete {name}"):
            await kube.delete(resource_for(obj), meta["name"], meta.get("namespace"))
        live.pop(child_key(obj), None)
        if cache is not None:
            cache.drop(dict(obj))
        metrics.CHILD_WRITES.labels(kind=obj.get("kind", ""), action="delete").inc()
        logger.info("pruned %s: no longer desired", name)
        outcome.pruned.append(name)
