"""History backups through the real parts: the history service (on a real nats-server) stores turns and
takes snapshots of its SQLite file while it runs; the database is then corrupted or deleted, and
`actormesh history restore` (the real command, in a subprocess) brings every turn back. The restore
refuses while the service holds the database, and refuses a damaged snapshot without touching anything.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.history import backup
from actormesh_runtime.history.protocol import HistoryClient, request_erasure
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.history.store import SCHEMA_VERSION, HistoryStore
from actormesh_runtime.settings import RuntimeSettings
from tests.support.cli_process import acommunicate
from tests.support.envelopes import history_event
from tests.support.eventually import eventually_async
from tests.support.history_stores import PREVIOUS_SCHEMA, make_old_store

pytestmark = pytest.mark.integration

SESSIONS = 4
MESSAGES_PER_SESSION = 3


def _settings(nats_url: str, tmp_path: Path) -> RuntimeSettings:
    return RuntimeSettings(
        mesh_name=f"bk{uuid.uuid4().hex[:10]}",
        nats_url=nats_url,
        sqlite_db_path=str(tmp_path / "data" / "conversations.db"),
        history_backup_dir=str(tmp_path / "backups"),
        history_backup_interval_s=3600,
        history_backup_retention=3,
        queue_metrics_interval_s=0,
    )


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "actormesh_runtime.cli", "history", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await acommunicate(proc, 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _publish_turns(nats_url: str, subjects: Subjects) -> list[str]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        ids = []
        for s in range(SESSIONS):
            for m in range(MESSAGES_PER_SESSION):
                message_id = f"msg-{s}-{m}"
                event = history_event(message_id, f"session-{s}")
                await js.publish(subjects.history_events, event.model_dump_json().encode())
                ids.append(message_id)
        return ids
    finally:
        await nc.close()


async def _all_turns(nats_url: str, subjects: Subjects) -> dict[str, list[str]]:
    """message_id → roles, over every session, as the service answers them."""
    nc = await nats.connect(nats_url)
    try:
        client = HistoryClient(nc, subjects)
        found: dict[str, list[str]] = {}
        for s in range(SESSIONS):
            for turn in await client.conversation(f"session-{s}"):
                found.setdefault(turn["message_id"], []).append(turn["role"])
        return found
    finally:
        await nc.close()


def _newest(directory: Path) -> Path | None:
    snapshots = backup.list_snapshots(directory)
    return snapshots[-1].path if snapshots else None


async def _new_snapshot(service: HistoryService, directory: Path, *, trigger: bool = True) -> Path:
    """Ask for a snapshot (unless the service takes one by itself) and wait until a newer one is there."""
    assert service.backups is not None
    previous = _newest(directory)
    if trigger:
        service.backups.trigger()

    def taken() -> Path | None:
        newest = _newest(directory)
        return newest if newest != previous else None

    return await eventually_async(taken, what="a new snapshot", timeout_s=30)


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _dated(copy: Path, at: datetime) -> Path:
    """The copy taken before a migration, renamed (with its checksum) as if it had been taken `at`."""
    dated = copy.with_name(backup.pre_migration_name(PREVIOUS_SCHEMA, SCHEMA_VERSION, at))
    digest = backup.checksum_path(copy).read_text().split()[0]
    copy.rename(dated)
    backup.checksum_path(copy).unlink()
    backup.checksum_path(dated).write_text(f"{digest}  {dated.name}\n")
    return dated


def _files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def _damage(db: Path, how: str) -> None:
    for side in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        side.unlink(missing_ok=True)
    if how == "deleted":
        db.unlink()
        return
    size = db.stat().st_size
    with db.open("r+b") as handle:  # clobber everything after the header page: the tables are gone
        handle.seek(4096)
        handle.write(os.urandom(size - 4096))


@pytest.mark.parametrize("how", ["corrupted", "deleted"])
async def test_snapshot_then_restore_brings_every_turn_back(
    nats_server: str, tmp_path: Path, how: str
) -> None:
    settings = _settings(nats_server, tmp_path)
    subjects = Subjects(settings.mesh_name)
    db, backups = Path(settings.sqlite_db_path), Path(str(settings.history_backup_dir))

    service = HistoryService(settings)
    await service.start()
    try:
        # With none on disk, the service takes the first at start, before any turn exists.
        await eventually_async(lambda: _newest(backups) is not None, what="the first snapshot", timeout_s=30)
        ids = await _publish_turns(nats_server, subjects)

        async def stored() -> dict[str, list[str]] | None:
            found = await _all_turns(nats_server, subjects)
            return found if len(found) == len(ids) else None

        before = await eventually_async(stored, what="every turn stored", timeout_s=30)
        snapshot = await _new_snapshot(service, backups)
        assert backup.LAST_SUCCESS._value.get() > 0

        code, out = await _cli("restore", "--from", str(snapshot), "--db", str(db))
        assert code == 1, out
        assert "held by a running history service" in out
        # A snapshot on demand from another process (kubectl exec), next to the running writer.
        code, out = await _cli("snapshot", "--db", str(db), "--dir", str(backups))
        assert code == 0, out
        on_demand = _newest(backups)
        assert on_demand is not None
        assert on_demand != snapshot
        assert backup.verify_snapshot(on_demand, max_schema=SCHEMA_VERSION) == len(ids) * 2
    finally:
        await service.stop()

    code, listing = await _cli("backups", "--dir", str(backups))
    assert code == 0, listing
    assert str(snapshot) in listing
    assert len(listing.strip().splitlines()) == 3

    _damage(db, how)
    code, out = await _cli("restore", "--from", str(snapshot), "--db", str(db))
    assert code == 0, out
    assert f"{len(ids) * 2} turns" in out

    restarted = HistoryService(settings)
    await restarted.start()
    try:
        after = await _all_turns(nats_server, subjects)
    finally:
        await restarted.stop()
    assert after == before
    assert all(roles == ["customer", "agent"] for roles in after.values())


async def test_a_damaged_snapshot_is_refused_and_nothing_changes(nats_server: str, tmp_path: Path) -> None:
    settings = _settings(nats_server, tmp_path)
    db, backups = Path(settings.sqlite_db_path), Path(str(settings.history_backup_dir))
    async with HistoryService(settings):
        await eventually_async(lambda: _newest(backups) is not None, what="the first snapshot", timeout_s=30)
        snapshot = _newest(backups)
    assert snapshot is not None
    original = _read(db)
    _damage(snapshot, "corrupted")

    code, out = await _cli("restore", "--from", str(snapshot), "--db", str(db))

    assert code == 1, out
    assert "integrity check failed" in out or "not a usable SQLite database" in out
    assert _read(db) == original
    assert not list(db.parent.glob("*.before-restore-*"))


async def test_retention_keeps_the_newest_snapshots(nats_server: str, tmp_path: Path) -> None:
    settings = _settings(nats_server, tmp_path)
    backups = Path(str(settings.history_backup_dir))
    async with HistoryService(settings) as service:
        await eventually_async(lambda: _newest(backups) is not None, what="the first snapshot", timeout_s=30)
        taken = [_newest(backups)]
        for _ in range(3):
            taken.append(await _new_snapshot(service, backups))

    kept = [s.path for s in backup.list_snapshots(backups)]
    assert kept == taken[1:]  # retention 3: the oldest of four went


async def test_after_an_erasure_no_backup_keeps_the_customer_once_the_upgrade_copy_aged(
    nats_server: str, tmp_path: Path
) -> None:
    """An upgrade 31 days ago copied the store; customer0 then asked to be erased. The copy goes at the
    next scheduled snapshot (past `HISTORY_BACKUP_PRE_MIGRATION_MAX_AGE_DAYS`, a newer snapshot there),
    and once the snapshots from before the erasure rotate out, no file in the backup directory holds the
    customer: a snapshot written after the erasure has none of their records."""
    settings = _settings(nats_server, tmp_path).model_copy(update={"history_backup_retention": 1})
    subjects = Subjects(settings.mesh_name)
    db, backups = Path(settings.sqlite_db_path), Path(str(settings.history_backup_dir))
    erased, kept = "customer0@example.com", "customer1@example.com"
    make_old_store(db, PREVIOUS_SCHEMA)
    upgraded = datetime.now(UTC) - timedelta(days=31)
    copy = _dated(
        await backup.take_pre_migration_snapshot(db, backups, PREVIOUS_SCHEMA, SCHEMA_VERSION), upgraded
    )
    migrated = HistoryStore(db)  # the upgrade 31 days ago
    await migrated.open()
    await migrated.close()
    assert erased.encode() in _read(copy)

    async with HistoryService(settings) as service:
        first = await eventually_async(lambda: _newest(backups), what="the first snapshot", timeout_s=30)
        nc = await nats.connect(nats_server)
        try:
            counts = await request_erasure(nc, subjects, erased, dry_run=False)
        finally:
            await nc.close()
        assert counts.turns > 0
        after = await _new_snapshot(service, backups)

    assert not copy.exists()
    assert not first.exists()  # retention 1: the snapshot from before the erasure rotated out
    assert _files(backups) == [after, backup.checksum_path(after)]
    assert erased.encode() not in _read(after)
    assert kept.encode() in _read(after)
