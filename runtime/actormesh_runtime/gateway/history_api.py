"""Reads from the history store (through the history service, by NATS request/reply).

- `GET /api/conversations/{session_id}`: the stored transcript, customer and agent turns (redacted).
- `GET /api/messages/{message_id}`: the final result of one message, e.g. after a 504; 404 until
  it exists. This replica's late results answer first, then the history store.
With auth on, a caller sees only their own turns and results; another customer's answer 404 exactly
as a missing one does, so the API tells nobody which sessions or messages exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from actormesh_runtime.envelope import FinalResult
from actormesh_runtime.gateway.auth import Principal
from actormesh_runtime.gateway.deps import get_gateway, get_principal
from actormesh_runtime.gateway.models import ErrorBody, NotFound
from actormesh_runtime.gateway.service import Gateway

router = APIRouter(tags=["history"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    503: {"model": ErrorBody, "description": "the history service did not answer"},
}


class Conversation(BaseModel):
    session_id: str
    turns: list[dict[str, Any]]


@router.get("/api/conversations/{session_id}", response_model=Conversation, responses=_ERRORS)
async def get_conversation(
    session_id: Annotated[str, Path(max_length=128)],
    gateway: Annotated[Gateway, Depends(get_gateway)],
    principal: Annotated[Principal, Depends(get_principal)],
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> Conversation:
    """The last `limit` turns of one session, oldest first."""
    history = gateway.history_client()
    turns = await history.conversation(session_id, customer_email=principal.email, limit=limit)
    if principal.email is not None:  # the store filtered already; kept so no other path can leak
        turns = [t for t in turns if t.get("customer_email") == principal.email]
    if not turns:  # another customer's conversation looks exactly like one that does not exist
        raise NotFound(f"no stored conversation {session_id!r}")
    return Conversation(session_id=session_id, turns=turns)


@router.get("/api/messages/{message_id}", response_model=FinalResult, responses=_ERRORS)
async def get_message(
    message_id: Annotated[str, Path(max_length=128)],
    gateway: Annotated[Gateway, Depends(get_gateway)],
    principal: Annotated[Principal, Depends(get_principal)],
) -> FinalResult:
    """The final result of one message; 404 while it is still being processed."""
    found = await gateway.find_result(message_id)
    if found is None or (principal.email is not None and found[1] != principal.email):
        raise NotFound(f"no result for {message_id!r} yet")  # another customer's: same answer
    return found[0]
