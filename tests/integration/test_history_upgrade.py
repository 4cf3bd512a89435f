"""An upgrade of the history store and its way back, through the real parts: the history service (on a
real nats-server) starts over a store the previous release left (schema 10, before migrations 11 and
12), snapshots it, migrates it and answers its conversations as before while it stores new turns; the
snapshot is what the previous release can use again: `actormesh history restore` (the real command)
puts it back, schema 10 with every old turn, and the service migrates it again on its next start."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import uuid
from pathlib import Path
from typing import Any

import nats
import pytest

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.history import backup
from actormesh_runtime.history.protocol import HistoryClient
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.history.store import SCHEMA_VERSION
from actormesh_runtime.settings import RuntimeSettings
from tests.support.cli_process import acommunicate
from tests.support.envelopes import history_event
from tests.support.eventually import eventually_async
from tests.support.history_stores import (
    OLD_SESSIONS,
    OLD_TURNS,
    PREVIOUS_SCHEMA,
    make_old_store,
    old_session,
    schema_version,
)

pytestmark = pytest.mark.integration


async def _conversations(nats_url: str, subjects: Subjects, sessions: list[str]) -> dict[str, list[str]]:
    nc = await nats.connect(nats_url)
    try:
        client = HistoryClient(nc, subjects)
        return {s: [t["text"] for t in await client.conversation(s)] for s in sessions}
    finally:
        await nc.close()


async def test_an_upgraded_store_answers_as_before_and_its_snapshot_restores_the_old_one(
    nats_server: str, tmp_path: Path
) -> None:
    settings = RuntimeSettings(
        mesh_name=f"up{uuid.uuid4().hex[:10]}",
        nats_url=nats_server,
        sqlite_db_path=str(tmp_path / "data" / "conversations.db"),
        history_backup_dir=str(tmp_path / "backups"),
        history_backup_interval_s=3600,
        queue_metrics_interval_s=0,
    )
    subjects = Subjects(settings.mesh_name)
    db, backups = Path(settings.sqlite_db_path), Path(str(settings.history_backup_dir))
    make_old_store(db, PREVIOUS_SCHEMA)
    old_sessions = [old_session(s) for s in range(OLD_SESSIONS)]
    with sqlite3.connect(db) as conn:
        written_before = {
            s: [
                str(r[0])
                for r in conn.execute("SELECT text FROM turns WHERE session_id = ? ORDER BY id", (s,))
            ]
            for s in old_sessions
        }

    service = HistoryService(settings)
    await service.start()
    try:
        assert schema_version(db) == SCHEMA_VERSION
        assert await _conversations(nats_server, subjects, old_sessions) == written_before
        nc = await nats.connect(nats_server)
        try:
            event = history_event("after-the-upgrade", "new-session")
            await nc.jetstream().publish(subjects.history_events, event.model_dump_json().encode())
            client = HistoryClient(nc, subjects)

            async def new_turns() -> list[dict[str, Any]] | None:
                return await client.conversation("new-session") or None

            stored = await eventually_async(new_turns, what="a turn stored after the upgrade", timeout_s=30)
            assert [t["role"] for t in stored] == ["customer", "agent"]
        finally:
            await nc.close()
    finally:
        await service.stop()

    [before_upgrade] = backup.list_pre_migration_snapshots(backups)
    assert schema_version(before_upgrade.path) == PREVIOUS_SCHEMA
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "actormesh_runtime.cli", "history", "restore",
        "--from", str(before_upgrade.path), "--db", str(db),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await acommunicate(proc, 60)
    assert proc.returncode == 0, out.decode()
    assert f"{OLD_TURNS} turns" in out.decode()
    # What the previous release would open again: its schema, its turns, none written since.
    assert schema_version(db) == PREVIOUS_SCHEMA
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM turns WHERE session_id = 'new-session'").fetchone()[0] == 0

    again = HistoryService(settings)
    await again.start()
    try:
        assert schema_version(db) == SCHEMA_VERSION
        assert await _conversations(nats_server, subjects, old_sessions) == written_before
    finally:
        await again.stop()
    # The copy of this upgrade replaced the first one (HISTORY_BACKUP_PRE_MIGRATION_RETENTION, 1): both
    # hold the store as the previous release left it.
    [again_before] = backup.list_pre_migration_snapshots(backups)
    assert again_before.path != before_upgrade.path
    assert schema_version(again_before.path) == PREVIOUS_SCHEMA
