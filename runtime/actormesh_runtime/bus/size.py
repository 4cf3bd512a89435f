"""Keeping every publish within what the NATS server carries (`max_payload`, 1 MiB by default).

Found by the bus fuzz test (tests/integration/test_bus_fuzz.py): an envelope that grew past the limit
on its way (a huge message plus a trace entry) could never be forwarded, nor dead-lettered (the DLQ
record holds the envelope too), nor answered — it stayed un-acked in the stream for good. Worse, a
message a few bytes under the limit whose headers pushed it over made the server close the whole
connection (nats-py checks only the payload, the server counts the headers too), interrupting every
other message of that process, again on each redelivery.

So: every bus publish checks `fits` first and raises `TooLarge` (a `PermanentError`: it will not fit
next time either), and the error path publishes `trimmed(envelope)`, which cuts the customer's
message to an excerpt, so the conversation still reaches the error handler and the caller still gets
an answer.
"""

from __future__ import annotations

from typing import Any

from actormesh_runtime.envelope import Envelope
from actormesh_runtime.errors import PermanentError

DEFAULT_MAX_PAYLOAD = 1024 * 1024
HEADER_ALLOWANCE = 1024
"""Bytes kept free for the NATS header block (Nats-Msg-Id and friends), which the server counts."""
MESSAGE_EXCERPT_CHARS = 8000
TRUNCATION_MARK = " …[truncated: too large for the bus]"


class TooLarge(PermanentError):
    """A payload the NATS server would refuse (or answer by closing the connection)."""


def max_payload(client: Any) -> int:
    """The server's limit as the connection learned it (a JetStream context or a client)."""
    nc = getattr(client, "_nc", client)
    value = getattr(nc, "max_payload", None)
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_MAX_PAYLOAD


def check_fits(client: Any, payload: bytes, what: str) -> None:
    limit = max_payload(client) - HEADER_ALLOWANCE
    if len(payload) > limit:
        raise TooLarge(f"{what} is {len(payload)} bytes; the bus carries at most {limit}")


def trimmed(envelope: Envelope) -> Envelope:
    """The envelope with the customer's message cut to an excerpt (what makes envelopes large)."""
    if len(envelope.message) <= MESSAGE_EXCERPT_CHARS:
        return envelope
    return envelope.model_copy(update={"message": envelope.message[:MESSAGE_EXCERPT_CHARS] + TRUNCATION_MARK})
