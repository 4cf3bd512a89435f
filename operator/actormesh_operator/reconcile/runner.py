"""The one idempotent reconcile of one ActorMesh: observe, build, apply, prune, write status.

Every trigger ends here — mesh events (kopf's watch), child watch events and the periodic
resync (`handlers.py`) — always with a freshly read mesh and under a per-mesh lock, so two triggers
never interleave their writes. The steps (KubeRay's `reconcileFuncs`, then one status computation):

1. read the mesh; a mesh being deleted is left to the garbage collector;
2. observe: KEDA discovery, the live children (label-selected); an older mesh of the same name on the
   same external NATS or Redis (`clash.py`) stops here, before any write (the pods would share its
   stream and keys); create the generated Secrets (gateway key, Redis and NATS passwords) that do not
   exist yet, never overwriting; read the referenced ones;
3. a missing Secret stops here: `Stalled`, an Event, no children applied (pods would only fail);
4. build the desired children (pure) and server-side apply those missing, changed or drifted —
   skipped, with 5, when the inputs and children of the last complete pass still hold (`insync.py`);
5. prune children this mesh controls that are no longer desired;
6. compute the full status (pure) and patch the status subresource only if it changed.

Failures are classified by `errors.py`; the status and an Event are written here, and the kopf error
to raise is returned to the caller (`kopf.TemporaryError` with backoff or `kopf.PermanentError`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from actormesh_operator.api.observed import MissingSecret, ObservedState, ReconcileError
from actormesh_operator.api.schema import API_VERSION, KIND, PLURAL
from actormesh_operator.api.spec import PAUSED_ANNOTATION, ActorMesh
from actormesh_operator.api.status import ConditionType, Reason
from actormesh_operator.builders import Manifest, build_children, referenced_secrets
from actormesh_operator.builders.generated import generated_secrets
from actormesh_operator.builders.kinds import HTTP_ROUTE, MONITORING_KINDS, SCALED_OBJECT
from actormesh_operator.builders.secret_hash import referenced_secret_names, with_secret_hashes
from actormesh_operator.reconcile import metrics
from actormesh_operator.reconcile.apply import ApplyOutcome, apply_children, prune_children
from actormesh_operator.reconcile.children import ChildCache
from actormesh_operator.reconcile.clash import nats_url, redis_url, shared_name_clash
from actormesh_operator.reconcile.diff import ChildKey, pending_changes
from actormesh_operator.reconcile.errors import (
    Failure,
    MissingSecretError,
    SharedNameClashError,
    action,
    classify,
    exhausted,
    to_kopf,
)
from actormesh_operator.reconcile.events import post_event
from actormesh_operator.reconcile.generated import ensure_generated_secrets
from actormesh_operator.reconcile.insync import InSync, inputs_digest, secrets_digest
from actormesh_operator.reconcile.kube import KubeApiError, KubeClient, Resource
from actormesh_operator.reconcile.meshes import MeshCache
from actormesh_operator.reconcile.observe import (
    KindDetector,
    SecretCache,
    ServedKindsDetector,
    list_children,
    missing_secrets,
    observed_state,
    read_secrets,
)
from actormesh_operator.settings import OperatorSettings
from actormesh_operator.status import ANONYMOUS_WARNING, compute_status, invalid_spec_status, status_patch

CACHE_SYNC_TIMEOUT_S = 60.0
"""How long a pass waits for the child informers' first lists (then it fails and is retried)."""
STATUS_CONFLICT_RETRIES = 3
"""Re-reads after a 409 on a status write before it becomes an ordinary (retried) failure."""
CONCURRENT_PASSES = 8
"""Full passes running at once. A pass holds every desired and live child of its mesh in memory
(~1-2 MB of dicts); 50 meshes created at once ran 50 passes side by side, and the heap they grew
stayed the process's RSS afterwards. The operator is one thread: more passes at once only overlap
waiting for the API server, which 8 already do."""

logger = logging.getLogger(__name__)

