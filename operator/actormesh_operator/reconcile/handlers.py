"""The kopf layer: which events start a reconcile, and kopf's own settings. Nothing else.

`build_registry(settings, creds)` returns a fresh `kopf.OperatorRegistry` (no module-level handlers,
so tests can run several operators, one per namespace, in one process). Triggers of the one reconcile
in `runner.py`:

- every ActorMesh event kopf's watch delivers (`kopf.on.event`, which writes nothing to the mesh): a
  mesh not seen before in this run (created, or listed at start-up), a new `metadata.generation`, or a
  pause flip gets a pass through the wake-up queue, with the same bounded backoff as every trigger;
- a child added, deleted or edited (our own informers, `children.py`, not kopf: kopf would run its
  per-object machinery for every status update of every child): its controlling mesh gets a full pass,
  so the child is restored; a child whose rollout counters moved gets only a status refresh;
- the same events feed the mesh cache (`meshes.py`), so a pass starts without reading it;
- a jittered periodic resync (our own loop, not `kopf.timer`: kopf timers put a finalizer on every
  mesh, which would make deleting a mesh hang whenever the operator is down).

Handlers return nothing: kopf would store return values under `.status`, which our strict status
schema prunes. Status is written by `runner.py` with a status-subresource patch. kopf writes nothing
to a mesh (no change handlers, so no diff-base or progress annotations, and no finalizer).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import kopf

from actormesh_operator.api.schema import GROUP, PLURAL, VERSION
from actormesh_operator.reconcile import metrics
from actormesh_operator.reconcile.kube import KubeCredentials
from actormesh_operator.reconcile.state import OperatorState
from actormesh_operator.settings import OperatorSettings

ANNOTATION_PREFIX = "actormesh.io"
"""kopf's progress/diff-base annotations: `actormesh.io/last-handled-configuration` and friends."""


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

    # Every mesh event, the start-up listing included (type None): kopf's create/update/resume
    # handlers are not used, because kopf stores its diff base and progress in the mesh (one PATCH
    # per change handled, and a 409 for our status write that raced it). Which events need a pass is
    # decided in `state.mesh_event` (a new mesh, a new generation, a pause flip); retries are ours.
    @kopf.on.event(GROUP, VERSION, PLURAL, id="mesh-events", registry=registry)
    async def mesh_event(type: str | None, body: Any, name: str, namespace: str | None, **_: Any) -> None:
        deleted = type == "DELETED"
        state.meshes.seen(body, deleted=deleted)
        phase = None if deleted else (body.get("status") or {}).get("phase") or "Unknown"
        metrics.set_phase(namespace or "", name, phase)
        state.mesh_event(type, body)

    return registry
