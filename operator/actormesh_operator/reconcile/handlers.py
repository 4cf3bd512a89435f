"""The kopf layer: which events start a reconcile, and kopf's own settings. Nothing else.

`build_registry(settings, creds)` returns a fresh `kopf.OperatorRegistry` (no module-level handlers,
so tests can run several operators, one per namespace, in one process). Triggers of the one reconcile
in `runner.py`:

- kopf `create`/`update`/`resume` on an ActorMesh: kopf's retry counter drives our bounded backoff;
- a child added, deleted or edited (our own informers, `children.py`, not kopf: kopf would run its
  per-object machinery for every status update of every child): its controlling mesh gets a full pass,
  so the child is restored; a child whose rollout counters moved gets only a status refresh;
- every event of a mesh feeds the mesh cache (`meshes.py`), so a pass starts without reading it;
- a jittered periodic resync (our own loop, not `kopf.timer`: kopf timers put a finalizer on every
  mesh, which would make deleting a mesh hang whenever the operator is down).

Handlers return nothing: kopf would store return values under `.status`, which our strict status
schema prunes. Status is written by `runner.py` with a status-subresource patch. kopf keeps its
progress and diff-base in annotations under the fixed prefix `actormesh.io` (never change it: a
renamed prefix makes kopf see every mesh as new).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from typing import Any

import kopf

from actormesh_operator.api.schema import GROUP, PLURAL, VERSION
from actormesh_operator.api.spec import is_paused
from actormesh_operator.reconcile import metrics
from actormesh_operator.reconcile.kube import KubeCredentials
from actormesh_operator.reconcile.state import OperatorState
from actormesh_operator.settings import OperatorSettings

ANNOTATION_PREFIX = "actormesh.io"
"""kopf's progress/diff-base annotations: `actormesh.io/last-handled-configuration` and friends."""


def pause_changed(body: Mapping[str, Any]) -> bool:
    """The paused annotation disagrees with the Paused condition: a reconcile must act on it.

    kopf's update handler never sees this annotation: kopf ignores every annotation under its own
    storage prefix (`actormesh.io/`) when it diffs a resource, so the pause is noticed here."""
    meta = body.get("metadata") or {}
    paused = is_paused(meta.get("annotations") or {})
    reported = next(
        (
            c.get("status")
            for c in (body.get("status") or {}).get("conditions") or []
            if c.get("type") == "Paused"
        ),
        None,
    )
    return paused != (reported == "True")


def configure_kopf(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """Copy what kopf needs from our settings and choices into kopf's settings (once, at startup)."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
    # One replica with a Recreate strategy: no peering objects, no peering RBAC.
    settings.peering.standalone = True
    # No CRD/namespace watching (that would need cluster-wide RBAC): resources are discovered once at
    # startup, and main.py refuses to start without the ActorMesh CRD.
    settings.scanning.disabled = True
    # kopf's own log lines never become Events: runner.py posts exactly one per change ("Applied")
    # and one per new stall (its reason), which kopf's "handler failed" lines would only duplicate.
    settings.posting.level = logging.CRITICAL
    settings.posting.reporting_component = ours.field_manager
    settings.posting.reporting_instance = socket.gethostname()  # the pod name in a cluster
    settings.posting.event_name_prefix = "actormesh-"
    # Bounded watches: a silently dead connection is re-established within minutes.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 10


def connection_info(creds: KubeCredentials) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_path=creds.ca_path,
        ca_data=creds.ca_data,
        insecure=creds.insecure,
        certificate_path=creds.cert_path,
        certificate_data=creds.cert_data,
        private_key_path=creds.key_path,
        private_key_data=creds.key_data,
        token=creds.current_token(),
        default_namespace=creds.namespace,
        priority=100,
    )


def build_registry(
    settings: OperatorSettings,
    creds: KubeCredentials,
    *,
    keda_available: bool = False,
    gateway_api_available: bool = False,
) -> kopf.OperatorRegistry:
    """Every handler of one operator instance, bound to its own state.

    Optional child kinds (KEDA's ScaledObject, the Gateway API's HTTPRoute) are watched only if served
    at startup: kopf discovers resources once (scanning is off), so watching an absent CRD would only log
    a warning. (An HTTPRoute is watched so a Gateway accepting it updates the status at once.) They are
    watched by our informers (`children.py`), not by kopf."""
    registry = kopf.OperatorRegistry()
    state = OperatorState(
        settings, creds, keda_available=keda_available, gateway_api_available=gateway_api_available
    )
    retries = settings.retry_limit

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings, state.settings)
        await state.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await state.stop()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(creds)

    # One handler id for the three causes: kopf's progress annotation is `actormesh.io/reconcile`.
    @kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile", registry=registry, retries=retries)
    @kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile", registry=registry, retries=retries)
    @kopf.on.update(GROUP, VERSION, PLURAL, id="reconcile", registry=registry, retries=retries)
    async def reconcile_mesh(name: str, namespace: str | None, retry: int, reason: Any, **_: Any) -> None:
        trigger = str(getattr(reason, "value", reason))  # kopf.Reason: create / update / resume
        await state.reconcile_now(namespace or "", name, trigger=trigger, retry=retry)

    @kopf.on.event(GROUP, VERSION, PLURAL, id="phase-metric", registry=registry)
    async def track_phase(type: str | None, body: Any, name: str, namespace: str | None, **_: Any) -> None:
        state.meshes.seen(body, deleted=type == "DELETED")
        phase = None if type == "DELETED" else (body.get("status") or {}).get("phase") or "Unknown"
        metrics.set_phase(namespace or "", name, phase)
        if type not in (None, "DELETED") and pause_changed(body):
            state.wake(namespace or "", name, "pause")

    return registry
