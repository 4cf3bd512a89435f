"""Which copies taken before migrations (`pre-migration-v<old>-to-v<new>-<time>.db`) stay, on real SQLite
files: the newest `HISTORY_BACKUP_PRE_MIGRATION_RETENTION`; none older than
`HISTORY_BACKUP_PRE_MIGRATION_MAX_AGE_DAYS` once a newer snapshot exists (each is a whole copy of the
store, customers erased since included); and never the copy the previous release can restore after the
running release's migration, however many copies a migration killed halfway takes at its next starts."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actormesh_runtime.history import backup
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.history.store import MIGRATIONS, SCHEMA_VERSION
from actormesh_runtime.settings import RuntimeSettings
from tests.support.history_stores import OLD_TURNS, PREVIOUS_SCHEMA, make_old_store, schema_version


class Killed(Exception):
    """The history pod killed right after its copy was written, before (or during) the migration."""


def service(tmp_path: Path, **settings: object) -> HistoryService:
    return HistoryService(
        RuntimeSettings(
            mesh_name="keep",
            sqlite_db_path=str(tmp_path / "data" / "conversations.db"),
            history_backup_dir=str(tmp_path / "backups"),
            **settings,  # type: ignore[arg-type]
        )
    )


def migrate_one_step(db: Path) -> None:
    """What a kill during the second migration leaves: the first one committed (each is a transaction)."""
    version = schema_version(db)
    with sqlite3.connect(db) as conn:
        conn.executescript(f"BEGIN; {MIGRATIONS[version]} PRAGMA user_version = {version + 1}; COMMIT;")


async def start_killed_after_the_copy(history: HistoryService) -> None:
    snapshot = history.store.before_migrating
    assert snapshot is not None

    async def killed(old: int, new: int) -> None:
        await snapshot(old, new)
        raise Killed

    history.store.before_migrating = killed
    with pytest.raises(Killed):
        await history.store.open()
    await history.store.close()


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_a_migration_killed_halfway_keeps_the_copy_the_previous_release_restores(
    tmp_path: Path,
) -> None:
    backups = tmp_path / "backups"
    first = service(tmp_path)
    make_old_store(first.store.path, PREVIOUS_SCHEMA)
    await start_killed_after_the_copy(first)
    [way_back] = backup.list_pre_migration_snapshots(backups)
    migrate_one_step(first.store.path)  # killed during the second migration
    await start_killed_after_the_copy(service(tmp_path))  # and again, at the version it stopped at

    last = service(tmp_path)
    await last.store.open()
    await last.store.close()

    assert schema_version(last.store.path) == SCHEMA_VERSION
    # The previous release's restore accepts it (it refuses the copies at the version in between).
    assert way_back.path.exists(), "the only copy the previous release can restore was pruned"
    assert backup.verify_snapshot(way_back.path, max_schema=PREVIOUS_SCHEMA) == OLD_TURNS
    kept = backup.list_pre_migration_snapshots(backups)
    assert [(k.from_version, k.to_version) for k in kept] == [
        (PREVIOUS_SCHEMA, SCHEMA_VERSION),
        (PREVIOUS_SCHEMA + 1, SCHEMA_VERSION),
    ]
    assert kept[0].path == way_back.path
    with pytest.raises(backup.RestoreError, match="is newer than this runtime's"):
        backup.verify_snapshot(kept[1].path, max_schema=PREVIOUS_SCHEMA)
    assert names(backups) == sorted([*(k.path.name for k in kept), *(f"{k.path.name}.sha256" for k in kept)])


@pytest.mark.parametrize("keep", [1, 3])
async def test_the_newest_copies_are_kept_as_many_as_the_setting_says(tmp_path: Path, keep: int) -> None:
    db, backups = tmp_path / "old.db", tmp_path / "backups"
    make_old_store(db, PREVIOUS_SCHEMA)
    retention = backup.PreMigrationRetention(schema_version=SCHEMA_VERSION, keep=keep)
    taken = [
        await backup.take_pre_migration_snapshot(
            db, backups, PREVIOUS_SCHEMA, SCHEMA_VERSION, retention=retention
        )
        for _ in range(keep + 2)
    ]

    kept = backup.list_pre_migration_snapshots(backups)
    assert [k.path for k in kept] == taken[-keep:]
    assert sorted(backups.glob("*.sha256")) == [backup.checksum_path(k.path) for k in kept]


async def test_a_copy_past_its_age_goes_once_a_newer_snapshot_exists(tmp_path: Path) -> None:
    db, backups = tmp_path / "old.db", tmp_path / "backups"
    make_old_store(db, PREVIOUS_SCHEMA)
    upgraded = datetime.now(UTC) - timedelta(days=31)
    retention = backup.PreMigrationRetention(schema_version=SCHEMA_VERSION, max_age_days=30)
    old = await backup.take_pre_migration_snapshot(
        db, backups, PREVIOUS_SCHEMA, SCHEMA_VERSION, retention=retention, now=upgraded
    )

    # The only copy of the store there is: kept, however old.
    assert backup.prune_pre_migration_snapshots(backups, retention) == []
    loop = backup.BackupLoop(db, backups, interval_s=3600, keep=3, pre_migration=retention)
    assert await loop.run_once()

    [snapshot] = backup.list_snapshots(backups)
    assert names(backups) == sorted([snapshot.path.name, f"{snapshot.path.name}.sha256"])
    assert not old.exists()


async def test_without_an_age_limit_a_copy_stays_until_newer_copies_replace_it(tmp_path: Path) -> None:
    db, backups = tmp_path / "old.db", tmp_path / "backups"
    make_old_store(db, PREVIOUS_SCHEMA)
    retention = backup.PreMigrationRetention(schema_version=SCHEMA_VERSION, max_age_days=0)
    long_ago = datetime.now(UTC) - timedelta(days=3650)
    old = await backup.take_pre_migration_snapshot(
        db, backups, PREVIOUS_SCHEMA, SCHEMA_VERSION, retention=retention, now=long_ago
    )
    loop = backup.BackupLoop(db, backups, interval_s=3600, keep=3, pre_migration=retention)
    assert await loop.run_once()
    assert [k.path for k in backup.list_pre_migration_snapshots(backups)] == [old]


async def test_after_a_rollback_the_way_back_from_the_running_schema_outlives_a_newer_copy(
    tmp_path: Path,
) -> None:
    """Release 12 took A (v10 → v12); release 13 took B (v12 → v13) and was rolled back by restoring B:
    release 12 runs again, and A is still its way back to release 10."""
    db, backups = tmp_path / "old.db", tmp_path / "backups"
    make_old_store(db, PREVIOUS_SCHEMA)
    running = backup.PreMigrationRetention(schema_version=SCHEMA_VERSION, keep=1)
    a = await backup.take_pre_migration_snapshot(
        db, backups, PREVIOUS_SCHEMA, SCHEMA_VERSION, retention=running
    )
    b = await backup.take_pre_migration_snapshot(
        db, backups, SCHEMA_VERSION, SCHEMA_VERSION + 1, retention=running
    )

    assert backup.prune_pre_migration_snapshots(backups, running) == []
    assert [k.path for k in backup.list_pre_migration_snapshots(backups)] == [a, b]

    # Once release 13 runs (its schema), A is no one's way back: only the newest stays.
    upgraded = running.model_copy(update={"schema_version": SCHEMA_VERSION + 1})
    assert backup.prune_pre_migration_snapshots(backups, upgraded) == [a]
    assert [k.path for k in backup.list_pre_migration_snapshots(backups)] == [b]


def test_the_settings_give_the_retention(tmp_path: Path) -> None:
    history = service(
        tmp_path, history_backup_pre_migration_retention=4, history_backup_pre_migration_max_age_days=7.5
    )
    assert history._pre_migration() == backup.PreMigrationRetention(
        schema_version=SCHEMA_VERSION, keep=4, max_age_days=7.5
    )
