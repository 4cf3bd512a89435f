"""Request and response bodies of the gateway's API, and the validation rules shared by HTTP and WebSocket.

`ChatRequest` rejects an empty message (nothing left once screening drops invisible and control
characters), a malformed email or session id (→ 422 naming the field).
The length limit depends on settings (`MAX_MESSAGE_CHARS`), so `check_length` applies it after
parsing (to the message as sent and as screening normalises it) and answers 413, also naming the field.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from actormesh_runtime.ids import random_hex
from actormesh_runtime.pii import INVISIBLE_CLASS, has_visible, normalise

# The patterns are also the OpenAPI schema's (gateway/openapi.py), so they keep to what ECMA and
# Python regexes read alike, and are applied with fullmatch (Python's `$` would accept a final "\n").
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+"
EMAIL_RE = re.compile(_ADDRESS)
SESSION_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
BLANKS = " \t\n\r\f\v"
"""What counts as blank around an email and in an empty message: ASCII whitespace only, the same
set in the schema's patterns as in the checks (Unicode "whitespace" differs between regex engines)."""
EMAIL_MAX_CHARS = 254
SCHEMA_PATTERNS: dict[str, str] = {
    "message": f"[^{INVISIBLE_CLASS}]",
    "customer_email": f"^[{BLANKS}]*{_ADDRESS}[{BLANKS}]*$",
    "session_id": SESSION_RE.pattern,
}


def new_session_id() -> str:
    return f"sess-{random_hex(16)}"


def normalize_email(value: str) -> str:
    if len(value) > EMAIL_MAX_CHARS:
        raise ValueError("not a valid email address")
    value = value.strip(BLANKS).lower()
    if not EMAIL_RE.fullmatch(value):
        raise ValueError("not a valid email address")
    return value


class ChatRequest(BaseModel):
    """`POST /api/chat` body (and the `data` of a WebSocket `chat` frame)."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(
        description="The customer's message (1..MAX_MESSAGE_CHARS characters, not only blanks).",
        json_schema_extra={"minLength": 1, "pattern": SCHEMA_PATTERNS["message"]},
    )
    customer_email: str = Field(
        description="Who is asking; must equal the token's `sub` when auth is on.",
        json_schema_extra={"maxLength": EMAIL_MAX_CHARS, "pattern": SCHEMA_PATTERNS["customer_email"]},
    )
    session_id: str | None = Field(
        None,
        description="Groups turns into a conversation; generated if absent.",
        json_schema_extra={"pattern": SCHEMA_PATTERNS["session_id"], "maxLength": 128},
    )

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # Screening drops controls, format characters and Unicode spaces: a message of only those
        # would travel, and be stored, as an empty turn. The schema's pattern says the same
        # (`pii.INVISIBLE_CLASS`), and the search stops at the first other character.
        if not has_visible(value):
            raise ValueError("message must not be empty (only spaces, invisible or control characters)")
        return value

    @field_validator("customer_email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalize_email(value)

    @field_validator("session_id")
    @classmethod
    def _session(cls, value: str | None) -> str | None:
        if value is not None and not SESSION_RE.fullmatch(value):
            raise ValueError("session_id must be 1-128 characters of letters, digits, '_', '.', ':' or '-'")
        return value


class NotFound(Exception):
    """Nothing the caller may see is stored under that id (HTTP 404, `not_found`)."""


class MessageTooLong(Exception):
    """The message exceeds MAX_MESSAGE_CHARS (HTTP 413), as sent or as screening forwards it."""

    def __init__(self, length: int, limit: int, normalised: int | None = None) -> None:
        after = "" if normalised is None else f" ({normalised} after Unicode normalisation)"
        super().__init__(f"message is {length} characters{after}; the limit is {limit}")
        self.field = "message"
        self.length = length if normalised is None else normalised
        self.limit = limit


def check_length(request: ChatRequest, limit: int) -> None:
    """The limit holds for the message as sent and as screening forwards it: NFKC spells some
    characters in many (U+FDFA in 18 letters), so 4000 could travel, be stored and prompted as 72,000.

    Cheapest count first (normalise is a loop in Python): the length as sent, then NFKC's (C speed,
    and never shorter than what normalise makes of it), and only then the exact normalised length."""
    sent = len(request.message)
    if sent > limit:
        raise MessageTooLong(sent, limit)
    if len(unicodedata.normalize("NFKC", request.message)) <= limit:
        return
    normalised = len(normalise(request.message))
    if normalised > limit:
        raise MessageTooLong(sent, limit, normalised)


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error the gateway returns: a sentence, and the fields at fault when there are any."""

    error: str
    detail: str
    fields: list[FieldError] = Field(default_factory=list)
    message_id: str | None = None
    session_id: str | None = None
    request_id: str | None = None
    limit: str | None = Field(None, description="The setting whose limit refused the request (429/503/408).")


AGENT_API_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody, "description": "not an agent"},
    503: {"model": ErrorBody, "description": "the history service did not answer"},
}
"""The OpenAPI error responses every agent API route shares (escalations, approvals)."""
AGENT_RECORD_ERRORS: dict[int | str, dict[str, Any]] = {**AGENT_API_ERRORS, 404: {"model": ErrorBody}}
"""…and those of a route on one record."""


def field_errors(exc: ValidationError | list[dict[str, Any]]) -> list[FieldError]:
    """pydantic/FastAPI errors → one `FieldError` per field, named by its last location part."""
    errors = exc.errors() if isinstance(exc, ValidationError) else exc
    out: list[FieldError] = []
    for err in errors:
        if err.get("type") == "json_invalid":  # FastAPI locates it at ("body", <offset>): not a field
            reason = (err.get("ctx") or {}).get("error")
            out.append(FieldError(field="body", message=f"malformed JSON: {reason or 'cannot be parsed'}"))
            continue
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        name = ".".join(loc) or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        out.append(FieldError(field=name, message=msg))
    return out


def describe(errors: list[FieldError]) -> str:
    return "; ".join(f"{e.field}: {e.message}" for e in errors) or "invalid request"


class TimeoutBody(ErrorBody):
    result_url: str


class HealthBody(BaseModel):
    status: Literal["ok"] = "ok"
    instance_id: str


class ReadyBody(BaseModel):
    ready: bool
    checks: dict[str, bool]
    missing: list[str]
