"""An upgrade of the history store as the history service meets it, on real SQLite files: a store an
earlier release left is copied into the backup directory before the first migration changes it (the
way back from the upgrade, restorable by that release), then migrated with its data whole; readiness
says it is migrating; no snapshot, no migration; a newer store is refused naming the way back; a failed
snapshot leaves no temporary file behind."""

from __future__ import annotations

import argparse
import errno
import json
import sqlite3
from pathlib import Path

import pytest

from actormesh_runtime.commands import history as history_command
from actormesh_runtime.history import backup
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.history.store import SCHEMA_VERSION, HistoryStore, SchemaTooNew
from actormesh_runtime.settings import RuntimeSettings
from tests.support.history_stores import (
    OLD_MESSAGES_PER_SESSION,
    OLD_TURNS,
    PREVIOUS_SCHEMA,
    make_old_store,
    old_session,
    schema_version,
)


def service(tmp_path: Path, *, backups: Path | None) -> HistoryService:
    settings = RuntimeSettings(
        mesh_name="upgrade",
        sqlite_db_path=str(tmp_path / "data" / "conversations.db"),
        history_backup_dir=str(backups) if backups is not None else None,
    )
    return HistoryService(settings)


def not_wal(path: Path) -> bool:
    """The file's header names the rollback journal (bytes 18 and 19 are 2 in a WAL database)."""
    header = path.read_bytes()[:20]
    return header[18] == header[19] == 1


def watch_readiness(history: HistoryService) -> list[list[str]]:
    """What /readyz said while the snapshot before the migration was taken."""
    seen: list[list[str]] = []
    snapshot = history.store.before_migrating
    assert snapshot is not None

    async def watching(old: int, new: int) -> None:
        seen.append(history.missing())
        await snapshot(old, new)

    history.store.before_migrating = watching
    return seen


async def test_an_old_store_is_snapshotted_before_it_is_migrated(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    history = service(tmp_path, backups=backups)
    make_old_store(history.store.path, PREVIOUS_SCHEMA)
    readiness = watch_readiness(history)

    await history.store.open()
    try:
        assert await history.store.schema_version() == SCHEMA_VERSION
        assert await history.store.count_turns() == OLD_TURNS
        turns = await history.store.conversation(old_session(2))
        assert [t.text for t in turns if t.role == "agent"] == [
            f"answer {m}" for m in range(OLD_MESSAGES_PER_SESSION)
        ]
        assert sum((await history.store.escalations.open_counts()).values()) == 1
        assert sum((await history.store.approvals.pending_counts()).values()) == 1
    finally:
        await history.store.close()

    assert f"store migrating from schema v{PREVIOUS_SCHEMA} to v{SCHEMA_VERSION}" in readiness[0]
    [taken] = backup.list_pre_migration_snapshots(backups)
    assert taken.path.name.startswith(f"pre-migration-v{PREVIOUS_SCHEMA}-to-v{SCHEMA_VERSION}-")
    # The store as the previous release left it: that release's restore accepts it, every turn in it.
    assert backup.verify_snapshot(taken.path, max_schema=PREVIOUS_SCHEMA) == OLD_TURNS
    assert schema_version(taken.path) == PREVIOUS_SCHEMA
    assert taken.path.stat().st_mode & 0o777 == 0o600
    assert not_wal(taken.path)  # self-contained (no -wal to go with it), like the scheduled snapshots
    # Not one of the scheduled snapshots: neither counted for the interval nor pruned with them.
    assert backup.list_snapshots(backups) == []
    backup.prune_snapshots(backups, keep=0)
    assert taken.path.exists()

    reopened = service(tmp_path, backups=backups)
    await reopened.store.open()  # current: nothing to migrate, no second snapshot
    await reopened.store.close()
    assert len(backup.list_pre_migration_snapshots(backups)) == 1


async def test_without_a_snapshot_the_store_is_not_migrated(tmp_path: Path) -> None:
    unusable = tmp_path / "backups"
    unusable.write_text("a file where the backup directory should be")
    history = service(tmp_path, backups=unusable)
    make_old_store(history.store.path, PREVIOUS_SCHEMA)

    with pytest.raises(
        RuntimeError, match=f"before migrating it from schema v{PREVIOUS_SCHEMA} to v{SCHEMA_VERSION}"
    ):
        await history.store.open()
    await history.store.close()

    assert schema_version(history.store.path) == PREVIOUS_SCHEMA
    assert history.store.migrating is None


async def test_a_failed_snapshot_removes_what_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = service(tmp_path, backups=tmp_path / "backups")
    make_old_store(history.store.path, PREVIOUS_SCHEMA)

    def full(temp: Path, final: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(backup, "_publish", full)
    with pytest.raises(RuntimeError, match="No space left on device"):
        await history.store.open()
    await history.store.close()
    loop = backup.BackupLoop(history.store.path, tmp_path / "backups", interval_s=3600, keep=3)
    assert await loop.run_once() is False

    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == []
    assert schema_version(history.store.path) == PREVIOUS_SCHEMA


async def test_without_a_backup_directory_the_store_is_migrated_and_a_warning_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history = service(tmp_path, backups=None)
    make_old_store(history.store.path, PREVIOUS_SCHEMA)
    await history.store.open()
    await history.store.close()
    assert schema_version(history.store.path) == SCHEMA_VERSION
    assert "migrated without a snapshot first" in caplog.text


async def test_a_new_store_takes_no_snapshot(tmp_path: Path) -> None:
    history = service(tmp_path, backups=tmp_path / "backups")
    await history.store.open()
    await history.store.close()
    assert backup.list_pre_migration_snapshots(tmp_path / "backups") == []


async def test_a_store_a_later_release_migrated_is_refused_naming_the_way_back(tmp_path: Path) -> None:
    db = tmp_path / "newer.db"
    make_old_store(db, PREVIOUS_SCHEMA)
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = HistoryStore(db)
    with pytest.raises(SchemaTooNew) as refused:
        await store.open()
    await store.close()
    message = str(refused.value)
    assert f"v{SCHEMA_VERSION + 1}, newer than this runtime (v{SCHEMA_VERSION})" in message
    assert f"pre-migration-v*-to-v{SCHEMA_VERSION + 1}-*.db" in message
    assert schema_version(db) == SCHEMA_VERSION + 1  # untouched

    with pytest.raises(backup.RestoreError, match="is newer than this runtime's"):
        backup.verify_snapshot(db, max_schema=SCHEMA_VERSION)


async def test_the_backups_command_lists_the_pre_migration_snapshots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "old.db"
    make_old_store(db, PREVIOUS_SCHEMA)
    scheduled = await backup.take_snapshot(db, tmp_path / "backups")
    before = await backup.take_pre_migration_snapshot(
        db, tmp_path / "backups", PREVIOUS_SCHEMA, SCHEMA_VERSION
    )
    settings = RuntimeSettings(mesh_name="upgrade", sqlite_db_path=str(db))
    args = argparse.Namespace(dir=str(tmp_path / "backups"), json=True)

    assert history_command._backups(settings, args) == 0

    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(entry["path"], entry["kind"]) for entry in listed] == [
        (str(scheduled), "scheduled"),
        (str(before), "pre-migration"),
    ]
