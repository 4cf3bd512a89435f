"""A history store as an earlier release left it: the schema of its version (the shipped migrations are
never edited, so `MIGRATIONS[:version]` is that release's schema) with conversations, an escalation and
an approval request in it, written with SQL as that release's columns were."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from actormesh_runtime.history.store import MIGRATIONS

OLD_SESSIONS = 3
OLD_MESSAGES_PER_SESSION = 4
OLD_TURNS = 2 * OLD_SESSIONS * OLD_MESSAGES_PER_SESSION
WHEN = "2026-12-01T10:00:00+00:00"
DEADLINE = "2999-01-01T00:00:00+00:00"
"""The approval request's: never overdue, so the service's deadline sweep leaves its record (only its
columns are real here) alone."""


PREVIOUS_SCHEMA = 10
"""The schema of the release before migrations 11 and 12."""


def schema_version(path: Path) -> int:
    """The store file's `PRAGMA user_version`, read without the store's code."""
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def old_session(number: int) -> str:
    return f"old-session-{number}"


def make_old_store(path: Path, version: int) -> None:
    """A store at schema `version` (10 or later: escalations and approvals as they have been since)."""
    assert 10 <= version < len(MIGRATIONS)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        for number in range(version):
            db.executescript(f"BEGIN; {MIGRATIONS[number]} PRAGMA user_version = {number + 1}; COMMIT;")
        for s in range(OLD_SESSIONS):
            email = f"customer{s}@example.com"
            db.execute(
                "INSERT INTO session_owners (session_id, customer_email, created_at) VALUES (?, ?, ?)",
                (old_session(s), email, WHEN),
            )
            for m in range(OLD_MESSAGES_PER_SESSION):
                for role, text in (("customer", f"question {m}"), ("agent", f"answer {m}")):
                    db.execute(
                        "INSERT INTO turns (session_id, message_id, role, customer_email, text, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (old_session(s), f"old-{s}-{m}", role, email, text, WHEN),
                    )
        db.execute(
            "INSERT INTO escalations (ref, session_id, message_id, customer_email, reason, priority,"
            " priority_rank, summary, state, created_at) VALUES"
            " ('ESC-0ld00001', ?, 'old-0-3', 'customer0@example.com', 'human_requested', 'normal', 2,"
            " 'asked for a person', 'open', ?)",
            (old_session(0), WHEN),
        )
        db.execute(
            "INSERT INTO approvals (id, session_id, customer_email, state, priority_rank, deadline_at,"
            " created_at, record) VALUES ('APR-0ld00001', ?, 'customer1@example.com', 'pending', 2, ?, ?, ?)",
            (old_session(1), DEADLINE, WHEN, json.dumps({"id": "APR-0ld00001"})),
        )
        db.commit()
    finally:
        db.close()
