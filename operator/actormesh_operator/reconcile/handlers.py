"""The kopf layer: which events start a reconcile, and kopf's own settings. Nothing else.

`build_registry(settings, creds)` returns a fresh `kopf.OperatorRegistry` (no module-level handlers,
so tests can run several operators, one per namespace, in one process). Triggers of the one reconcile
in `runner.py`:

- kopf `create`/`update`/`resume` on an ActorMesh: kopf's retry counter drives our bounded backoff;
- a watch event on any child kind (server-side label selector `app.kubernetes.io/managed-by`, plus
  the same label filter on the handler, which kopf evaluates client-side): the child's controller
  owner is woken up through `queue.WakeupQueue`, so a deleted or edited child is restored;
- a jittered periodic resync (our own loop, not `kopf.timer`: kopf timers put a finalizer on every
  mesh, which would make deleting a mesh hang whenever the operator is down).

Handlers return nothing: kopf would store return values under `.status`, which our strict status
schema prunes. Status is written by `runner.py` with a status-subresource patch. kopf keeps its
progress and diff-base in annotations under the fixed prefix `actormesh.io` (never change it: a
renamed prefix makes kopf see every mesh as new).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from typing import Any

import kopf

from actormesh_operator.api.schema import API_VERSION, GROUP, KIND, PLURAL, VERSION
from actormesh_operator.builders.kinds import MANAGED_KINDS
from actormesh_operator.builders.labels import MANAGED_BY_SELECTOR
from actormesh_operator.reconcile import metrics
from actormesh_operator.reconcile.kube import KubeClient, KubeCredentials
from actormesh_operator.reconcile.queue import WakeupQueue
from actormesh_operator.reconcile.runner import MESHES, MeshReconciler
from actormesh_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

ANNOTATION_PREFIX = "actormesh.io"
"""kopf's progress/diff-base annotations: `actormesh.io/last-handled-configuration` and friends."""
CHILD_DEBOUNCE_S = 1.0
"""Child events within this window cost one reconcile (a rollout emits dozens)."""


class OperatorState:
    """Objects living as long as one operator run: API client, reconciler, wake-up queue, resync."""

    def __init__(self, settings: OperatorSettings, creds: KubeCredentials) -> None:
        self.settings = settings
        self.creds = creds
        self.kube: KubeClient | None = None
        self.reconciler: MeshReconciler | None = None
        self.queue: WakeupQueue | None = None
        self._resync: asyncio.Task[None] | None = None
        self._attempts: dict[tuple[str, str], int] = {}

    async def start(self) -> None:
        self.kube = KubeClient(self.creds)
        self.reconciler = MeshReconciler(self.settings, self.kube)
        self.queue = WakeupQueue(self._run_queued, debounce_s=CHILD_DEBOUNCE_S)
        self._resync = asyncio.create_task(self._resync_loop(), name="actormesh resync")

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync
        if self.queue is not None:
            await self.queue.close()
        if self.kube is not None:
            await self.kube.close()

    async def reconcile_now(self, namespace: str, name: str, *, trigger: str, retry: int) -> None:
        """For kopf's handlers: raise what kopf should do next (its retry counter bounds the attempts)."""
        assert self.reconciler is not None, "startup handler has not run"
        error = await self.reconciler.reconcile(namespace, name, trigger=trigger, retry=retry)
        if error is not None:
            raise error

    async def _run_queued(self, namespace: str, name: str, trigger: str) -> float | None:
        """For the wake-up queue: same bounded retries, counted here since kopf is not involved."""
        assert self.reconciler is not None
        key = (namespace, name)
        retry = self._attempts.get(key, 0)
        error = await self.reconciler.reconcile(namespace, name, trigger=trigger, retry=retry)
        if isinstance(error, kopf.TemporaryError):
            self._attempts[key] = retry + 1
            return float(error.delay or self.settings.retry_backoff_s)
        if isinstance(error, kopf.PermanentError):
            # Stalled: later wake-ups get one attempt each, no retries, until one succeeds.
            self._attempts[key] = self.settings.retry_limit
            return None
        self._attempts.pop(key, None)
        return None

    def wake(self, namespace: str, name: str, trigger: str, *, delay: float | None = None) -> None:
        if self.queue is not None:
            self.queue.schedule(namespace, name, trigger, delay=delay)

    async def _resync_loop(self) -> None:
        interval, jitter = self.settings.resync_interval_s, self.settings.resync_jitter_s
        while True:
            await asyncio.sleep(interval + random.uniform(0, jitter))
            assert self.kube is not None
            try:
                meshes = await self.kube.list(MESHES, self.settings.namespace)
            except Exception as exc:  # an API outage must not end the resync
                logger.warning("resync: listing actormeshes failed: %s", exc)
                continue
            for mesh in meshes:
                meta = mesh.get("metadata") or {}
                self.wake(
                    meta.get("namespace", ""), meta.get("name", ""), "resync", delay=random.uniform(0, jitter)
                )


def controller_owner(body: Mapping[str, Any]) -> str | None:
    """Name of the ActorMesh controlling a child, from its ownerReferences (labels can be copied)."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion") == API_VERSION and ref.get("controller"):
            return str(ref.get("name"))
    return None


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Copy what kopf needs from our choices into kopf's settings (called once, at startup)."""
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
    settings.posting.reporting_component = "actormesh-operator"
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
    settings: OperatorSettings, creds: KubeCredentials, *, keda_available: bool = False
) -> kopf.OperatorRegistry:
    """Every handler of one operator instance, bound to its own state.

    Optional child kinds (KEDA's ScaledObject) are watched only if served at startup: kopf discovers
    resources once (scanning is off), so watching an absent CRD would only log a warning."""
    registry = kopf.OperatorRegistry()
    state = OperatorState(settings, creds)
    retries = settings.retry_limit

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)
        await state.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await state.stop()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(creds)

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, retries=retries)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, retries=retries)
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, retries=retries)
    async def reconcile_mesh(name: str, namespace: str | None, retry: int, reason: Any, **_: Any) -> None:
        trigger = str(getattr(reason, "value", reason))  # kopf.Reason: create / update / resume
        await state.reconcile_now(namespace or "", name, trigger=trigger, retry=retry)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def track_phase(type: str | None, body: Any, name: str, namespace: str | None, **_: Any) -> None:
        phase = None if type == "DELETED" else (body.get("status") or {}).get("phase") or "Unknown"
        metrics.set_phase(namespace or "", name, phase)

    async def child_changed(type: str | None, body: Any, namespace: str | None, **_: Any) -> None:
        if type is None:
            return  # the initial listing at startup: the resume handlers cover every mesh already
        owner = controller_owner(body)
        if owner is not None and namespace:
            state.wake(namespace, owner, "child")

    for kind in MANAGED_KINDS:
        if kind.optional and not keda_available:
            continue
        kopf.on.event(
            group=kind.group,
            version=kind.version,
            plural=kind.plural,
            labels=dict(MANAGED_BY_SELECTOR),
            id=f"child-{kind.plural}",
            registry=registry,
        )(child_changed)
    return registry