MESHES = Resource(API_VERSION, KIND, PLURAL)


@dataclass
class _Attempt:
    """What one pass learned before it finished or failed (the status is written from it either way)."""

    body: dict[str, Any]
    mesh: ActorMesh | None = None
    keda: bool = False
    monitoring: frozenset[str] = frozenset()
    gateway_api: bool = False
    live: dict[ChildKey, dict[str, Any]] = field(default_factory=dict)
    listed: bool = False
    missing: list[MissingSecret] = field(default_factory=list)


class MeshReconciler:
    """Reconciles meshes with one API client and one settings object; one instance per operator."""

    def __init__(
        self,
        settings: OperatorSettings,
        kube: KubeClient,
        on_secrets: Callable[[str, str, set[str]], None] | None = None,
        *,
        children: ChildCache | None = None,
        meshes: MeshCache | None = None,
        secrets: SecretCache | None = None,
        keda_available: bool | None = None,
        gateway_api_available: bool | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.on_secrets = on_secrets
        """Told, after each pass, which Secrets a mesh's pods read (the Secret watches follow it)."""
        self.children = children
        """The informer cache of children; without it every pass lists them (tests, tools)."""
        self.meshes = meshes
        """The meshes as last seen; without it every pass reads the mesh."""
        self.secrets = secrets
        """The referenced Secrets as last seen; without it every pass reads them."""
        self._keda = KindDetector(SCALED_OBJECT, initial=keda_available)
        self._monitoring = ServedKindsDetector(MONITORING_KINDS)
        self._gateway_api = KindDetector(HTTP_ROUTE, initial=gateway_api_available)
        self._verified: dict[tuple[str, str], dict[ChildKey, tuple[str, str]]] = {}
        """Per mesh: children last found in sync, by (resourceVersion, desired hash) (`apply_children`)."""
        self._in_sync: dict[tuple[str, str], InSync] = {}
        """Per mesh: the inputs and children of its last complete pass (`insync.py`)."""
        self._settled: dict[tuple[str, str], int] = {}
        """Generation of each mesh's last successful, unpaused pass: status-only refreshes are allowed
        while it is the mesh's current generation (anything else needs a full pass)."""
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._passes = asyncio.Semaphore(CONCURRENT_PASSES)
        self._paused: dict[tuple[str, str], str] = {}
        """UID of each mesh whose last successful pass was paused: a failed pass after the annotation is
        removed writes Paused=False, and the Resumed Event must still follow the pass that restores it.
        By UID, as `_stalled`: a mesh recreated under the name was never paused."""
        self._stalled: dict[tuple[str, str], tuple[str, str]] = {}
        """(UID, last Stalled message) per mesh, so a resync of a stuck mesh does not repeat its Event.
        The UID: a mesh deleted and recreated under the same name (`kubectl replace --force`, Argo CD's
        Replace) is another object, whose Events would otherwise never say why it is stuck."""

    async def reconcile(
        self, namespace: str, name: str, *, trigger: str, retry: int = 0
    ) -> kopf.TemporaryError | kopf.PermanentError | None:
        """One full pass; returns the kopf error describing a failure (already reported), else None."""
        lock = self._locks.setdefault((namespace, name), asyncio.Lock())
        async with lock:
            started = time.monotonic()
            attempt: _Attempt | None = None
            try:
                if self.children is not None:  # an empty cache would make every child look missing
                    with action("list the children (start-up)"):
                        await asyncio.wait_for(self.children.wait_synced(), CACHE_SYNC_TIMEOUT_S)
                body = await self._read_mesh(namespace, name)
                if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                    self._secrets_seen(namespace, name, set())  # nothing left to watch for it
                    self._settled.pop((namespace, name), None)
                    self._verified.pop((namespace, name), None)
                    self._in_sync.pop((namespace, name), None)
                    return None  # gone or going: the garbage collector takes the children
                attempt = _Attempt(body=body)
                async with self._passes:
                    outcome = await self._pass(attempt)
            except Exception as exc:
                self._settled.pop((namespace, name), None)
                self._in_sync.pop((namespace, name), None)
                return await self._failed(f"{namespace}/{name}", attempt, exc, trigger=trigger, retry=retry)
            finally:
                metrics.DURATION.observe(time.monotonic() - started)
            metrics.RECONCILES.labels(trigger=trigger, result="success").inc()
            self._stalled.pop((namespace, name), None)
            await self._post_events((namespace, name), body, attempt.mesh, outcome)
            return None

    async def _read_mesh(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The mesh as last seen by the watch (or our own status write); read only when unknown."""
        if self.meshes is not None:
            cached = self.meshes.get(namespace, name)
            if cached is not None:
                return cached
        with action(f"read actormesh {name}"):
            body = await self.kube.get(MESHES, name, namespace)
        if body is not None and self.meshes is not None:
            self.meshes.seen(body)
        return body

    async def refresh_status(self, namespace: str, name: str) -> bool:
        """Recompute the status from the cached mesh and children, write it if it changed.

        For child events that changed only what the status reads (rollout counters, the gateway's
        address). Returns False, doing nothing, when that is not enough: no settled pass at the mesh's
        current generation (first pass, failure, pause, spec change) — the caller then runs a full one."""
        key = (namespace, name)
        body = self.meshes.get(namespace, name) if self.meshes is not None else None
        if body is None or self.children is None or self._settled.get(key) != _generation(body):
            return False
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            started = time.monotonic()
            try:
                mesh = ActorMesh.from_body(body)
                attempt = _Attempt(body=body, mesh=mesh)
                await self._observe(attempt, mesh, recheck=False)
                await self._write_status(body, mesh, _observed(attempt))
            except Exception as exc:  # the next full pass reports it properly
                logger.info("status refresh of %s/%s failed: %s", namespace, name, exc)
                self._settled.pop(key, None)
                return False
            finally:
                metrics.DURATION.observe(time.monotonic() - started)
            metrics.RECONCILES.labels(trigger="status", result="success").inc()
            return True

    async def _post_events(
        self, key: tuple[str, str], body: Mapping[str, Any], mesh: ActorMesh | None, outcome: ApplyOutcome
    ) -> None:
        """`Paused` / `Resumed` on a pause transition, else `Applied` when something was written."""
        uid = _uid(body)
        was_paused = self._paused.get(key) == uid or _condition_status(body, ConditionType.PAUSED) == "True"
        if mesh is not None and mesh.paused:
            self._paused[key] = uid
            if not was_paused:
                await self._event(
                    body, "Normal", "Paused", f"{PAUSED_ANNOTATION} is true: children are no longer written"
                )
        elif was_paused:
            self._paused.pop(key, None)
            changed = _summary(outcome) if outcome.changed else "every child already matched the spec"
            await self._event(body, "Normal", "Resumed", f"{PAUSED_ANNOTATION} removed; {changed}")
        elif outcome.changed:
            await self._event(body, "Normal", "Applied", _summary(outcome))

    async def _pass(self, attempt: _Attempt) -> ApplyOutcome:
        attempt.mesh = mesh = ActorMesh.from_body(attempt.body)
        await self._warn_when_anonymous(attempt.body, mesh)
        await self._observe(attempt, mesh, recheck=True)
        attempt.listed = True
        if not mesh.paused:  # a paused mesh gets no writes anyway; resuming checks again
            await self._refuse_shared_name(attempt.body)
        key = (mesh.namespace, mesh.name)
        inputs = inputs_digest(
            attempt.body, keda=attempt.keda, monitoring=attempt.monitoring, gateway_api=attempt.gateway_api
        )
        if not mesh.paused and await self._still_in_sync(key, inputs, attempt):
            await self._write_status(attempt.body, mesh, _observed(attempt))
            self._settled[key] = mesh.generation
            return ApplyOutcome()
        self._in_sync.pop(key, None)
        built = build_children(
            mesh,
            self.settings,
            keda_available=attempt.keda,
            monitoring_available=attempt.monitoring,
            gateway_api_available=attempt.gateway_api,
        )
        refs = referenced_secrets(mesh)
        names = referenced_secret_names(built) | {ref.name for ref in refs}
        outcome = ApplyOutcome()
        if not mesh.paused:
            # Before their values are read and hashed into the pods that use them; created once, never
            # overwritten (a paused mesh gets no writes at all).
            generated = generated_secrets(mesh)
            outcome.applied += await ensure_generated_secrets(self.kube, mesh, generated, self.secrets)
        secrets = await read_secrets(self.kube, mesh.namespace, names, self.secrets)
        # After reading: the watches start from the versions just read, so nothing is read twice.
        self._secrets_seen(mesh.namespace, mesh.name, names)
        desired = with_secret_hashes(built, secrets)
        if mesh.paused:
            # Not a settled pass: a status refresh would report the mesh as not paused (it computes
            # no drift and no pause), so while paused every child event gets a paused pass instead.
            self._settled.pop(key, None)
            await self._report_paused(attempt, mesh, desired)
            return ApplyOutcome()
        attempt.missing = missing_secrets(refs, secrets)
        if attempt.missing:
            raise MissingSecretError("; ".join(_missing_text(m, mesh.namespace) for m in attempt.missing))
        manager = self.settings.field_manager
        hashes: dict[ChildKey, str] = {}
        await apply_children(
            self.kube,
            desired,
            attempt.live,
            field_manager=manager,
            outcome=outcome,
            cache=self.children,
            verified=self._verified.setdefault(key, {}),
            hashes=hashes,
        )
        await prune_children(
            self.kube, desired, attempt.live, owner_uid=mesh.uid, outcome=outcome, cache=self.children
        )
        await self._write_status(attempt.body, mesh, _observed(attempt))
        self._settled[key] = mesh.generation
        self._in_sync[key] = InSync(inputs, frozenset(names), secrets_digest(secrets), hashes)
        return outcome

    async def _refuse_shared_name(self, body: Mapping[str, Any]) -> None:
        """Raise when an older mesh of this name uses the same external NATS or Redis (`clash.py`).

        Before anything is written, the generated Secrets included. Children applied before the clash
        arose (the other mesh changed its URL) are left alone: pruning them would stop this mesh's
        conversations in the middle, and renaming is the user's call."""
        if nats_url(body) is None and redis_url(body) is None:
            return  # managed servers are the mesh's own
        name = str(body["metadata"]["name"])
        if self.meshes is not None:
            others = self.meshes.named(name)
        elif self.settings.namespace is None:  # no cache (tools, tests): ask the API server
            with action("list actormeshes"):
                others = [m for m in await self.kube.list(MESHES) if m["metadata"]["name"] == name]
        else:
            return  # one namespace: names are unique there
        clash = shared_name_clash(body, others)
        if clash is not None:
            raise SharedNameClashError(clash.message())

    async def _still_in_sync(self, key: tuple[str, str], inputs: bytes, attempt: _Attempt) -> bool:
        """The last complete pass still holds (`insync.py`): same inputs and Secrets, every live child
        verified against its hash. Reads the Secrets from their cache, as the full pass would."""
        known = self._in_sync.get(key)
        if known is None or inputs != known.inputs:
            return False
        secrets = await read_secrets(self.kube, key[0], known.secret_names, self.secrets)
        verified = self._verified.get(key, {})
        return known.still_holds(inputs, secrets_digest(secrets), attempt.live, verified, self.children)

    async def _observe(self, attempt: _Attempt, mesh: ActorMesh, *, recheck: bool) -> None:
        """Which optional kinds are served, then the live children. Discovery is asked again only for
        meshes that use an optional kind (`recheck`); the others, and status refreshes, use the last
        answer."""
        attempt.keda = await self._keda.available(
            self.kube, recheck=recheck and bool(mesh.spec.queue_lag_actors())
        )
        attempt.monitoring = await self._monitoring.served(
            self.kube, recheck=recheck and bool(mesh.spec.monitoring.requested_kinds())
        )
        attempt.gateway_api = await self._gateway_api.available(
            self.kube, recheck=recheck and mesh.spec.gateway.http_route.enabled
        )
        attempt.live = await list_children(
            self.kube,
            mesh,
            keda=attempt.keda,
            monitoring=attempt.monitoring,
            gateway_api=attempt.gateway_api,
            cache=self.children,
        )

    def _secrets_seen(self, namespace: str, name: str, secrets: set[str]) -> None:
        if self.on_secrets is not None:
            self.on_secrets(namespace, name, secrets)

    async def _event(self, body: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        await post_event(self.kube, body, kind, reason, message, component=self.settings.field_manager)

    async def _warn_when_anonymous(self, body: Mapping[str, Any], mesh: ActorMesh) -> None:
        """A Warning Event when anonymous mode is switched on (the status does not show the warning yet);
        the AnonymousGateway condition then keeps it visible without repeating the Event."""
        if mesh.spec.gateway.anonymous and _condition_status(body, ConditionType.ANONYMOUS_GATEWAY) is None:
            await self._event(body, "Warning", Reason.ANONYMOUS_MODE_ENABLED.value, ANONYMOUS_WARNING)

    async def _report_paused(self, attempt: _Attempt, mesh: ActorMesh, desired: list[Manifest]) -> None:
        """Paused: read and report, write no child. The status lists what resuming would change."""
        drift = pending_changes(desired, attempt.live, self.settings.field_manager, mesh.uid)
        observed = _observed(attempt).model_copy(update={"paused": True, "drift": drift})
        await self._write_status(attempt.body, mesh, observed)

    async def _failed(
        self, ref: str, attempt: _Attempt | None, exc: Exception, *, trigger: str, retry: int
    ) -> kopf.TemporaryError | kopf.PermanentError:
        failure = classify(exc)
        stalled = exhausted(failure, retry=retry, max_retries=self.settings.retry_limit)
        metrics.ERRORS.labels(kind=failure.kind).inc()
        metrics.RECONCILES.labels(trigger=trigger, result="stalled" if stalled else "retry").inc()
        log = logger.warning if stalled else logger.info
        log(
            "reconcile %s failed (%s, %s): %s",
            ref,
            failure.kind,
            "stalled" if stalled else f"retry {retry + 1}/{self.settings.retry_limit}",
            failure.message,
        )
        if attempt is not None:  # else the mesh could not even be read: nothing to write status on
            try:
                await self._report(attempt, failure, stalled=stalled)
            except Exception as report_exc:  # the API is likely down; the retry will report again
                logger.warning("could not write the status of %s: %s", ref, report_exc)
        base, cap = self.settings.retry_backoff_s, self.settings.retry_backoff_max_s
        return to_kopf(failure, retry=retry, max_retries=self.settings.retry_limit, base=base, cap=cap)

    async def _report(self, attempt: _Attempt, failure: Failure, *, stalled: bool) -> None:
        """Status (and, when newly stalled, a Warning Event) for a failed pass."""
        mesh, body = attempt.mesh, attempt.body
        if mesh is None:
            await self._write_invalid(body, failure.message)
        elif attempt.listed or stalled:
            reason = failure.reason if failure.permanent else Reason.RETRIES_EXHAUSTED
            error = (
                None
                if attempt.missing
                else ReconcileError(message=failure.message, permanent=stalled, reason=reason)
            )
            observed = _observed(attempt, missing=attempt.missing, applied=False, error=error)
            await self._write_status(body, mesh, observed)
        key = (str(body["metadata"].get("namespace")), str(body["metadata"]["name"]))
        seen = (_uid(body), failure.message)
        if stalled and self._stalled.get(key) != seen:
            self._stalled[key] = seen
            reason = failure.reason if failure.permanent else Reason.RETRIES_EXHAUSTED
            await self._event(body, "Warning", reason.value, failure.message)

    async def _write_status(self, body: Mapping[str, Any], mesh: ActorMesh, observed: Any) -> None:
        def build(current: Mapping[str, Any]) -> dict[str, Any] | None:
            previous = dict(current.get("status") or {})
            return status_patch(previous, compute_status(mesh, observed, previous, datetime.now(UTC)))

        await self._update_status(body, build)

    async def _update_status(
        self, body: Mapping[str, Any], build: Callable[[Mapping[str, Any]], dict[str, Any] | None]
    ) -> None:
        """Patch the status computed from `body`, guarded by its resourceVersion.

        Our patch carries the whole conditions list, so writing it over a newer status would drop a
        condition another controller added since we read. On 409 Conflict we re-read and recompute
        from the fresh status (a few times; then the conflict is an ordinary retryable failure)."""
        meta = body["metadata"]
        name, namespace = meta["name"], meta.get("namespace")
        for attempt in range(STATUS_CONFLICT_RETRIES + 1):
            patch = build(body)
            if patch is None:
                return
            version = body["metadata"].get("resourceVersion")
            try:
                written = await self.kube.patch_status(
                    MESHES, name, namespace, patch, resource_version=version
                )
                if self.meshes is not None and written:
                    self.meshes.seen(written)
                return
            except KubeApiError as exc:
                if exc.status != 409 or attempt == STATUS_CONFLICT_RETRIES:
                    with action(f"update actormesh {name} status"):
                        raise
            fresh = self.meshes.get(namespace, name) if self.meshes is not None else None
            if fresh is None or fresh["metadata"].get("resourceVersion") == version:
                # The watch has not brought the newer version yet (usually kopf's own annotation
                # patch, a moment ago): read it.
                with action(f"read actormesh {name} for its status"):
                    fresh = await self.kube.get(MESHES, name, namespace)
            if fresh is None:  # deleted meanwhile: nothing left to report on
                return
            if self.meshes is not None:
                self.meshes.seen(fresh)
            body = fresh

    async def _write_invalid(self, body: Mapping[str, Any], message: str) -> None:
        """A spec the model rejects has no ActorMesh to compute from: set the three conditions directly."""

        def build(current: Mapping[str, Any]) -> dict[str, Any] | None:
            previous = dict(current.get("status") or {})
            generation = int(current["metadata"].get("generation") or 0)
            new = invalid_spec_status(previous, generation, message, datetime.now(UTC))
            return status_patch(previous, new)

        await self._update_status(body, build)


def _observed(
    attempt: _Attempt,
    *,
    missing: list[MissingSecret] | None = None,
    applied: bool = True,
    error: ReconcileError | None = None,
) -> ObservedState:
    """What `compute_status` reads, from what this attempt observed."""
    return observed_state(
        attempt.live,
        keda=attempt.keda,
        missing=missing or [],
        applied=applied,
        error=error,
        monitoring=attempt.monitoring,
        gateway_api=attempt.gateway_api,
    )


def _generation(body: Mapping[str, Any]) -> int:
    return int((body.get("metadata") or {}).get("generation") or 0)


def _uid(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("uid") or "")


def _condition_status(body: Mapping[str, Any], kind: ConditionType) -> str | None:
    for entry in (body.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind.value:
            return str(entry.get("status"))
    return None


def _missing_text(missing: MissingSecret, namespace: str) -> str:
    what = f"has no key {missing.key!r}" if missing.secret_exists else "not found"
    return f"{missing.field}: Secret {namespace}/{missing.name} {what}"


def _summary(outcome: ApplyOutcome) -> str:
    parts = []
    if outcome.applied:
        parts.append(f"applied {len(outcome.applied)}: " + ", ".join(outcome.applied))
    if outcome.pruned:
        parts.append(f"deleted {len(outcome.pruned)}: " + ", ".join(outcome.pruned))
    text = "; ".join(parts)
    return text if len(text) <= 1000 else text[:997] + "..."
