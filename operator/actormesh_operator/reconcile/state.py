"""What lives as long as one operator run: the API client, the reconciler, the wake-up queue, the resync.

Created by the startup handler in `handlers.py` (one per operator instance, so tests can run several
in one process) and stopped by the cleanup handler. It is where the triggers meet the reconcile:
mesh events (`mesh_event`, from kopf's watch), child events and the jittered resync all call `wake`;
retries are counted here, with the bound and backoff of `OperatorSettings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from typing import Any

import kopf

from actormesh_operator.api.spec import is_paused
from actormesh_operator.builders.kinds import MANAGED_KINDS
from actormesh_operator.builders.labels import MANAGED_BY_SELECTOR
from actormesh_operator.reconcile.apply import field_managers
from actormesh_operator.reconcile.children import ChildCache
from actormesh_operator.reconcile.clash import stalled_by_clash
from actormesh_operator.reconcile.diff import STATUS_CHANGE
from actormesh_operator.reconcile.kube import KubeClient, KubeCredentials
from actormesh_operator.reconcile.meshes import MeshCache
from actormesh_operator.reconcile.observe import kind_served
from actormesh_operator.reconcile.queue import STATUS_TRIGGER, WakeupQueue
from actormesh_operator.reconcile.runner import MESHES, MeshReconciler
from actormesh_operator.reconcile.secret_watch import SecretWatches
from actormesh_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

CHILD_DEBOUNCE_S = 1.0
"""Child events within this window cost one reconcile (a rollout emits dozens)."""
STATUS_DEBOUNCE_S = 2.0
"""Rollout-counter changes cost one status refresh once they have been quiet this long (trailing): a
14-workload rollout moves its counters in many small steps, and the status is read by people and Argo
CD, not by a control loop."""
STATUS_MAX_DEFER_S = 10.0
"""... but never deferred longer than this after the first change, so a long rollout still shows progress."""


def pause_changed(body: Mapping[str, Any]) -> bool:
    """The paused annotation disagrees with the Paused condition: a reconcile must act on it.

    Annotations do not change `metadata.generation`, so the pause is noticed here."""
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


def mesh_trigger(body: Mapping[str, Any], known_generation: int | None, *, listing: bool) -> str | None:
    """Which pass a mesh's watch event asks for: `create`/`resume` for a mesh this run has not seen
    (`listing`: kopf's start-up list), `update` for a new generation, `pause` for a pause flip, else
    None — our own status writes and the controller's, labels, other annotations change nothing we
    build from (spec changes bump the generation)."""
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None  # the garbage collector takes the children
    if known_generation is None:
        return "resume" if listing else "create"
    if int(meta.get("generation") or 0) != known_generation:
        return "update"
    return "pause" if pause_changed(body) else None


class OperatorState:
    """Objects living as long as one operator run: API client, reconciler, wake-up queue, resync."""

    def __init__(
        self,
        settings: OperatorSettings,
        creds: KubeCredentials,
        *,
        keda_available: bool = False,
        gateway_api_available: bool = False,
    ) -> None:
        self.settings = settings
        self.creds = creds
        self.keda_available = keda_available
        self.gateway_api_available = gateway_api_available
        self.meshes = MeshCache()
        self.children: ChildCache | None = None
        self.kube: KubeClient | None = None
        self.reconciler: MeshReconciler | None = None
        self.queue: WakeupQueue | None = None
        self.secret_watches: SecretWatches | None = None
        self._resync: asyncio.Task[None] | None = None
        self._attempts: dict[tuple[str, str], int] = {}
        self._generations: dict[str, int] = {}
        """Per mesh UID: the generation last handed to the queue (a new one is an update)."""

    async def start(self) -> None:
        self.kube = KubeClient(self.creds)
        self.secret_watches = SecretWatches(
            self.kube,
            self._wake_for_secret,
            generated_labels=MANAGED_BY_SELECTOR,
            namespace=self.settings.namespace,
        )
        # The kinds served now. Monitoring kinds are not watched (monitoring=()): nothing in the mesh
        # depends on them (drift there is corrected by the resync), and their CRDs may appear after
        # start-up; they are listed instead. (An HTTPRoute is watched so a Gateway accepting it updates
        # the status at once.)
        kinds = [
            k
            for k in MANAGED_KINDS
            if kind_served(k, keda=self.keda_available, monitoring=(), gateway_api=self.gateway_api_available)
        ]
        self.children = ChildCache(
            self.kube,
            kinds,
            namespace=self.settings.namespace,
            field_managers=field_managers(self.settings.field_manager),
            on_change=self._child_changed,
        )
        self.children.start()
        self.reconciler = MeshReconciler(
            self.settings,
            self.kube,
            on_secrets=self.secret_watches.update,
            children=self.children,
            meshes=self.meshes,
            secrets=self.secret_watches,
            keda_available=self.keda_available,
            gateway_api_available=self.gateway_api_available,
        )
        self.queue = WakeupQueue(
            self._run_queued, debounce_s=CHILD_DEBOUNCE_S, max_defer_s=STATUS_MAX_DEFER_S
        )
        self._resync = asyncio.create_task(self._resync_loop(), name="actormesh resync")

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync
        if self.secret_watches is not None:
            await self.secret_watches.close()
        if self.children is not None:
            await self.children.stop()
        if self.queue is not None:
            await self.queue.close()
        if self.kube is not None:
            await self.kube.close()

    def mesh_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of a mesh (kopf's; `event_type` None for its start-up listing): queue a pass
        when `mesh_trigger` asks for one. A new spec starts its retries afresh and skips a pending
        backoff, as a fixed spec should not wait out the broken one's delay."""
        meta = body.get("metadata") or {}
        uid, namespace, name = str(meta.get("uid") or ""), str(meta.get("namespace") or ""), str(meta["name"])
        if event_type == "DELETED":
            self._generations.pop(uid, None)
            self._attempts.pop((namespace, name), None)
            self._wake_namesakes(namespace, name)
            return
        trigger = mesh_trigger(body, self._generations.get(uid), listing=event_type is None)
        if trigger is None:
            return
        self._generations[uid] = int(meta.get("generation") or 0)
        if trigger != "pause":
            self._attempts.pop((namespace, name), None)
        self.wake(namespace, name, trigger, delay=0.0)
        if trigger == "update":  # perhaps off the server it shared
            self._wake_namesakes(namespace, name)

    def _wake_namesakes(self, namespace: str, name: str) -> None:
        """Meshes of this name stalled by a clash (`clash.py`) may be free once it is deleted or moved
        to another server: one pass each now, rather than at the next resync (counted as one, since
        it is the same single attempt a resync gives a stalled mesh)."""
        for body in self.meshes.named(name):
            other = str((body.get("metadata") or {}).get("namespace") or "")
            if other != namespace and stalled_by_clash(body):
                self.wake(other, name, "resync")

    async def _run_queued(self, namespace: str, name: str, trigger: str) -> float | None:
        """For the wake-up queue: same bounded retries, counted here since kopf is not involved."""
        assert self.reconciler is not None
        key = (namespace, name)
        if trigger == STATUS_TRIGGER:
            if await self.reconciler.refresh_status(namespace, name):
                return None
            trigger = "child"  # the status alone could not be brought up to date: a full pass
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

    def _wake_for_secret(self, namespace: str, name: str, trigger: str) -> None:
        self.wake(namespace, name, trigger)

    def _child_changed(self, namespace: str, mesh: str, uid: str, change: str) -> None:
        """A child changed in a way its mesh must act on (`diff.change_kind`): a full pass, or only the
        status. Children of a deleted mesh (the garbage collector at work) or of an older mesh of the
        same name wake nobody."""
        if self.meshes.is_deleted(uid):
            return
        cached = self.meshes.get(namespace, mesh)
        if cached is not None and (cached.get("metadata") or {}).get("uid") not in (None, uid):
            return
        if change == STATUS_CHANGE:
            self.wake(namespace, mesh, STATUS_TRIGGER, delay=STATUS_DEBOUNCE_S)
        else:
            self.wake(namespace, mesh, "child")

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
            self.meshes.replace(meshes)
            for mesh in meshes:
                meta = mesh.get("metadata") or {}
                self.wake(
                    meta.get("namespace", ""), meta.get("name", ""), "resync", delay=random.uniform(0, jitter)
                )
