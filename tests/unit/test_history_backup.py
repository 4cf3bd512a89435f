"""Snapshot names, listing, retention and the writer lock (files only; the service and restore run against
real SQLite and NATS in tests/integration/test_history_backup.py)."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actormesh_runtime.cli import parse
from actormesh_runtime.history import backup

T0 = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)


def _touch(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_bytes(b"x")
    return path


def test_names_sort_by_time_and_parse_back(tmp_path: Path) -> None:
    times = [T0 + timedelta(hours=h, microseconds=h) for h in (3, 0, 2, 1)]
    for at in times:
        _touch(tmp_path, backup.snapshot_name(at))
    _touch(tmp_path, backup.snapshot_name(T0 + timedelta(hours=9)) + backup.TEMP_SUFFIX)
    _touch(tmp_path, "conversations.db")

    listed = backup.list_snapshots(tmp_path)

    assert [s.taken_at for s in listed] == sorted(times)


def test_prune_keeps_the_newest_and_drops_unfinished_ones(tmp_path: Path) -> None:
    paths = [_touch(tmp_path, backup.snapshot_name(T0 + timedelta(hours=h))) for h in range(5)]
    partial = _touch(tmp_path, backup.snapshot_name(T0) + backup.TEMP_SUFFIX)
    other = _touch(tmp_path, "notes.txt")

    removed = backup.prune_snapshots(tmp_path, keep=2)

    assert sorted(removed) == sorted([*paths[:3], partial])
    assert sorted(tmp_path.iterdir()) == sorted([*paths[3:], other])


def test_prune_leaves_what_a_writer_holds_and_takes_it_once_let_go(tmp_path: Path) -> None:
    """Another writer's unfinished copy (and the checksum it wrote before renaming it) stays while the
    writer holds it; once it lets go (or dies: the kernel lets go), both are leftovers and go."""
    copy = tmp_path / backup.pre_migration_name(10, 12, T0)
    temp = copy.with_name(copy.name + backup.TEMP_SUFFIX)
    held = backup._claim(temp)
    backup.checksum_path(copy).write_text("0" * 64 + f"  {copy.name}\n")
    retention = backup.PreMigrationRetention(schema_version=12)
    try:
        assert backup.prune_pre_migration_snapshots(tmp_path, retention, now=T0) == []
        assert sorted(tmp_path.iterdir()) == sorted([temp, backup.checksum_path(copy)])
    finally:
        os.close(held)

    assert backup.prune_pre_migration_snapshots(tmp_path, retention, now=T0) == [temp]
    assert sorted(tmp_path.iterdir()) == []


def test_the_writer_lock_is_exclusive_until_released(tmp_path: Path) -> None:
    first, second = backup.WriterLock(tmp_path / "h.db"), backup.WriterLock(tmp_path / "h.db")
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_verify_refuses_what_is_not_a_history_store(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)

    with pytest.raises(backup.RestoreError, match="schema version 0"):
        backup.verify_snapshot(empty, max_schema=3)
    with pytest.raises(backup.RestoreError, match="not a usable SQLite database"):
        backup.verify_snapshot(junk, max_schema=3)
    with pytest.raises(backup.RestoreError, match="no such snapshot"):
        backup.verify_snapshot(tmp_path / "missing.db", max_schema=3)


@pytest.mark.parametrize(
    ("argv", "action"),
    [
        (["history"], None),
        (["history", "--db", "/d/h.db"], None),
        (["history", "backups", "--dir", "/b"], "backups"),
        (["history", "snapshot", "--db", "/d/h.db", "--dir", "/b"], "snapshot"),
        (["history", "restore", "--from", "/b/s.db", "--db", "/d/h.db", "--force"], "restore"),
    ],
    ids=["serve", "serve-with-db", "list", "snapshot", "restore"],
)
def test_history_command_line(argv: list[str], action: str | None) -> None:
    parsed = parse(argv)
    assert not isinstance(parsed, int)
    _, args = parsed
    assert args.action == action
    if action == "restore":
        assert (args.snapshot, args.db, args.force) == ("/b/s.db", "/d/h.db", True)


def _store(path: Path, turns: int) -> Path:
    """A minimal history store file (schema v1's table is enough for the checks restore makes)."""
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE TABLE turns (id INTEGER PRIMARY KEY, text TEXT)")
        db.executemany("INSERT INTO turns (text) VALUES (?)", [(f"t{i}",) for i in range(turns)])
        db.execute("PRAGMA user_version = 1")
        db.commit()
    finally:
        db.close()
    return path


def _count(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM turns").fetchone()[0])
    finally:
        db.close()


def test_restore_refuses_a_held_database_unless_forced_and_keeps_the_old_one(tmp_path: Path) -> None:
    snapshot, db = _store(tmp_path / "snap.db", 4), _store(tmp_path / "live.db", 1)
    holder = backup.WriterLock(db)
    assert holder.acquire()
    try:
        with pytest.raises(backup.RestoreError, match="held by a running history service"):
            backup.restore(snapshot, db, max_schema=3)
        assert _count(db) == 1
        Path(f"{db}-wal").write_bytes(b"stale wal")  # after the read: closing would remove a stray one
        done = backup.restore(snapshot, db, max_schema=3, force=True)
    finally:
        holder.release()

    assert done.turns == 4
    assert done.kept_previous is not None
    assert Path(f"{done.kept_previous}-wal").read_bytes() == b"stale wal"  # before any open removes it
    assert not Path(f"{db}-wal").exists(), "a stale WAL must not be replayed into the restored file"
    assert _count(done.kept_previous) == 1
    assert _count(db) == 4
    assert db.stat().st_mode & 0o777 == 0o600


async def test_a_snapshot_whose_bytes_changed_inside_a_row_is_refused(tmp_path: Path) -> None:
    """SQLite keeps no checksums: a byte flipped inside a row (bit rot on the backup volume, a bad copy)
    passes `integrity_check`. Each snapshot is written with its sha256 beside it, which restore checks."""
    db = tmp_path / "live.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE turns (text TEXT)")
        conn.executemany(
            "INSERT INTO turns VALUES (?)", [(f"refund of 1{n:03d}.00 EUR",) for n in range(200)]
        )
        conn.execute("PRAGMA user_version = 1")
    snapshot = await backup.take_snapshot(db, tmp_path / "backups")
    checksum = backup.checksum_path(snapshot)
    assert checksum.read_text().split() == [backup._sha256(snapshot), snapshot.name]  # sha256sum's format
    assert backup.verify_snapshot(snapshot, max_schema=1) == 200

    data = bytearray(snapshot.read_bytes())
    at = data.index(b"refund of 1042.00")
    data[at + len("refund of 1")] = ord("9")  # 1042.00 becomes 1942.00
    snapshot.write_bytes(bytes(data))
    with sqlite3.connect(snapshot) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    with pytest.raises(backup.RestoreError, match="checksum mismatch"):
        backup.verify_snapshot(snapshot, max_schema=1)

    backup.prune_snapshots(tmp_path / "backups", keep=0)
    assert sorted((tmp_path / "backups").iterdir()) == []  # the checksum goes with its snapshot
    # A snapshot an earlier release pruned (it knows no checksums): its checksum goes at the next prune.
    orphan = backup.checksum_path(await backup.take_snapshot(db, tmp_path / "backups"))
    orphan.with_name(orphan.name.removesuffix(backup.CHECKSUM_SUFFIX)).unlink()
    backup.prune_snapshots(tmp_path / "backups", keep=3)
    assert not orphan.exists()


def test_a_snapshot_deleted_while_listed_is_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer's prune may delete a snapshot between the listing's look at it and its size."""
    kept = tmp_path / backup.snapshot_name(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    pruned = tmp_path / backup.snapshot_name(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    kept.write_bytes(b"kept")
    pruned.write_bytes(b"pruned")
    is_file = Path.is_file

    def pruned_right_after(path: Path) -> bool:
        found = is_file(path)
        if path == pruned:
            path.unlink()  # the other writer's prune, just then
        return found

    monkeypatch.setattr(Path, "is_file", pruned_right_after)

    assert [s.path for s in backup.list_snapshots(tmp_path)] == [kept]
