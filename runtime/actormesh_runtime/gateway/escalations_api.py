"""The agent API: the escalation queue and its records, for support agents (docs/escalations.md).

- `GET /api/escalations?state=&limit=&cursor=`: most urgent first, then oldest first, paginated;
- `GET /api/escalations/{ref}`: the record and the conversation's turns;
- `POST /api/escalations/{ref}/claim|reply|resolve`: the updated record; 404 unknown ref, 409 wrong
  state, 422 naming the field.
Who may call (`get_agent`): with a key, a token whose `role` claim is `agent` (a customer's token
gets 403); without one (`actormesh dev`), callers on the loopback interface only. Every change is
made by the history service (the single writer), which then publishes it, so an agent's reply
reaches the customer's sockets on every replica (`gateway/escalation_feed.py`).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from actormesh_runtime.escalations import (
    AGENT_MAX_CHARS,
    CURSOR_PATTERN,
    NOTE_MAX_CHARS,
    REF_PATTERN,
    REPLY_ID_PATTERN,
    REPLY_MAX_CHARS,
    EscalationRecord,
    EscalationState,
)
from actormesh_runtime.gateway.auth import (
    AGENT_ROLE,
    AuthError,
    TokenVerifier,
    authenticate,
    bearer_from_header,
)
from actormesh_runtime.gateway.deps import get_gateway, get_verifier
from actormesh_runtime.gateway.models import (
    AGENT_API_ERRORS,
    AGENT_RECORD_ERRORS,
    BLANKS,
    SCHEMA_PATTERNS,
    ErrorBody,
)
from actormesh_runtime.gateway.service import Gateway

router = APIRouter(tags=["escalations"])

LOCAL_AGENT = "local-agent"
"""The agent's name on loopback without JWT_SECRET when the body names none."""
RefPath = Annotated[str, Path(pattern=f"^{REF_PATTERN}$", description="`ESC-` and 8 to 16 hex digits")]

_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **AGENT_RECORD_ERRORS,
    409: {"model": ErrorBody, "description": "not allowed in the record's state"},
}


class Agent(BaseModel):
    name: str
    verified: bool
    """True when the name comes from a token (then a body may not name someone else)."""
    expires_at: float | None = None
    """The token's `exp` (epoch seconds): `/ws/agent` closes then. None without a token."""

    def acting(self, named: str | None) -> str:
        if named is None or not named.strip():
            return self.name
        if self.verified:
            if named.strip().lower() != self.name:
                raise AuthError(403, "agent does not match the bearer token")
            # The token's spelling, not the body's: claims and replies compare names exactly, so one
            # agent written two ways would be refused their own escalation.
            return self.name
        return named.strip()


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def identify_agent(verifier: TokenVerifier | None, client_host: str | None, token: str | None) -> Agent:
    """The calling agent, for the HTTP routes and `/ws/agent` alike: 401 without a valid token, 403
    when the token is not an agent's; without a key (no verifier), loopback callers only."""
    if verifier is None:
        if is_loopback(client_host):
            return Agent(name=LOCAL_AGENT, verified=False)
        raise AuthError(403, "without JWT_SECRET only loopback callers may use the agent API")
    principal = authenticate(verifier, token)
    if principal.role != AGENT_ROLE or principal.email is None:
        raise AuthError(403, 'the agent API needs a token with the claim role: "agent"')
    return Agent(name=principal.email, verified=True, expires_at=principal.expires_at)


def get_agent(request: Request) -> Agent:
    """The calling agent of an HTTP route (`identify_agent`), the token in `Authorization`."""
    return identify_agent(
        get_verifier(request.app),
        request.client.host if request.client else None,
        bearer_from_header(request.headers.get("authorization")),
    )


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str | None = Field(
        None, max_length=AGENT_MAX_CHARS, description="Who acts; defaults to the token's subject."
    )


class ClaimBody(_Body):
    pass


class ReplyBody(_Body):
    text: str = Field(
        min_length=1,
        max_length=REPLY_MAX_CHARS,
        description="What the customer reads (not only blanks).",
        json_schema_extra={"pattern": SCHEMA_PATTERNS["message"]},
    )
    reply_id: str | None = Field(
        None,
        pattern=REPLY_ID_PATTERN,
        description="Your key for this reply: sending it again with the same key (a retry after a "
        "timeout or a 503) adds no second reply and answers the record as it stands.",
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # The same blanks as the schema's pattern (ASCII whitespace), as for chat messages.
        if not value.strip(BLANKS):
            raise ValueError("must not be only blanks")
        return value.strip(BLANKS)


class ResolveBody(_Body):
    note: str | None = Field(None, max_length=NOTE_MAX_CHARS, description="How it was resolved.")


class EscalationPage(BaseModel):
    items: list[EscalationRecord]
    next_cursor: str | None


class EscalationDetail(BaseModel):
    escalation: EscalationRecord
    turns: list[dict[str, Any]]


@router.get("/api/escalations", response_model=EscalationPage, responses=AGENT_API_ERRORS)
async def list_escalations(
    gateway: Annotated[Gateway, Depends(get_gateway)],
    _agent: Annotated[Agent, Depends(get_agent)],
    state: EscalationState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="the previous page's next_cursor")
    ] = None,
) -> EscalationPage:
    """The queue: most urgent first, then oldest first. Pass `next_cursor` back for the next page."""
    items, next_cursor = await gateway.history_client().escalations(state=state, limit=limit, cursor=cursor)
    return EscalationPage(items=items, next_cursor=next_cursor)


@router.get("/api/escalations/{ref}", response_model=EscalationDetail, responses=AGENT_RECORD_ERRORS)
async def show_escalation(
    ref: RefPath,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    _agent: Annotated[Agent, Depends(get_agent)],
) -> EscalationDetail:
    """One record and the whole conversation it came from (customer, mesh and agent turns)."""
    history = gateway.history_client()
    record = await history.escalation(ref)
    turns = await history.conversation(record.session_id)
    return EscalationDetail(escalation=record, turns=turns)


@router.post("/api/escalations/{ref}/claim", response_model=EscalationRecord, responses=_CHANGE_ERRORS)
async def claim_escalation(
    ref: RefPath,
    body: ClaimBody,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    agent: Annotated[Agent, Depends(get_agent)],
) -> EscalationRecord:
    """open → claimed by the agent (claiming one you hold already changes nothing)."""
    return await gateway.history_client().change_escalation(ref, "claim", agent=agent.acting(body.agent))


@router.post("/api/escalations/{ref}/reply", response_model=EscalationRecord, responses=_CHANGE_ERRORS)
async def reply_escalation(
    ref: RefPath,
    body: ReplyBody,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    agent: Annotated[Agent, Depends(get_agent)],
) -> EscalationRecord:
    """A reply to the customer: stored as a turn of their conversation and sent to their open chat."""
    return await gateway.history_client().change_escalation(
        ref, "reply", agent=agent.acting(body.agent), text=body.text, reply_id=body.reply_id
    )


@router.post("/api/escalations/{ref}/resolve", response_model=EscalationRecord, responses=_CHANGE_ERRORS)
async def resolve_escalation(
    ref: RefPath,
    body: ResolveBody,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    agent: Annotated[Agent, Depends(get_agent)],
) -> EscalationRecord:
    """open or claimed → resolved, with an optional note."""
    return await gateway.history_client().change_escalation(
        ref, "resolve", agent=agent.acting(body.agent), text=body.note
    )
