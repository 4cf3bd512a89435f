"""spec.history.backup → the history StatefulSet's snapshot settings and volume, and the backups' own
PVC; and the NATS monitoring endpoints the history service reads (NATS_MONITOR_URLS)."""

from __future__ import annotations

from typing import Any

import pytest

from actormesh_operator.api.spec import InvalidSpec
from tests.unit.builder_helpers import children, container, env_of, index, make_mesh

BACKUP_ENV = ("HISTORY_BACKUP_DIR", "HISTORY_BACKUP_INTERVAL_S", "HISTORY_BACKUP_RETENTION")


def _history(spec: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = index(children(spec))[("StatefulSet", "demo-history")]
    return obj


def _claim(spec: dict[str, Any]) -> dict[str, Any] | None:
    return index(children(spec)).get(("PersistentVolumeClaim", "demo-history-backups"))


def test_off_by_default_nothing_changes() -> None:
    sts = _history({})
    assert not set(BACKUP_ENV) & set(env_of(sts))
    assert [v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]] == ["tmp"]
    assert _claim({}) is None


@pytest.mark.parametrize(
    ("interval", "seconds"),
    [("30m", "1800"), ("6h", "21600"), ("1d", "86400")],
    ids=["minutes", "hours", "days"],
)
def test_enabled_sets_the_schedule_and_mounts_its_own_claim(interval: str, seconds: str) -> None:
    spec = {"history": {"backup": {"enabled": True, "interval": interval, "retention": 3}}}
    sts = _history(spec)
    env = env_of(sts)
    assert env["HISTORY_BACKUP_DIR"] == "/var/lib/actormesh-backups/shop/demo"
    assert env["HISTORY_BACKUP_INTERVAL_S"] == seconds
    assert env["HISTORY_BACKUP_RETENTION"] == "3"
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"] == {"claimName": "demo-history-backups"}
    mounts = {m["name"]: m["mountPath"] for m in container(sts)["volumeMounts"]}
    assert mounts["backups"] == "/var/lib/actormesh-backups"
    assert mounts["data"] == "/var/lib/actormesh"  # a different volume from the database's


def test_own_claim_is_sized_and_outlives_the_mesh_by_default() -> None:
    storage = {"size": "20Gi", "storageClassName": "slow"}
    claim = _claim({"history": {"backup": {"enabled": True, "storage": storage}}})
    assert claim is not None
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "slow",
    }
    assert "ownerReferences" not in claim["metadata"]  # Retain: never garbage-collected or pruned


def test_own_claim_goes_with_the_mesh_when_reclaim_policy_is_delete() -> None:
    spec = {"history": {"backup": {"enabled": True}}, "persistence": {"reclaimPolicy": "Delete"}}
    claim = _claim(spec)
    assert claim is not None
    assert claim["spec"]["resources"] == {"requests": {"storage": "5Gi"}}
    assert [o["kind"] for o in claim["metadata"]["ownerReferences"]] == ["ActorMesh"]


def test_existing_claim_is_mounted_and_none_is_created() -> None:
    spec = {"history": {"backup": {"enabled": True, "existingClaim": "team-backups"}}}
    volumes = {v["name"]: v for v in _history(spec)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"] == {"claimName": "team-backups"}
    assert _claim(spec) is None


@pytest.mark.parametrize(
    ("backup", "message"),
    [
        (
            {"existingClaim": "b", "storage": {"size": "1Gi"}},
            "spec.history.backup.existingClaim cannot be combined",
        ),
        ({"interval": "90s"}, "spec.history.backup.interval"),
        ({"interval": "0h"}, "spec.history.backup.interval"),
        ({"retention": 0}, "spec.history.backup.retention"),
    ],
    ids=["claim-and-storage", "seconds", "zero", "no-retention"],
)
def test_bad_backup_specs_name_the_field(backup: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        make_mesh({"history": {"backup": backup}})


@pytest.mark.parametrize(("replicas", "count"), [(1, 1), (3, 3)], ids=["single", "cluster"])
def test_history_reads_every_managed_nats_server_monitor(replicas: int, count: int) -> None:
    urls = env_of(_history({"nats": {"replicas": replicas}}))["NATS_MONITOR_URLS"].split(",")
    assert urls == [
        f"http://demo-nats-{i}.demo-nats-headless.shop.svc.cluster.local:8222" for i in range(count)
    ]


def test_no_nats_monitor_urls_for_an_external_nats() -> None:
    assert "NATS_MONITOR_URLS" not in env_of(_history({"nats": {"external": {"url": "nats://n.infra:4222"}}}))


def test_conversation_retention_is_off_by_default_and_set_from_the_spec() -> None:
    assert "HISTORY_RETENTION_DAYS" not in env_of(_history({}))
    assert env_of(_history({"history": {"retentionDays": 90}}))["HISTORY_RETENTION_DAYS"] == "90"


@pytest.mark.parametrize("days", [0, -1, 36501], ids=["zero", "negative", "over-a-century"])
def test_a_retention_outside_its_range_names_the_field(days: int) -> None:
    with pytest.raises(InvalidSpec, match=r"spec\.history\.retentionDays"):
        make_mesh({"history": {"retentionDays": days}})
