"""`actormesh dlq list` / `actormesh dlq replay ID`: inspect and re-run dead-lettered envelopes.

Run as the NATS `admin` user; against a running `actormesh dev` with no option from the directory `dev`
runs in (`--dev-dir DATA_DIR` from elsewhere: `options.admin_settings_from`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actormesh_runtime.bus.dlq import DeadLetter
    from actormesh_runtime.settings import RuntimeSettings

HELP = "List or replay dead-lettered envelopes."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from actormesh_runtime.commands.options import add_admin_options, add_subcommands

    add_admin_options(parser)
    add = add_subcommands(parser, "action", add_admin_options)
    listing = add("list", help="show dead letters, oldest first")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    replay = add("replay", help="re-publish one dead letter to the step that failed")
    replay.add_argument("id", type=_record_id, help="the id shown by `dlq list`")


def _record_id(text: str) -> int:
    """A dead letter's id is its stream sequence, from 1 (the server refuses 0 and below outright)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a dead letter id (see `dlq list`)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a dead letter id: ids start at 1")
    return value


async def _main(args: argparse.Namespace, settings: RuntimeSettings) -> int:
    from actormesh_runtime.bus import dlq
    from actormesh_runtime.bus.connection import NatsUnreachable, reach_nats
    from actormesh_runtime.catalog import Subjects
    from actormesh_runtime.commands.options import print_unreachable

    subjects = Subjects(settings.mesh_name)
    try:
        nc = await reach_nats(settings, name="actormesh-dlq")
    except NatsUnreachable as exc:  # refused, unreachable, timed out, bad credentials: all "cannot reach"
        print_unreachable(args, settings, exc)
        return 2
    try:
        js = nc.jetstream()
        if args.action == "list":
            records = await dlq.list_records(js, subjects, limit=args.limit)
            if not records and not args.json:  # silence would look like a command that did nothing
                print(f"no dead letters in mesh {settings.mesh_name!r}", file=sys.stderr)
            for item in records:
                rec = _shown(item.record)
                if args.json:
                    print(json.dumps({"id": item.id, **rec.model_dump(mode="json", exclude={"envelope"})}))
                else:
                    when = rec.dead_at.strftime("%Y-%m-%d %H:%M:%S")
                    print(f"{item.id:>6}  {when}  {rec.actor.value:<22} {rec.message_id or '-':<36} "
                          f"x{rec.deliveries} {rec.category.value}  {rec.reason}")  # fmt: skip
            return 0
        try:
            envelope = await dlq.replay(js, subjects, args.id)
        except dlq.ReplayError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"replayed {args.id}: {envelope.message_id} -> {envelope.slip.current.value}")
        return 0
    finally:
        await nc.close()


def _shown(record: DeadLetter) -> DeadLetter:
    """The record as listed: its reason and raw text with email addresses pseudonymised, like log lines
    (an actor's exception may quote the customer's text). Card numbers and SSNs were redacted when it
    was stored; the envelope itself stays whole in the stream for `replay`."""
    from actormesh_runtime.observability.emails import pseudonymise_emails

    raw = pseudonymise_emails(record.raw) if record.raw is not None else None
    return record.model_copy(update={"reason": pseudonymise_emails(record.reason), "raw": raw})


def run(args: argparse.Namespace) -> int:
    from actormesh_runtime.commands.options import BUS_OPTIONS, admin_settings_from
    from actormesh_runtime.local.dev_handle import NoDevMesh

    try:
        settings = admin_settings_from(args, BUS_OPTIONS)
    except NoDevMesh as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_main(args, settings))
