"""`actormesh erase EMAIL [--dry-run] [--json]`: erase one customer's data on their request.

    actormesh erase jane@example.com --dry-run     # what would go; nothing changes
    actormesh erase jane@example.com

In order: the history store's records (the history service erases them: `history/erasure.py`), the
customer's dead letters and escalation/approval events (read and deleted message by message:
`bus/erasure.py`), then the customer's context-cache entry in Redis (`ContextCache.invalidate`). Every
part is idempotent, so after a failure the same command finishes the job.

An administrative, destructive action: it talks to NATS as the `admin` user, the one allowed to ask
the history service for an erasure (`Subjects.history_erase`) and to delete from those streams; no
gateway token (customer or agent) reaches it. Against a running `actormesh dev` it needs no option
from the directory `dev` runs in (`--dev-dir DATA_DIR` from elsewhere: `options.admin_settings_from`).
Redis: REDIS_URL (or `--redis-url`) and REDIS_PASSWORD, as the mesh's pods have them; without either
the cache is reported as not reached (its entries expire by themselves after CACHE_TTL).
docs/security.md#erasing-a-customers-data.

Exit status: 0 done, 1 a part failed (the others are still done; run it again), 2 usage, NATS
unreachable or no `actormesh dev` running where `--dev-dir` says.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS

    from actormesh_runtime.catalog import Subjects
    from actormesh_runtime.settings import RuntimeSettings

HELP = "Erase one customer's data (history, dead letters, events, cache) on their request."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from actormesh_runtime.commands.options import add_admin_options

    add_admin_options(parser)
    parser.add_argument("email", type=_email, help="the customer's email address")
    parser.add_argument("--dry-run", action="store_true", help="count what would be erased; change nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--redis-url", help="the mesh's Redis (default: $REDIS_URL; password: $REDIS_PASSWORD)"
    )


def _email(text: str) -> str:
    from actormesh_runtime.gateway.models import normalize_email

    try:
        return normalize_email(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an email address") from None


async def _main(args: argparse.Namespace, settings: RuntimeSettings) -> int:
    from actormesh_runtime.bus.connection import NatsUnreachable, reach_nats
    from actormesh_runtime.catalog import Subjects
    from actormesh_runtime.commands.options import print_unreachable

    subjects = Subjects(settings.mesh_name)
    try:
        nc = await reach_nats(settings, name="actormesh-erase")
    except NatsUnreachable as exc:
        print_unreachable(args, settings, exc)
        return 2
    report: dict[str, Any] = {"customer_email": args.email, "dry_run": args.dry_run}
    failed: list[str] = []
    try:
        await _history(nc, subjects, args, report, failed)
        await _streams(nc, subjects, args, report, failed)
    finally:
        await nc.close()
    await _cache(settings, args, report, failed)
    report["failed"] = failed
    _print(report, as_json=args.json)
    return 1 if failed else 0


async def _history(
    nc: NATS, subjects: Subjects, args: argparse.Namespace, report: dict[str, Any], failed: list[str]
) -> None:
    from actormesh_runtime.history.protocol import HistoryUnavailable, request_erasure

    try:
        erased = await request_erasure(nc, subjects, args.email, dry_run=args.dry_run)
    except HistoryUnavailable as exc:
        failed.append(f"history: {exc}")
        report["history"] = None
        return
    report["history"] = erased.model_dump()


async def _streams(
    nc: NATS, subjects: Subjects, args: argparse.Namespace, report: dict[str, Any], failed: list[str]
) -> None:
    from actormesh_runtime.bus import erasure

    js = nc.jetstream()
    names = {subjects.dlq_stream: "dead_letters", subjects.escalations_stream: "events"}
    for stream, filter_subject, matches in erasure.streams(subjects, args.email):
        name = names[stream]
        try:
            found = await erasure.find(js, stream, filter_subject, matches)
            report[name] = len(found) if args.dry_run else await erasure.delete(js, stream, found)
        except Exception as exc:  # not allowed (not the admin user), timeout, connection lost
            failed.append(f"{name} ({stream}): {type(exc).__name__}: {exc}")
            report[name] = None


async def _cache(
    settings: RuntimeSettings, args: argparse.Namespace, report: dict[str, Any], failed: list[str]
) -> None:
    """The customer's context-cache entry, through the cache's own methods (whatever its key format)."""
    from actormesh_runtime.storage.cache import ContextCache
    from actormesh_runtime.storage.stores import RedisStore, redis_client

    if not settings.redis_url:
        report["context_cache"] = None
        report["context_cache_note"] = "not reached: no REDIS_URL (entries expire after CACHE_TTL)"
        return
    store = RedisStore(redis_client(settings.redis_url, settings.redis_password), name="erase")
    cache = ContextCache(store, mesh=settings.mesh_name, ttl_s=settings.cache_ttl)
    try:
        present = (await cache.read(args.email)).context is not None
        if not args.dry_run and not store.degraded:
            await cache.invalidate(args.email)
        if store.degraded:  # the store serves a failed operation as "absent": say it failed
            failed.append("context cache: Redis did not answer")
            report["context_cache"] = None
        else:
            report["context_cache"] = int(present)
    finally:
        await cache.close()


def _print(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    verb = "would erase" if report["dry_run"] else "erased"
    print(f"{verb} for {report['customer_email']}:")
    history = report.get("history")
    if history is not None:
        print(
            f"  history: {history['conversations']} conversations, {history['turns']} turns,"
            f" {history['session_owners']} session owners, {history['escalations']} escalations"
            f" ({history['escalations_unsettled']} open or claimed) with {history['escalation_replies']}"
            f" agent replies, {history['approvals']} approval requests"
            f" ({history['approvals_unsettled']} not settled: never executed now)"
        )
    for key, label in (("dead_letters", "dead letters"), ("events", "escalation/approval events")):
        if report.get(key) is not None:
            print(f"  {label}: {report[key]}")
    if report.get("context_cache") is not None:
        print(f"  context cache entry: {report['context_cache']}")
    elif "context_cache_note" in report:
        print(f"  context cache: {report['context_cache_note']}")
    for problem in report["failed"]:
        print(f"error: {problem}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from actormesh_runtime.commands.options import BUS_OPTIONS, admin_settings_from
    from actormesh_runtime.local.dev_handle import NoDevMesh

    try:
        settings = admin_settings_from(args, {**BUS_OPTIONS, "redis_url": "redis_url"})
    except NoDevMesh as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_main(args, settings))
