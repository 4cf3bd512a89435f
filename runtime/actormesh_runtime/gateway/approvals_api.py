"""The approvals API: actions the store's policy leaves to a person (docs/approvals.md).

- `GET /api/approvals?state=&session_id=&limit=&cursor=`: most urgent first, then the nearest
  deadline, paginated;
- `GET /api/approvals/{id}`: the record, with its audit trail; `…/conversation`: with the transcript;
- `POST /api/approvals/{id}/approve` (`{"amount"?}`, refunds only, up to the order total) and
  `POST /api/approvals/{id}/deny` (`{"reason"}`, required): the updated record; 404 unknown id,
  409 already decided, 422 naming the field, 403 for a non-agent or for a request of the agent's own
  customer account — the same callers as the escalation API (`escalations_api.get_agent`).
The history service records the decision (the single writer); an approval then runs through
execution_coordinator with the action's own idempotency key (once, however often it is clicked), and
the customer is told the outcome in their chat, as for a denial.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from actormesh_runtime.approvals import APPROVAL_ID_PATTERN, REASON_MAX_CHARS, ApprovalRecord, ApprovalState
from actormesh_runtime.escalations import AGENT_MAX_CHARS
from actormesh_runtime.gateway.deps import get_gateway
from actormesh_runtime.gateway.escalations_api import Agent, get_agent
from actormesh_runtime.gateway.models import (
    AGENT_API_ERRORS,
    AGENT_RECORD_ERRORS,
    SCHEMA_PATTERNS,
    SESSION_RE,
    ErrorBody,
)
from actormesh_runtime.gateway.service import Gateway
from actormesh_runtime.history.approvals import CURSOR_PATTERN

router = APIRouter(tags=["approvals"])

IdPath = Annotated[str, Path(pattern=f"^{APPROVAL_ID_PATTERN}$", description="`APR-` and 8 to 16 hex digits")]
_DECIDE_ERRORS: dict[int | str, dict[str, Any]] = {
    **AGENT_RECORD_ERRORS,
    409: {"model": ErrorBody, "description": "already decided"},
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str | None = Field(
        None, max_length=AGENT_MAX_CHARS, description="Who decides; defaults to the token's subject."
    )


class ApproveBody(_Body):
    amount: float | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="Refunds: the amount to refund (default and maximum: what is left of the order total"
        " after the order's other approved refunds).",
    )


class DenyBody(_Body):
    reason: str = Field(
        min_length=1,
        max_length=REASON_MAX_CHARS,
        description="Why (the customer is told it).",
        json_schema_extra={"pattern": SCHEMA_PATTERNS["message"]},
    )


class ApprovalPage(BaseModel):
    items: list[ApprovalRecord]
    next_cursor: str | None


@router.get("/api/approvals", response_model=ApprovalPage, responses=AGENT_API_ERRORS)
async def list_approvals(
    gateway: Annotated[Gateway, Depends(get_gateway)],
    _agent: Annotated[Agent, Depends(get_agent)],
    state: ApprovalState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="the previous page's next_cursor")
    ] = None,
    session_id: Annotated[
        str | None, Query(pattern=SESSION_RE.pattern, description="only the requests of this conversation")
    ] = None,
) -> ApprovalPage:
    """The requests: most urgent first, then the nearest deadline."""
    items, next_cursor = await gateway.history_client().approvals(
        state=state, limit=limit, cursor=cursor, session_id=session_id
    )
    return ApprovalPage(items=items, next_cursor=next_cursor)


@router.get("/api/approvals/{approval_id}", response_model=ApprovalRecord, responses=AGENT_RECORD_ERRORS)
async def show_approval(
    approval_id: IdPath,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    _agent: Annotated[Agent, Depends(get_agent)],
) -> ApprovalRecord:
    """One request with the facts that matter and its audit trail."""
    return await gateway.history_client().approval(approval_id)


class ApprovalDetail(BaseModel):
    approval: ApprovalRecord
    turns: list[dict[str, Any]]


@router.get(
    "/api/approvals/{approval_id}/conversation", response_model=ApprovalDetail, responses=AGENT_RECORD_ERRORS
)
async def approval_conversation(
    approval_id: IdPath,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    _agent: Annotated[Agent, Depends(get_agent)],
) -> ApprovalDetail:
    """The request with the whole conversation that filed it (what the customer said before and after)."""
    history = gateway.history_client()
    record = await history.approval(approval_id)
    return ApprovalDetail(approval=record, turns=await history.conversation(record.session_id))


@router.post("/api/approvals/{approval_id}/approve", response_model=ApprovalRecord, responses=_DECIDE_ERRORS)
async def approve(
    approval_id: IdPath,
    body: ApproveBody,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    agent: Annotated[Agent, Depends(get_agent)],
) -> ApprovalRecord:
    """Approve: the action runs once (a second click is 409), and the customer is told the outcome."""
    return await gateway.history_client().decide_approval(
        approval_id, "approve", agent=agent.acting(body.agent), amount=body.amount, reason=None
    )


@router.post("/api/approvals/{approval_id}/deny", response_model=ApprovalRecord, responses=_DECIDE_ERRORS)
async def deny(
    approval_id: IdPath,
    body: DenyBody,
    gateway: Annotated[Gateway, Depends(get_gateway)],
    agent: Annotated[Agent, Depends(get_agent)],
) -> ApprovalRecord:
    """Deny with a reason: nothing runs, and the customer is told why."""
    return await gateway.history_client().decide_approval(
        approval_id, "deny", agent=agent.acting(body.agent), amount=None, reason=body.reason
    )
