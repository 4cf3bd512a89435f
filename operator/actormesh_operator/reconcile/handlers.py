"""The kopf layer: which events start a reconcile, and kopf's own settings. Nothing else.

`build_registry(settings, creds)` returns a fresh `kopf.OperatorRegistry` (no module-level handlers,
so tests can run several operators, one per namespace, in one process). Triggers of the one reconcile
in `runner.py`:

- kopf `create`/`update`/`resume` on an ActorMesh: kopf's retry counter drives our bounded backoff;
- a watch event on any child kind (server-side label selector `app.kubernetes.io/managed-by`, plus
  the same label filter on the handler, which kopf evaluates client-side): the child's controller
  owner is woken up (`state.OperatorState.wake`), so a deleted or edited child is restored;
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

from actormesh_operator.api.schema import API_VERSION, GROUP, KIND, PLURAL, VERSION
from actormesh_operator.api.spec import is_paused
from actormesh_operator.builders.kinds import (
    HTTP_ROUTE,
    MANAGED_KINDS,
    MONITORING_KINDS,
    SCALED_OBJECT,
    ManagedKind,
)
from actormesh_operator.builders.labels import MANAGED_BY_SELECTOR
from actormesh_operator.reconcile import metrics
from actormesh_operator.reconcile.kube import KubeCredentials
from actormesh_operator.reconcile.state import OperatorState
from actormesh_operator.settings import OperatorSettings

ANNOTATION_PREFIX = "actormesh.io"
"""kopf's progress/diff-base annotations: `actormesh.io/last-handled-configuration` and friends."""


def controller_owner(body: Mapping[str, Any]) -> str | None:
    """Name of the ActorMesh controlling a child, from its ownerReferences (labels can be copied)."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion") == API_VERSION and ref.get("controller"):
            return str(ref.get("name"))
    return None


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
    selector = ",".join(f"{k}={v}" for k, v in MANAGED_BY_SELECTOR.items())
    for kind in MANAGED_KINDS:
        settings.watching.label_selectors[kind.group, kind.version, kind.plural] = selector


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
    a warning. (An HTTPRoute is watched so a Gateway accepting it updates the status at once.)"""
    registry = kopf.OperatorRegistry()
    state = OperatorState(settings, creds)
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
        phase = None if type == "DELETED" else (body.get("status") or {}).get("phase") or "Unknown"
        metrics.set_phase(namespace or "", name, phase)
        if type not in (None, "DELETED") and pause_changed(body):
            state.wake(namespace or "", name, "pause")

    served = {SCALED_OBJECT: keda_available, HTTP_ROUTE: gateway_api_available}
    _watch_children(registry, state, optional_served=served)
    return registry


def _watch_children(
    registry: kopf.OperatorRegistry, state: OperatorState, *, optional_served: dict[ManagedKind, bool]
) -> None:
    """A watch-event handler per child kind: wake the child's controlling mesh up (drift correction).

    The `labels=` filter below is evaluated by kopf client-side; the server-side selector that keeps
    unrelated objects off the wire is `settings.watching.label_selectors` (see `configure_kopf`)."""

    async def child_changed(type: str | None, body: Any, namespace: str | None, **_: Any) -> None:
        if type is None:
            return  # the initial listing at startup: the resume handlers cover every mesh already
        owner = controller_owner(body)
        if owner is not None and namespace:
            state.wake(namespace, owner, "child")

    for kind in MANAGED_KINDS:
        # Monitoring objects are not watched: nothing in the mesh depends on them, so drift there is
        # corrected by the periodic resync, and their CRDs may appear after startup (kopf scans once).
        if kind in MONITORING_KINDS or (kind.optional and not optional_served.get(kind, False)):
            continue
        kopf.on.event(
            group=kind.group,
            version=kind.version,
            plural=kind.plural,
            labels=dict(MANAGED_BY_SELECTOR),
            id=f"child-{kind.plural}",
            registry=registry,
        )(child_changed)
