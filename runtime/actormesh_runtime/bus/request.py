"""Submit one envelope and wait for its FinalResult on a per-caller reply subject.

Used by `actormesh ask` (and usable by any client holding a NATS connection). The gateway keeps
its own long-lived reply subscription instead; both rely on `envelope.reply` carrying the subjects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.envelope import Envelope, FinalResult, ProgressEvent, ReplyTo
from actormesh_runtime.ids import random_hex

from .publish import submit


def reply_to(subjects: Subjects, instance_id: str | None = None) -> ReplyTo:
    """Reply subjects unique to this caller process (`Subjects.replies(instance)` + .result/.progress)."""
    prefix = subjects.replies(instance_id or random_hex(12))
    return ReplyTo(result_subject=f"{prefix}.result", progress_subject=f"{prefix}.progress")


async def request_result(
    nc: NATS,
    subjects: Subjects,
    envelope: Envelope,
    *,
    timeout_s: float,
    on_progress: Callable[[ProgressEvent], None] | None = None,
) -> FinalResult:
    """Submit `envelope` (its `reply` must be set) and return its result; TimeoutError after `timeout_s`."""
    if not envelope.reply.result_subject:
        raise ValueError("envelope.reply.result_subject is not set")
    loop = asyncio.get_running_loop()
    done: asyncio.Future[FinalResult] = loop.create_future()

    async def on_result(msg: Msg) -> None:
        result = FinalResult.model_validate_json(msg.data)
        if result.message_id == envelope.message_id and not done.done():
            done.set_result(result)

    async def on_event(msg: Msg) -> None:
        if on_progress is not None:
            on_progress(ProgressEvent.model_validate_json(msg.data))

    subs = [await nc.subscribe(envelope.reply.result_subject, cb=on_result)]
    if envelope.reply.progress_subject and on_progress is not None:
        subs.append(await nc.subscribe(envelope.reply.progress_subject, cb=on_event))
    elif envelope.reply.progress_subject:
        # Nobody watches: no actor spends a publish per hop on events nobody reads (as the gateway's
        # POST /chat, which never asks for them).
        envelope.reply = envelope.reply.model_copy(update={"progress_subject": None})
    try:
        # No flush needed: the SUBs above reach the server before this submit (one connection, in
        # order), so they are live before anything can answer; a dead connection fails the submit.
        await submit(nc.jetstream(), subjects, envelope)
        return await asyncio.wait_for(done, timeout_s)
    finally:
        for sub in subs:
            await sub.unsubscribe()
