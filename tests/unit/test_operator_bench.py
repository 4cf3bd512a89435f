"""The operator bench's pure parts: audit-log parsing, /proc parsing, aggregation, report and plot data.

The bench itself (`make bench-operator`) is not run in the test suite; these are what its figures rest on.
"""

from __future__ import annotations

import json

import pytest
from bench.operator_bench import audit, procstat, stats
from bench.operator_bench.plot import series
from bench.operator_bench.scenario import Tracker, interleaved, rollout_settled

OPERATOR = "system:serviceaccount:actormesh-system:actormesh-operator"


def event(verb: str, stage: str, *, user: str = OPERATOR, resource: str = "deployments", **ref: str) -> str:
    return json.dumps(
        {
            "kind": "Event",
            "stage": stage,
            "verb": verb,
            "user": {"username": user},
            "requestURI": "/apis/keda.sh/v1alpha1" if not resource else f"/apis/apps/v1/{resource}?x=1",
            "objectRef": {"resource": resource, "namespace": "ns", **ref} if resource else None,
            "responseStatus": {"code": 200},
            "stageTimestamp": "2026-12-05T14:00:01.500000Z",
        }
    )


def test_audit_policy_logs_only_the_given_users_at_metadata_level() -> None:
    policy = audit.audit_policy([OPERATOR])
    assert policy["rules"][0] == {"level": "Metadata", "users": [OPERATOR]}
    assert policy["rules"][-1] == {"level": "None"}
    assert policy["omitStages"] == ["RequestReceived"]


def test_a_watch_counts_once_when_it_starts_and_other_verbs_when_they_complete() -> None:
    lines = [
        event("watch", "ResponseStarted"),
        event("watch", "ResponseComplete"),
        event("patch", "ResponseStarted"),
        event("patch", "ResponseComplete"),
        event("list", "ResponseComplete", user="admin"),
        "",
        '{"truncated',
    ]
    calls = audit.parse_lines(lines, OPERATOR)
    assert [c.label for c in calls] == ["watch deployments", "patch deployments"]
    assert calls[0].at == pytest.approx(1796479201.5)


def test_subresources_and_discovery_paths_are_named() -> None:
    lines = [
        event("patch", "ResponseComplete", resource="actormeshes", subresource="status"),
        event("get", "ResponseComplete", resource=""),
    ]
    assert [c.label for c in audit.parse_lines(lines, OPERATOR)] == [
        "patch actormeshes/status",
        "get /apis/keda.sh/v1alpha1",
    ]


def test_calls_are_windowed_and_counted_by_label() -> None:
    calls = [
        audit.ApiCall(at=t, verb=v, resource="secrets", namespace="", code=200)
        for t, v in [(1.0, "get"), (2.0, "get"), (2.5, "create"), (3.0, "get")]
    ]
    window = audit.between(calls, 1.5, 3.0)
    assert audit.by_label(window) == {"get secrets": 1, "create secrets": 1}
    assert list(audit.by_label(calls)) == ["get secrets", "create secrets"]


def test_proc_stat_cpu_counts_fields_after_the_last_parenthesis() -> None:
    # comm "(py (x) y)" contains spaces and parentheses; utime=250, stime=50 ticks.
    stat = "42 (py (x) y) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0 1000 0 0"
    assert procstat.cpu_seconds_from_stat(stat, ticks=100) == pytest.approx(3.0)


def test_proc_status_rss_in_bytes() -> None:
    assert procstat.rss_bytes_from_status("Name:\tpy\nVmRSS:\t  2048 kB\n") == 2048 * 1024
    assert procstat.rss_bytes_from_status("Name:\tzombie\n") == 0


def test_spread_and_per_mesh_durations() -> None:
    durations = stats.per_mesh_durations({"a": 10.0, "b": 10.0, "c": 11.0}, {"a": 10.5, "b": 12.0})
    assert sorted(durations) == [0.5, 2.0]
    assert stats.spread([0.5, 2.0, 1.0]) == {"p50_s": 1.0, "p99_s": 2.0, "max_s": 2.0}
    assert stats.spread([]) == {"p50_s": 0.0, "p99_s": 0.0, "max_s": 0.0}


def test_cpu_per_event_takes_out_the_idle_rate_and_never_goes_negative() -> None:
    assert stats.per_event_cpu_ms(cpu_s=0.30, wall_s=10.0, idle_rate=0.01, events=100) == pytest.approx(2.0)
    assert stats.per_event_cpu_ms(cpu_s=0.01, wall_s=10.0, idle_rate=0.01, events=100) == 0.0
    assert stats.per_event_cpu_ms(cpu_s=1.0, wall_s=1.0, idle_rate=0.0, events=0) == 0.0
    assert stats.core_percent(1.2, 120.0) == 1.0


