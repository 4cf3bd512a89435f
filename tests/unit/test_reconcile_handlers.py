"""The kopf layer's pure parts and the wake-up queue (no cluster, no sockets)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import kopf
import pytest

from actormesh_operator.api.spec import PAUSED_ANNOTATION
from actormesh_operator.reconcile.children import controller_of
from actormesh_operator.reconcile.handlers import ANNOTATION_PREFIX, configure_kopf
from actormesh_operator.reconcile.observe import observed_state, selector_string
from actormesh_operator.reconcile.queue import STATUS_TRIGGER, WakeupQueue
from actormesh_operator.reconcile.state import CHILD_DEBOUNCE_S, mesh_trigger
from actormesh_operator.settings import OperatorSettings
from tests.support.eventually import eventually_async

RETRY_S = 5.0


def test_child_maps_to_its_controlling_mesh() -> None:
    child = {
        "metadata": {
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "controller": True},
                {
                    "apiVersion": "actormesh.io/v1alpha1",
                    "kind": "ActorMesh",
                    "name": "demo",
                    "uid": "u-1",
                    "controller": True,
                },
            ]
        }
    }
    assert controller_of(child) == ("demo", "u-1")
    assert controller_of({"metadata": {"labels": {"app.kubernetes.io/instance": "demo"}}}) is None


def test_kopf_settings() -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings, OperatorSettings(field_manager="am-test"))
    assert settings.posting.reporting_component == "am-test"
    assert settings.peering.standalone is True
    assert settings.scanning.disabled is True
    assert settings.persistence.finalizer.startswith(ANNOTATION_PREFIX + "/")
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.posting.level > logging.ERROR
    assert settings.watching.server_timeout < settings.watching.client_timeout


def test_selector_string_is_sorted() -> None:
    assert selector_string({"b": "2", "a": "1"}) == "a=1,b=2"


def test_observed_state_picks_workloads_and_the_gateway_service() -> None:
    def obj(kind: str, name: str, component: str) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": "ns",
                "labels": {"app.kubernetes.io/component": component},
            },
            "spec": {"replicas": 2, "ports": [{"port": 80}]},
            "status": {"readyReplicas": 1},
        }

    live = {
        ("apps", "StatefulSet", "ns", "demo-nats"): obj("StatefulSet", "demo-nats", "nats"),
        ("", "Service", "ns", "demo-nats"): obj("Service", "demo-nats", "nats"),
        ("", "Service", "ns", "demo-gateway"): obj("Service", "demo-gateway", "gateway"),
    }
    state = observed_state(live, keda=False, missing=[], applied=True)
    nats = state.workload("nats")
    assert nats is not None
    assert (nats.desired, nats.ready) == (2, 1)
    assert state.gateway_service is not None
    assert state.gateway_service.name == "demo-gateway"
    assert state.gateway_ingress is None


# Fake loop time (looptime): the real debounce and retry delays are waited for, in no wall time.
@pytest.mark.looptime
async def test_queue_coalesces_a_burst_into_one_run(looptime: float) -> None:
    runs: list[tuple[str, str, str]] = []

    async def run(namespace: str, name: str, trigger: str) -> float | None:
        runs.append((namespace, name, trigger))
        return None

    queue = WakeupQueue(run, debounce_s=CHILD_DEBOUNCE_S)
    for _ in range(30):
        queue.schedule("ns", "demo", "child")
    queue.schedule("ns", "other", "resync")
    await _drained(queue)
    assert sorted(runs) == [("ns", "demo", "child"), ("ns", "other", "resync")]
    assert looptime >= CHILD_DEBOUNCE_S, "the runs waited for the debounce"


@pytest.mark.looptime
async def test_queue_runs_once_more_when_woken_during_a_run_and_retries_on_request(looptime: float) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def run(namespace: str, name: str, trigger: str) -> float | None:
        calls.append(trigger)
        if len(calls) == 1:
            started.set()
            await release.wait()
        if len(calls) == 2:
            return RETRY_S  # a transient failure: retry after RETRY_S
        return None

    queue = WakeupQueue(run, debounce_s=CHILD_DEBOUNCE_S)
    queue.schedule("ns", "demo", "create")
    await started.wait()
    queue.schedule("ns", "demo", "child")
    queue.schedule("ns", "demo", "child")
    release.set()
    await _drained(queue)
    assert calls == ["create", "child", "child"]
    assert looptime >= 2 * CHILD_DEBOUNCE_S + RETRY_S


@pytest.mark.looptime
async def test_a_failed_run_is_retried_as_what_it_was_with_what_joined_it(looptime: float) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def run(namespace: str, name: str, trigger: str) -> float | None:
        calls.append(trigger)
        if len(calls) == 1:
            started.set()
            await release.wait()
            return RETRY_S  # the creation failed for now
        return None

    queue = WakeupQueue(run, debounce_s=CHILD_DEBOUNCE_S)
    queue.schedule("ns", "demo", "create", delay=0)
    await started.wait()
    queue.schedule("ns", "demo", "child")  # a child's event during the failed creation
    release.set()
    await _drained(queue)
    assert calls == ["create", "create"]


@pytest.mark.looptime
async def test_queue_request_without_delay_cuts_a_backoff_short(looptime: float) -> None:
    calls: list[str] = []

    async def run(namespace: str, name: str, trigger: str) -> float | None:
        calls.append(trigger)
        return 300.0 if len(calls) == 1 else None  # the broken spec's long backoff

    queue = WakeupQueue(run, debounce_s=CHILD_DEBOUNCE_S)
    queue.schedule("ns", "demo", "create", delay=0)
    await asyncio.sleep(10)
    assert calls == ["create"]
    queue.schedule("ns", "demo", "child")  # an ordinary wake-up waits for the backoff ...
    await asyncio.sleep(10)
    assert calls == ["create"]
    queue.schedule("ns", "demo", "update", delay=0)  # ... a spec change does not
    await _drained(queue)
    assert calls == ["create", "update"]
    assert looptime < 60


@pytest.mark.looptime
async def test_queue_defers_a_status_refresh_until_the_counters_stop_moving(looptime: float) -> None:
    runs: list[tuple[str, float]] = []

    async def run(namespace: str, name: str, trigger: str) -> float | None:
        runs.append((trigger, round(float(looptime), 1)))
        return None

    queue = WakeupQueue(run, debounce_s=CHILD_DEBOUNCE_S, max_defer_s=10.0)
    for _ in range(4):  # a rollout's counters moving every second: one write, 2 s after the last
        queue.schedule("ns", "demo", STATUS_TRIGGER, delay=2.0)
        await asyncio.sleep(1.0)
    await _drained(queue)
    assert runs == [(STATUS_TRIGGER, 5.0)]
    runs.clear()
    for _ in range(30):  # never quiet: deferred at most max_defer_s
        queue.schedule("ns", "demo", STATUS_TRIGGER, delay=2.0)
        await asyncio.sleep(1.0)
    await _drained(queue)
    assert [trigger for trigger, _ in runs] == [STATUS_TRIGGER] * 3
    times = [5.0] + [at for _, at in runs]  # a run at most max_defer_s after the first request since
    assert all(later - earlier <= 10.0 + 1.0 for earlier, later in itertools.pairwise(times)), times


def _mesh(generation: int, *, paused: str | None = None, reported: str | None = None) -> dict[str, Any]:
    annotations = {PAUSED_ANNOTATION: paused} if paused is not None else {}
    conditions = [{"type": "Paused", "status": reported}] if reported is not None else []
    return {
        "metadata": {"name": "demo", "generation": generation, "annotations": annotations},
        "status": {"conditions": conditions},
    }


@pytest.mark.parametrize(
    ("body", "known", "listing", "expected"),
    [
        pytest.param(_mesh(1), None, False, "create", id="new"),
        pytest.param(_mesh(3), None, True, "resume", id="start-up-listing"),
        pytest.param(_mesh(2), 1, False, "update", id="new-generation"),
        pytest.param(_mesh(2), 2, False, None, id="status-or-label-write"),
        pytest.param(_mesh(2, paused="true"), 2, False, "pause", id="paused"),
        pytest.param(_mesh(2, reported="True"), 2, False, "pause", id="resumed"),
        pytest.param(_mesh(2, paused="true", reported="True"), 2, False, None, id="still-paused"),
        pytest.param(
            {"metadata": {"name": "demo", "generation": 2, "deletionTimestamp": "x"}},
            None,
            False,
            None,
            id="being-deleted",
        ),
    ],
)
def test_mesh_trigger(body: dict[str, Any], known: int | None, listing: bool, expected: str | None) -> None:
    assert mesh_trigger(body, known, listing=listing) == expected


async def test_queue_close_cancels_pending_work() -> None:
    async def run(namespace: str, name: str, trigger: str) -> float | None:
        raise AssertionError("must not run")

    queue = WakeupQueue(run, debounce_s=60)
    queue.schedule("ns", "demo", "child")
    await queue.close()
    queue.schedule("ns", "demo", "child")
    assert queue.pending() == 0


async def _drained(queue: WakeupQueue) -> None:
    # Polled: the queue has no completion event (nothing in the operator needs one).
    await eventually_async(lambda: not queue.pending(), what="the queue to drain", interval_s=0.005)
