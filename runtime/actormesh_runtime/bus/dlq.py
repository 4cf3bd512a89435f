"""The dead-letter stream: what failed, where and why, kept for `actormesh dlq list|replay`.

The actor host stores a `DeadLetter` when an envelope fails permanently or runs out of deliveries
(and for bytes that are not an envelope at all). Records live in the mesh's DLQ stream (limits
retention); a record's id is its stream sequence. `replay` re-publishes the stored envelope to the
step that failed, with its error cleared and a fresh de-duplication id, and deletes the record.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict, Field

from actormesh_runtime.catalog import ActorName, DeadLetterReason, Subjects
from actormesh_runtime.envelope import Envelope

from .publish import MSG_ID_HEADER, acked_publish, publish_to_current

log = logging.getLogger(__name__)


class DeadLetter(BaseModel):
    """One dead-lettered envelope (or undecodable payload) with the reason it was given up on."""

    model_config = ConfigDict(extra="forbid")

    actor: ActorName
    reason: str
    permanent: bool
    deliveries: int
    dead_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    message_id: str | None = None
    envelope: Envelope | None = None
    """The envelope as the failing actor received it, with `error` set. None when undecodable."""
    raw: str | None = None
    """The payload as text when it was not an envelope."""

    kind: DeadLetterReason | None = None
    """The bounded reason class, set by the error path (None in records stored before it was)."""

    @property
    def category(self) -> DeadLetterReason:
        """The bounded reason class (subject token and metric label) of this record. Explicit, because
        an envelope too large to keep is dropped from the record without making it `invalid`."""
        if self.kind is not None:
            return self.kind
        if self.envelope is None:
            return DeadLetterReason.INVALID
        return DeadLetterReason.PERMANENT if self.permanent else DeadLetterReason.EXHAUSTED


class StoredDeadLetter(BaseModel):
    id: int
    """Sequence in the DLQ stream: what `actormesh dlq replay ID` takes."""
    record: DeadLetter


async def store(js: JetStreamContext, subjects: Subjects, record: DeadLetter, *, dedup_key: str) -> None:
    """Acked publish to the DLQ stream. `dedup_key` (the failing message's stream sequence) keeps a
    crash-and-redeliver from storing the same failure twice."""
    await acked_publish(
        js,
        subjects.dlq(record.actor, record.category),
        record.model_dump_json().encode(),
        stream=subjects.dlq_stream,
        headers={MSG_ID_HEADER: f"dlq:{dedup_key}"},
    )


async def get(js: JetStreamContext, subjects: Subjects, seq: int) -> StoredDeadLetter | None:
    try:
        raw = await js.get_msg(subjects.dlq_stream, seq)
    except NotFoundError:
        return None
    if raw.data is None:
        return None
    return StoredDeadLetter(id=seq, record=DeadLetter.model_validate_json(raw.data))


async def list_records(
    js: JetStreamContext, subjects: Subjects, *, limit: int = 100
) -> list[StoredDeadLetter]:
    """Up to `limit` records, oldest first."""
    try:
        info = await js.stream_info(subjects.dlq_stream)
    except NotFoundError:
        return []
    found: list[StoredDeadLetter] = []
    if not info.state.messages:
        return found
    seq = info.state.first_seq
    while seq <= info.state.last_seq and len(found) < limit:
        item = await get(js, subjects, seq)
        if item is not None:
            found.append(item)
        seq += 1
    return found


class ReplayError(Exception):
    """The record does not exist or holds no replayable envelope."""


async def replay(js: JetStreamContext, subjects: Subjects, seq: int) -> Envelope:
    """Re-publish record `seq` to the step that failed, then delete it. Returns what was published."""
    item = await get(js, subjects, seq)
    if item is None:
        raise ReplayError(f"no dead letter with id {seq}")
    envelope = item.record.envelope
    if envelope is None:
        raise ReplayError(f"dead letter {seq} is not an envelope (undecodable payload); nothing to replay")
    envelope = envelope.model_copy(deep=True)
    envelope.error = None
    envelope.headers.attempt = 1
    envelope.headers.replay += 1
    # The original deadline has long passed; give the replay a fresh budget of the same length.
    budget = max(envelope.headers.deadline - envelope.created_at.timestamp(), 30.0)
    envelope.headers.deadline = datetime.now(UTC).timestamp() + budget
    await publish_to_current(js, subjects, envelope)
    await js.delete_msg(subjects.dlq_stream, seq)
    log.info("replayed dead letter", extra={"dlq_id": seq, "message_id": envelope.message_id})
    return envelope
