"""`actormesh history`: the conversation-history service, the single writer of the SQLite store.

Consumes history events from JetStream (durable consumer: nothing is lost while it restarts) and
answers reads over NATS request/reply. Serves /healthz, /readyz and /metrics on ACTOR_HTTP_PORT.
Run exactly one (in Kubernetes: a one-replica StatefulSet with a volume for SQLITE_DB_PATH).

`actormesh history backups` lists the snapshots in HISTORY_BACKUP_DIR (or `--dir`), those taken before
a migration last;
`actormesh history snapshot` takes one now (a reader: safe next to the running service);
`actormesh history restore --from SNAPSHOT [--db PATH] [--force]` verifies one and puts it in place of
the database (docs/backups.md: the procedure in Kubernetes). Neither needs NATS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actormesh_runtime.settings import RuntimeSettings

HELP = "Run the conversation-history service (the single SQLite writer)."


def _shared(parser: argparse.ArgumentParser) -> None:
    """The options accepted on either side of an action (`history --db X snapshot` = `history snapshot
    --db X`)."""
    from actormesh_runtime.commands.options import add_bus_options

    parser.add_argument(
        "--db", help="SQLite file (default: $SQLITE_DB_PATH or ./.actormesh/conversations.db)"
    )
    add_bus_options(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from actormesh_runtime.commands.options import add_subcommands

    _shared(parser)
    parser.add_argument("--http-port", type=int, help="/healthz /readyz /metrics port (0 = random)")
    add = add_subcommands(
        parser,
        "action",
        _shared,
        required=False,
        metavar="[ACTION]",
        title="actions (without one: run the service)",
    )
    listing = add(
        "backups",
        help="list the snapshots, oldest first (those taken before a migration last)",
        argument_default=argparse.SUPPRESS,
    )
    listing.add_argument("--dir", help="backup directory (default: $HISTORY_BACKUP_DIR)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    snapshot = add(
        "snapshot",
        help="take a snapshot now (safe while the service runs: it only reads), then prune",
        argument_default=argparse.SUPPRESS,
    )
    snapshot.add_argument("--dir", help="backup directory (default: $HISTORY_BACKUP_DIR)")
    restore = add(
        "restore",
        help="verify a snapshot and put it in place of the database (the service must be stopped)",
        argument_default=argparse.SUPPRESS,
    )
    restore.add_argument("--from", dest="snapshot", required=True, help="the snapshot file")
    restore.add_argument(
        "--force", action="store_true", help="restore even while a history service holds the database"
    )


async def serve(settings: RuntimeSettings) -> int:
    from actormesh_runtime.bus.health import HealthServer
    from actormesh_runtime.bus.process import connect_with_retry, install_stop_signals
    from actormesh_runtime.heap import freeze_after_start
    from actormesh_runtime.history.service import HistoryService
    from actormesh_runtime.settings import RuntimeSettings

    assert isinstance(settings, RuntimeSettings)
    stop = asyncio.Event()
    install_stop_signals(stop)
    service: HistoryService | None = None

    def missing() -> list[str]:
        return service.missing() if service is not None else ["nats not connected"]

    health = HealthServer(missing, host=settings.host, port=settings.actor_http_port)
    await health.start()
    try:
        nc = await connect_with_retry(settings, stop, name=f"actormesh-history-{settings.mesh_name}")
        if nc is None:
            return 0
        try:
            service = HistoryService(settings, nc=nc)
            async with service:
                freeze_after_start("history")
                await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await nc.drain()
    finally:
        await health.stop()
    return 0


def _backup_dir(settings: RuntimeSettings, args: argparse.Namespace) -> str | None:
    """`--dir`, else HISTORY_BACKUP_DIR; None (after saying so on stderr) when neither is set."""
    directory: str | None = getattr(args, "dir", None) or settings.history_backup_dir
    if not directory:
        print("error: no backup directory: pass --dir or set HISTORY_BACKUP_DIR", file=sys.stderr)
        return None
    return directory


def _backups(settings: RuntimeSettings, args: argparse.Namespace) -> int:
    import json

    from actormesh_runtime.history.backup import list_pre_migration_snapshots, list_snapshots

    directory = _backup_dir(settings, args)
    if directory is None:
        return 2
    # The regular snapshots, then those taken before a migration (an upgrade's way back).
    listed = [(snap, "scheduled") for snap in list_snapshots(directory)]
    listed += [(snap, "pre-migration") for snap in list_pre_migration_snapshots(directory)]
    for snap, kind in listed:
        if getattr(args, "json", False):
            print(json.dumps({"path": str(snap.path), "taken_at": snap.taken_at.isoformat(),
                              "size_bytes": snap.size_bytes, "kind": kind}))  # fmt: skip
        else:
            print(f"{snap.taken_at:%Y-%m-%d %H:%M:%S}Z  {snap.size_bytes:>12}  {snap.path}")
    return 0


def _snapshot(settings: RuntimeSettings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from actormesh_runtime.history.backup import pre_migration_retention, prune_backups, take_snapshot
    from actormesh_runtime.history.store import SCHEMA_VERSION

    directory = _backup_dir(settings, args)
    if directory is None:
        return 2
    if not Path(settings.sqlite_db_path).is_file():
        print(f"error: {settings.sqlite_db_path}: no such database", file=sys.stderr)
        return 1
    path = asyncio.run(take_snapshot(settings.sqlite_db_path, directory))
    keeping = pre_migration_retention(settings, SCHEMA_VERSION)
    removed = prune_backups(directory, settings.history_backup_retention, keeping)
    print(f"snapshot {path} ({path.stat().st_size} bytes); {len(removed)} old snapshot(s) pruned")
    return 0


def _restore(settings: RuntimeSettings, args: argparse.Namespace) -> int:
    from actormesh_runtime.history.backup import RestoreError, restore
    from actormesh_runtime.history.store import SCHEMA_VERSION

    try:
        done = restore(
            args.snapshot,
            settings.sqlite_db_path,
            max_schema=SCHEMA_VERSION,
            force=getattr(args, "force", False),
        )
    except RestoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"restored {done.restored} from {args.snapshot}: integrity ok, {done.turns} turns")
    if done.kept_previous is not None:
        print(f"the replaced database is kept as {done.kept_previous}")
    return 0


def run(args: argparse.Namespace) -> int:
    from actormesh_runtime.commands import eventloop
    from actormesh_runtime.commands.options import BUS_OPTIONS, settings_from
    from actormesh_runtime.observability.logging import configure_logging
    from actormesh_runtime.observability.tracing import configure_tracing

    if args.action is not None:
        settings = settings_from(args, {"db": "sqlite_db_path"})
        action = {"backups": _backups, "snapshot": _snapshot, "restore": _restore}[args.action]
        return action(settings, args)
    options = {**BUS_OPTIONS, "db": "sqlite_db_path", "http_port": "actor_http_port"}
    settings = settings_from(args, options)
    configure_logging(settings)
    configure_tracing(settings, service="history")
    return eventloop.run(serve(settings), settings.event_loop)
