"""spec.history.backup → the history StatefulSet's snapshot settings and volume, and the backups' own
PVC; and the NATS monitoring endpoints the history service reads (NATS_MONITOR_URLS)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic.fields import FieldInfo

from actormesh_operator.api.spec import HistoryBackupSpec, InvalidSpec
from actormesh_runtime.settings import RuntimeSettings
from tests.unit.builder_helpers import children, container, env_of, index, make_mesh

BACKUP_ENV = (
    "HISTORY_BACKUP_DIR",
    "HISTORY_BACKUP_INTERVAL_S",
    "HISTORY_BACKUP_RETENTION",
    "HISTORY_BACKUP_PRE_MIGRATION_RETENTION",
    "HISTORY_BACKUP_PRE_MIGRATION_MAX_AGE_DAYS",
)


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


PRE_MIGRATION = {  # spec.history.backup field → the runtime setting it sets
    "pre_migration_retention": "history_backup_pre_migration_retention",
    "pre_migration_max_age_days": "history_backup_pre_migration_max_age_days",
}


@pytest.mark.parametrize("spec_field", sorted(PRE_MIGRATION))
def test_pre_migration_fields_have_the_runtime_default_and_bounds(spec_field: str) -> None:
    """The builder leaves a field out at its default, so the defaults must be the runtime's; the CRD's
    bounds are the runtime's, so what the API server accepts the pod starts with."""
    ours, theirs = (
        HistoryBackupSpec.model_fields[spec_field],
        RuntimeSettings.model_fields[PRE_MIGRATION[spec_field]],
    )
    assert (ours.annotation, ours.default) == (theirs.annotation, theirs.default)
    assert _bounds(ours) == _bounds(theirs)


def _bounds(field: FieldInfo) -> dict[str, Any]:
    return {
        k: getattr(m, k)
        for m in field.metadata
        for k in ("ge", "gt", "le", "lt")
        if getattr(m, k, None) is not None
    }


@pytest.mark.parametrize(
    "backup",
    [{}, {"preMigrationRetention": 1, "preMigrationMaxAgeDays": 30}],
    ids=["unset", "defaults-spelled-out"],
)
def test_pre_migration_copies_at_the_defaults_leave_the_pod_as_before(backup: dict[str, Any]) -> None:
    """Left out, the runtime's defaults (1 copy, 30 days) apply: a mesh with backups on before these
    fields existed keeps its history pod template, so an operator upgrade does not restart it."""
    env = env_of(_history({"history": {"backup": {"enabled": True, **backup}}}))
    assert not {"HISTORY_BACKUP_PRE_MIGRATION_RETENTION", "HISTORY_BACKUP_PRE_MIGRATION_MAX_AGE_DAYS"} & set(
        env
    )
    assert "HISTORY_BACKUP_RETENTION" in env


@pytest.mark.parametrize(
    ("days", "rendered"), [(90, 90.0), (0, 0.0), (0.5, 0.5)], ids=["days", "no-limit", "hours"]
)
def test_pre_migration_copies_are_set_from_the_spec(days: float, rendered: float) -> None:
    """(Read back by the runtime's own settings in test_builders_runtime_contract.py.)"""
    backup = {"enabled": True, "preMigrationRetention": 3, "preMigrationMaxAgeDays": days}
    env = env_of(_history({"history": {"backup": backup}}))
    assert env["HISTORY_BACKUP_PRE_MIGRATION_RETENTION"] == "3"
    assert float(env["HISTORY_BACKUP_PRE_MIGRATION_MAX_AGE_DAYS"]) == rendered


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
        ({"preMigrationRetention": 0}, r"spec\.history\.backup\.preMigrationRetention"),
        ({"preMigrationRetention": 101}, r"spec\.history\.backup\.preMigrationRetention"),
        ({"preMigrationMaxAgeDays": -1}, r"spec\.history\.backup\.preMigrationMaxAgeDays"),
        ({"preMigrationMaxAgeDays": 36501}, r"spec\.history\.backup\.preMigrationMaxAgeDays"),
    ],
    ids=[
        "claim-and-storage",
        "seconds",
        "zero",
        "no-retention",
        "no-pre-migration-copy",
        "too-many-pre-migration-copies",
        "negative-age",
        "over-a-century",
    ],
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
