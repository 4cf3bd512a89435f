"""`Idempotency-Key` on `POST /api/chat` (and `idempotency_key` on a WebSocket `chat` frame).

A client whose connection dropped, who got a 504, or whose proxy retries, sends the same chat again.
Without a key that is a second turn: the chain runs twice, and a refund files a second review request.
With a key (draft-ietf-httpapi-idempotency-key-header) every attempt gets the same message id
(`idempotent_message_id`), so JetStream drops a second publish within its duplicate window, and the
gateway keeps an `IdempotencyRecord` per key in the session store (shared by the replicas) for 24 h, so
a retry waits for the first attempt's answer instead of publishing at all. The flow is
`Gateway.start_chat`; docs/gateway.md#idempotency-key says what the guarantee rests on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime

from pydantic import BaseModel

from actormesh_runtime.gateway.models import ChatRequest, normalize_email
from actormesh_runtime.ids import digest_hex

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
FRAME_FIELD = "idempotency_key"
KEY_MAX_CHARS = 128
KEY_CHARS = "[A-Za-z0-9_.:-]"
"""What a key may be made of (a regular-expression character class): what the header, the frame
field and the search for a refused frame's key (`gateway/ws.py`) all accept."""
KEY_RE = re.compile(rf"^{KEY_CHARS}{{1,{KEY_MAX_CHARS}}}$")
KEY_RULE = "1-128 characters of letters, digits, '_', '.', ':' or '-'"
RECORD_TTL_S = 24 * 3600.0
_DOMAIN = b"actormesh/idempotency-key/v1"


class IdempotencyConflict(Exception):
    """The key was used before with a different request (HTTP 422 naming the key's field)."""

    def __init__(self, field: str) -> None:
        super().__init__("was used with a different request; use a new key for a new message")
        self.field = field


class IdempotencyRecord(BaseModel):
    """What the session store keeps per key, written once the envelope is in the stream."""

    fingerprint: str
    session_id: str
    submitted_at: datetime


def valid_key(value: object) -> bool:
    return isinstance(value, str) and KEY_RE.fullmatch(value) is not None


def idempotent_message_id(customer_email: str, key: str) -> str:
    """The message id of every attempt of one keyed chat: derived, not random, so a retry carries the
    same id and JetStream's de-duplication (`Nats-Msg-Id` comes from it) drops a second publish, and
    every replica finds the same record and stored result. Scoped to the customer: two customers'
    equal keys (a client library's counter, say) never name one conversation. Same shape as
    `envelope.new_message_id` (`ids.digest_hex`), so the log redaction never rewrites one."""
    # NUL separates the parts: neither an email nor a key can hold one, so no two inputs run together
    data = b"\0".join((_DOMAIN, normalize_email(customer_email).encode(), key.encode()))
    return f"msg-{digest_hex(data)}"


def idempotent_session_id(message_id: str, secret: str | None) -> str:
    """The session of a keyed chat sent without one: derived from its message id, so every attempt of
    it names the same session (a random one per attempt would leave a racing attempt's unused). With
    auth on it is keyed by the JWT secret: a session id anyone could compute from an email and a
    guessable key could be claimed first by another customer, and every attempt refused with 403."""
    data = message_id.encode()
    if secret is not None:
        data = hmac.new(secret.encode(), data, hashlib.sha256).digest()
    return f"sess-{digest_hex(b'actormesh/idempotency-session/v1' + bytes(1) + data, 16)}"


def request_fingerprint(request: ChatRequest, session_as_sent: str | None) -> str:
    """sha256 of the request as the client sent it: a key reused for another message (or customer,
    or session) is refused instead of answering with the first message's reply."""
    sent = [request.message, request.customer_email, session_as_sent or ""]
    return hashlib.sha256(json.dumps(sent, ensure_ascii=True).encode()).hexdigest()
