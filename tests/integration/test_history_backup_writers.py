"""History snapshots written by two processes at once, and a snapshot writer killed while it publishes,
on real SQLite files in one backup directory, with the real `actormesh history` command in a subprocess.

The service's scheduled snapshot and an `actormesh history snapshot` run by hand (kubectl exec) share
the directory: the prune after one must not delete the other's unfinished files, and a crash at any
point of publishing must never leave a snapshot under its final name without its checksum.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from actormesh_runtime.history import backup
from actormesh_runtime.history.store import SCHEMA_VERSION, HistoryStore
from tests.support.cli_process import acommunicate
from tests.support.history_stores import OLD_TURNS, PREVIOUS_SCHEMA, make_old_store

pytestmark = pytest.mark.integration

HOOK_WAIT_S = 60.0
"""How long a held writer waits to be let go (a failing test, not a slow machine, reaches it)."""

CRASH_AFTER_RENAME = """
import asyncio, os, sys
from actormesh_runtime.history import backup

real_replace, renames = os.replace, []

def replace_then_crash(source, target):
    real_replace(source, target)
    renames.append(target)
    if len(renames) == int(sys.argv[3]):
        os._exit(17)  # killed right after this rename: no cleanup runs, as with SIGKILL or a power cut

os.replace = replace_then_crash
asyncio.run(backup.take_snapshot(sys.argv[1], sys.argv[2]))
"""


async def _store(tmp_path: Path) -> Path:
    """A real history store at the running schema, with turns in it."""
    db = tmp_path / "data" / "conversations.db"
    make_old_store(db, PREVIOUS_SCHEMA)
    store = HistoryStore(db)
    await store.open()
    await store.close()
    return db


async def _run(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await acommunicate(proc, 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _cli(*args: str) -> tuple[int, str]:
    return await _run(sys.executable, "-m", "actormesh_runtime.cli", "history", *args)


def _assert_every_snapshot_is_checked(backups: Path) -> list[Path]:
    """Every snapshot under its final name has its checksum, which matches; returns them."""
    snapshots = [s.path for s in backup.list_snapshots(backups)]
    for path in snapshots:
        assert backup.checksum_path(path).is_file(), f"{path.name} has no checksum"
        assert backup.verify_snapshot(path, max_schema=SCHEMA_VERSION) == OLD_TURNS
    return snapshots


def _hold_after(
    target: Callable[..., None], reached: threading.Event, go: threading.Event
) -> Callable[..., None]:
    """`target`, then wait (on the writer's thread) until the test lets it go."""

    def held(*args: object) -> None:
        target(*args)
        reached.set()
        assert go.wait(HOOK_WAIT_S), "the held snapshot writer was never let go"

    return held


def _hold_copy_after(
    target: Callable[[Path, Path], Awaitable[None]], reached: threading.Event, go: threading.Event
) -> Callable[[Path, Path], Awaitable[None]]:
    async def held(source: Path, temp: Path) -> None:
        await target(source, temp)
        reached.set()
        assert await asyncio.to_thread(go.wait, HOOK_WAIT_S), "the held snapshot writer was never let go"

    return held


@pytest.mark.parametrize("held_at", ["copied", "checksum-written"])
async def test_a_snapshot_by_hand_does_not_prune_the_one_the_service_is_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_at: str
) -> None:
    """The service's snapshot is held mid-write (its copy made, not yet published; or, where the checksum
    is written first, its checksum written and the snapshot not yet renamed); meanwhile the command
    takes a snapshot and prunes in another process. Both snapshots must end up whole and checked."""
    db, backups = await _store(tmp_path), tmp_path / "backups"
    reached, go = threading.Event(), threading.Event()
    if held_at == "copied":
        monkeypatch.setattr(backup, "_vacuum_into", _hold_copy_after(backup._vacuum_into, reached, go))
    else:
        monkeypatch.setattr(backup, "_write_checksum", _hold_after(backup._write_checksum, reached, go))
    service = asyncio.create_task(backup.take_snapshot(db, backups))
    try:
        assert await asyncio.to_thread(reached.wait, HOOK_WAIT_S), "the service's snapshot never got there"
        assert list(backups.glob(f"*{backup.TEMP_SUFFIX}")), "the service's snapshot is not mid-write"

        code, out = await _cli("snapshot", "--db", str(db), "--dir", str(backups))
        assert code == 0, out
    finally:
        go.set()
        written = await service

    snapshots = _assert_every_snapshot_is_checked(backups)
    assert written in snapshots
    assert len(snapshots) == 2
    backup.prune_snapshots(backups, keep=5)
    assert sorted(backups.iterdir()) == sorted([*snapshots, *map(backup.checksum_path, snapshots)])


@pytest.mark.parametrize("renames", [1, 2], ids=["after-the-first-rename", "after-the-second-rename"])
async def test_a_writer_killed_while_publishing_leaves_no_snapshot_without_its_checksum(
    tmp_path: Path, renames: int
) -> None:
    """Publishing renames two files into place (the snapshot, its checksum); the writer is killed right
    after either. A snapshot visible under its name is checked by its checksum, restore takes it, and
    the next prune clears what the dead writer left."""
    db, backups = await _store(tmp_path), tmp_path / "backups"

    code, out = await _run(sys.executable, "-c", CRASH_AFTER_RENAME, str(db), str(backups), str(renames))
    assert code == 17, out

    snapshots = _assert_every_snapshot_is_checked(backups)
    code, listing = await _cli("backups", "--dir", str(backups))
    assert code == 0, listing
    assert [line.split()[-1] for line in listing.splitlines()] == [str(p) for p in snapshots]
    for snapshot in snapshots:
        code, out = await _cli("restore", "--from", str(snapshot), "--db", str(tmp_path / "restored.db"))
        assert code == 0, out
        assert f"{OLD_TURNS} turns" in out

    backup.prune_snapshots(backups, keep=5)
    assert sorted(backups.iterdir()) == sorted([*snapshots, *map(backup.checksum_path, snapshots)])
