"""Publishing envelopes, results and progress events.

`submit` puts a new envelope on its first step (the gateway and `actormesh ask` call it);
`publish_to_current` re-publishes one at its current step (the error path's divert), and
`publish_payload` is what the actor host uses after advancing the slip (it has the bytes already:
one encode per hop). All are acked JetStream publishes carrying `Nats-Msg-Id = envelope.dedup_id()`,
so a republish after a crash is dropped by the stream's duplicate window. Every acked publish of the
bus (envelopes, dead letters, history events) goes through `acked_publish`, which rides out a stream
leader election. Results and progress are core NATS (best effort, nobody may listen).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Literal

from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError

from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.observability import tracing

from .size import check_fits

log = logging.getLogger(__name__)
_encode_progress = json.JSONEncoder(separators=(",", ":")).encode

MSG_ID_HEADER = "Nats-Msg-Id"
PUBLISH_RETRY_BUDGET_S = 10.0
"""How long an acked publish keeps retrying while the stream answers nobody: in a clustered NATS, the
stream's leader election after losing a server takes a few seconds (e2e: one NATS pod deleted)."""
PUBLISH_RETRY_DELAYS_S = (0.1, 0.25, 0.5, 1.0)
"""Pause before each retry; the last one repeats until the budget is spent."""
NO_STREAM_ANSWER = (NoStreamResponseError, NoRespondersError, NatsTimeoutError)


async def publish_to_current(js: JetStreamContext, subjects: Subjects, envelope: Envelope) -> PubAck:
    """Acked publish of `envelope` to the inbox of its current step (`TooLarge` if it cannot fit)."""
    payload = envelope.to_bytes()
    check_fits(js, payload, f"envelope for {envelope.slip.current.value}")
    return await publish_payload(js, subjects, envelope, payload)


async def publish_payload(
    js: JetStreamContext, subjects: Subjects, envelope: Envelope, payload: bytes
) -> PubAck:
    """`publish_to_current` for a caller that already encoded (and size-checked) `envelope`.

    Retried within PUBLISH_RETRY_BUDGET_S while the stream gives no answer (no leader yet, or the ack
    got lost): the message id makes a retry of a publish that did land a duplicate the stream drops."""
    subject, headers = stream_target(subjects, envelope)
    return await acked_publish(js, subject, payload, stream=subjects.stream, headers=headers)


def stream_target(subjects: Subjects, envelope: Envelope) -> tuple[str, dict[str, str]]:
    """The inbox of `envelope`'s current step and the de-duplication header its acked publish carries:
    all a publish of its (already encoded) bytes needs from the envelope, so a publish kept for later
    (a direct hop's fallback) need not keep the envelope."""
    return subjects.actor(envelope.slip.current), {MSG_ID_HEADER: envelope.dedup_id()}


async def acked_publish(
    js: JetStreamContext, subject: str, payload: bytes, *, stream: str | None, headers: dict[str, str]
) -> PubAck:
    """An acked JetStream publish, retried within PUBLISH_RETRY_BUDGET_S while the stream gives no
    answer. `headers` must carry a `Nats-Msg-Id`: it is what makes a retry of a publish that did land
    harmless."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PUBLISH_RETRY_BUDGET_S
    attempt = 0
    while True:
        try:
            return await js.publish(subject, payload, stream=stream, headers=headers)
        except NO_STREAM_ANSWER as exc:
            delay = PUBLISH_RETRY_DELAYS_S[min(attempt, len(PUBLISH_RETRY_DELAYS_S) - 1)]
            if loop.time() + delay > deadline:
                raise
            attempt += 1
            log.info("stream did not answer, retrying", extra={"subject": subject, "error": repr(exc)})
            await asyncio.sleep(delay)


async def submit(js: JetStreamContext, subjects: Subjects, envelope: Envelope) -> PubAck:
    """Put a new envelope on the bus at its current (first) step. Submitting twice is de-duplicated."""
    return await publish_to_current(js, subjects, envelope)


async def publish_progress(
    nc: NATS,
    envelope: Envelope,
    actor: ActorName,
    status: Literal["done", "retrying", "failed"],
    ms: float,
    attempt: int,
) -> None:
    """Best-effort per-hop progress to the caller; never raises."""
    subject = envelope.reply.progress_subject
    if not subject:
        return
    # `ProgressEvent`'s JSON, built from fields this signature types (validating would check nothing)
    # by the C encoder: a pydantic model built and dumped per hop cost ~2 µs more.
    event = {"message_id": envelope.message_id, "actor": actor.value, "status": status,
             "ms": round(ms, 3), "attempt": attempt}  # fmt: skip
    try:
        await nc.publish(subject, _encode_progress(event).encode())
    except Exception as exc:  # a lost progress event must never fail the message
        log.debug("progress not published", extra={"message_id": envelope.message_id, "error": str(exc)})


class BusPublisher:
    """The `actors.base.Publisher` given to actors (response_aggregator publishes results itself)."""

    def __init__(self, nc: NATS, js: JetStreamContext) -> None:
        self._nc = nc
        self._js = js

    async def publish_core(self, subject: str, payload: bytes) -> None:
        check_fits(self._nc, payload, f"message to {subject}")
        await self._nc.publish(subject, payload)

    async def publish_stream(self, subject: str, payload: bytes, *, msg_id: str) -> bool:
        check_fits(self._nc, payload, f"message to {subject}")
        # The W3C context rides along, so the consumer (the history writer) continues the trace.
        ack = await acked_publish(
            self._js, subject, payload, stream=None, headers={MSG_ID_HEADER: msg_id, **tracing.inject()}
        )
        return not ack.duplicate

    async def request(self, subject: str, payload: bytes, *, timeout_s: float) -> bytes:
        reply = await self._nc.request(subject, payload, timeout=timeout_s)
        return bytes(reply.data)