def test_tracker_marks_a_mesh_when_all_its_children_and_its_generation_are_seen() -> None:
    tracker = Tracker(expected=2, meshes=1)

    def child(kind: str, name: str) -> dict[str, object]:
        return {"kind": kind, "metadata": {"name": name, "labels": {"app.kubernetes.io/instance": "m1"}}}

    tracker.child(child("Service", "m1-a"))
    tracker.child(child("Service", "m1-a"))  # a MODIFIED event of the same child
    assert "m1" not in tracker.children_at
    tracker.child(child("Deployment", "m1-a"))  # same name, other kind: a second child
    assert "m1" in tracker.children_at
    tracker.mesh({"metadata": {"name": "m1", "generation": 2}, "status": {"observedGeneration": 1}})
    assert not tracker.done.is_set()
    tracker.mesh({"metadata": {"name": "m1", "generation": 2}, "status": {"observedGeneration": 2}})
    assert tracker.done.is_set()


def test_interleaved_alternates_meshes() -> None:
    def deployment(mesh: str, name: str) -> dict[str, object]:
        return {"metadata": {"name": name, "labels": {"app.kubernetes.io/instance": mesh}}}

    objects = [deployment("a", "a-1"), deployment("a", "a-2"), deployment("b", "b-1")]
    assert interleaved(objects) == ["a-1", "b-1", "a-2"]


def results() -> dict[str, object]:
    def burst(meshes: int, seconds: float) -> dict[str, object]:
        return {
            "meshes": meshes,
            "children_per_mesh": 32,
            "children": {"p50_s": seconds / 2, "p99_s": seconds, "max_s": seconds},
            "observed": {"p50_s": seconds / 2, "p99_s": seconds, "max_s": seconds + 1},
            "requests_per_create": 36.0,
            "requests_by_label": {"patch deployments": 11},
            "cpu_s": meshes * 0.1,
            "control_plane_cpu_s": {"etcd": 0.25, "kube-apiserver": meshes * 0.3},
            "rss_bytes": 80_000_000,
        }

    return {
        "machine": {"cpu_model": "Xeon", "cores": 2, "memory_gib": 23.6, "load_avg": [1.0, 1.0, 1.0]},
        "load_avg_after": [2.0, 1.0, 1.0],
        "operator_label": "after",
        "bursts": [burst(10, 2.0), burst(1, 0.5)],
        "noop": {
            "events": 100,
            "requests": 0,
            "requests_per_event": 0.0,
            "cpu_ms_per_event": 0.4,
            "raw_cpu_ms_per_event": 0.5,
        },
        "idle": {
            "seconds": 120.0,
            "meshes": 100,
            "cpu_s": 0.6,
            "core_pct": 0.5,
            "requests": 0,
            "requests_by_label": {},
            "rss_bytes": 100_000_000,
        },
    }


def test_report_prints_machine_bursts_noop_and_idle() -> None:
    text = "\n".join(stats.report(results()))
    assert "Xeon, 2 cores" in text
    row = "    10 |            32 | 1.00 s / 2.00 s | 2.00 s | 1.00 s / 3.00 s | 36.0 | 1.00 s | 80 MB"
    assert row in text
    assert "control plane CPU in the same window: etcd 0.25 s, kube-apiserver 3.00 s" in text
    assert "0 API requests (0.00/event), 0.400 ms" in text
    assert "0.50 % of a core" in text


def test_plot_series_are_sorted_by_burst_size() -> None:
    s = series(results())
    assert s["meshes"] == [1, 10]
    assert s["observed_max"] == [1.5, 3.0]
    assert s["cpu_s"] == [0.1, 1.0]


def test_the_in_process_noop_measurement_runs_the_real_path_and_wakes_nobody() -> None:
    from bench.operator_bench.micro import noop_event_cpu_us

    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "m-gateway",
            "namespace": "ns",
            "resourceVersion": "7",
            "labels": {"app.kubernetes.io/instance": "m"},
            "ownerReferences": [
                {
                    "apiVersion": "actormesh.io/v1alpha1",
                    "kind": "ActorMesh",
                    "name": "m",
                    "uid": "u",
                    "controller": True,
                }
            ],
        },
        "spec": {"replicas": 1},
        "status": {"replicas": 1, "updatedReplicas": 1},
    }
    result = noop_event_cpu_us(live, events=20)
    assert result["events"] == 20
    assert result["woken"] == 0
    assert result["cpu_us_per_event"] >= 0


@pytest.mark.parametrize(
    ("generation", "status", "settled"),
    [
        pytest.param(1, {}, False, id="not-seen-by-its-controller"),
        pytest.param(2, {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2}, False, id="old-spec"),
        pytest.param(
            1, {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1}, False, id="pods-missing"
        ),
        pytest.param(
            1, {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2}, True, id="all-pods-made"
        ),
    ],
)
def test_a_rollout_is_settled_once_every_pod_of_the_current_spec_exists(
    generation: int, status: dict[str, int], settled: bool
) -> None:
    workload = {"metadata": {"generation": generation}, "spec": {"replicas": 2}, "status": status}
    assert rollout_settled(workload) is settled
