"""The escalation events the history service published, read back from their stream (an ordered,
ephemeral consumer from the first message): what a notifier or a gateway would have received."""

from __future__ import annotations

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.escalations import EscalationEvent


async def published_events(nats_url: str, subjects: Subjects, subject: str) -> list[EscalationEvent]:
    """Every event on `subject` (`subjects.escalations_created` or `escalations_updated`) in the
    escalation-events stream, oldest first."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(subjects.escalations_stream)
        sub = await js.subscribe(
            subject,
            stream=subjects.escalations_stream,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        events = []
        for _ in range(info.state.messages):  # at most: the stream holds the other subject's too
            try:
                msg = await sub.next_msg(timeout=2)
            except nats.errors.TimeoutError:
                break
            if msg.subject == subject:
                events.append(EscalationEvent.model_validate_json(msg.data))
        await sub.unsubscribe()
        return events
    finally:
        await nc.close()
