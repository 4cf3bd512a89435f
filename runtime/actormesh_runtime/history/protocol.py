"""The history store's read protocol over NATS request/reply, and the client other processes use.

Nobody but the history service opens the SQLite file; a gateway asks on `Subjects(mesh).history_query`
with a `HistoryQuery` and gets a `HistoryAnswer`. Kept free of aiosqlite so the gateway does not
import the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from actormesh_runtime.approvals import ApprovalRecord, ApprovalState, Verdict
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.envelope import FinalResult
from actormesh_runtime.escalations import EscalationRecord, EscalationState, Operation

EscalationOp = Literal[
    "escalations", "escalation", "escalation_claim", "escalation_reply", "escalation_resolve"
]
ESCALATION_OPS: tuple[str, ...] = get_args(EscalationOp)
ApprovalOp = Literal["approvals", "approval", "approval_approve", "approval_deny"]
APPROVAL_OPS: tuple[str, ...] = get_args(ApprovalOp)


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["conversation", "result", "ping", "claim"] | EscalationOp | ApprovalOp
    session_id: str | None = None
    message_id: str | None = None
    customer_email: str | None = Field(None, description="Restrict to this customer's turns (auth on)")
    limit: int = Field(500, ge=1, le=5000)
    ref: str | None = Field(None, description="escalation ops: the record's reference")
    state: EscalationState | None = Field(None, description="`escalations`: only records in this state")
    cursor: str | None = Field(None, description="`escalations`: the previous page's `next_cursor`")
    agent: str | None = Field(None, description="claim/reply/resolve: who does it")
    text: str | None = Field(None, description="reply: the text; resolve: the note; deny: the reason")
    reply_id: str | None = Field(None, description="reply: the sender's key (a repeat adds nothing)")
    approval_id: str | None = Field(None, description="approval ops: the request's id")
    approval_state: ApprovalState | None = Field(None, description="`approvals`: only this state")
    amount: float | None = Field(None, description="approve (refunds): the amount")


class HistoryAnswer(BaseModel):
    ok: bool = True
    error: str | None = None
    turns: list[dict[str, Any]] = Field(default_factory=list)
    """`history.store.Turn` dumps, oldest first."""
    result: FinalResult | None = None
    customer_email: str | None = None
    """The result's customer (`result`), or the session's owner (`claim`)."""
    escalation: EscalationRecord | None = None
    escalations: list[EscalationRecord] = Field(default_factory=list)
    approval: ApprovalRecord | None = None
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    next_cursor: str | None = None
    refused: Literal["not_found", "conflict", "invalid", "forbidden"] | None = None
    """An escalation op the store refused (`error` says why): answered, not a failure of the service.
    `forbidden`: an agent deciding a request of their own customer account (approvals)."""


def refused(kind: str, error: str) -> HistoryAnswer:
    """An op the store refused: answered (the gateway maps `kind` to 404/409/422/403), not a failure."""
    return HistoryAnswer(refused=kind, error=error)


def cursor_refusal(cursor: str | None, decode: Callable[[str], object]) -> HistoryAnswer | None:
    """The `invalid` refusal when a page cursor is not one `decode` accepts; None when it is (or absent)."""
    if not cursor:
        return None
    try:
        decode(cursor)
    except ValueError:
        return refused("invalid", "cursor: not a cursor this service returned")
    return None


class ErasureRequest(BaseModel):
    """Erase everything the store holds for one customer (`actormesh erase`). Asked on
    `Subjects.history_erase`, which only the `admin` NATS user may publish: never on `history_query`,
    which the gateway may publish too."""

    model_config = ConfigDict(extra="forbid")

    customer_email: str = Field(min_length=3, max_length=254)
    dry_run: bool = Field(False, description="Count what would be erased; change nothing")


class ErasedCounts(BaseModel):
    """What an erasure removed (or, dry run, would remove) from the history store."""

    model_config = ConfigDict(extra="forbid")

    conversations: int = 0
    """Sessions with a turn or an owner record of the customer."""
    turns: int = 0
    session_owners: int = 0
    escalations: int = 0
    escalations_unsettled: int = 0
    """Of `escalations`: open or claimed (a person's queue loses them)."""
    escalation_replies: int = 0
    approvals: int = 0
    approvals_unsettled: int = 0
    """Of `approvals`: pending, or approved and not executed yet (never executed now)."""

    @property
    def total(self) -> int:
        return self.turns + self.session_owners + self.escalations + self.escalation_replies + self.approvals


class ErasureAnswer(BaseModel):
    ok: bool = True
    error: str | None = None
    dry_run: bool = False
    erased: ErasedCounts | None = None


ERASE_TIMEOUT_S = 120.0
"""How long `request_erasure` waits: a customer with years of conversations is erased in many batches."""


async def request_erasure(
    nc: Any, subjects: Subjects, customer_email: str, *, dry_run: bool, timeout_s: float = ERASE_TIMEOUT_S
) -> ErasedCounts:
    """Ask the history service to erase (or count) the customer's records; `HistoryUnavailable` when it
    does not answer or fails."""
    request = ErasureRequest(customer_email=customer_email, dry_run=dry_run)
    try:
        reply = await nc.request(
            subjects.history_erase, request.model_dump_json().encode(), timeout=timeout_s
        )
    except Exception as exc:  # no responders (or not allowed), timeout, connection closed
        raise HistoryUnavailable(f"history service did not answer: {type(exc).__name__}") from exc
    answer = ErasureAnswer.model_validate_json(reply.data)
    if not answer.ok or answer.erased is None:
        raise HistoryUnavailable(answer.error or "history service error")
    return answer.erased


class HistoryUnavailable(Exception):
    """The history service did not answer (not running, or NATS is down)."""


class EscalationRefused(Exception):
    """The store refused an escalation op: `kind` is not_found (404), conflict (409), invalid (422) or
    forbidden (403)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class HistoryClient:
    """Asks the history service; one per process, sharing the process's NATS connection."""

    def __init__(self, nc: Any, subjects: Subjects, *, timeout_s: float = 3.0) -> None:
        self._nc = nc
        self._subject = subjects.history_query
        self._timeout_s = timeout_s

    async def ask(self, query: HistoryQuery) -> HistoryAnswer:
        try:
            reply = await self._nc.request(
                self._subject, query.model_dump_json().encode(), timeout=self._timeout_s
            )
        except Exception as exc:  # no responders, timeout, connection closed: all mean "not now"
            raise HistoryUnavailable(f"history service did not answer: {type(exc).__name__}") from exc
        answer = HistoryAnswer.model_validate_json(reply.data)
        if not answer.ok:
            raise HistoryUnavailable(answer.error or "history service error")
        return answer

    async def conversation(
        self, session_id: str, *, customer_email: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        query = HistoryQuery(
            op="conversation", session_id=session_id, customer_email=customer_email, limit=limit
        )
        return (await self.ask(query)).turns

    async def result(self, message_id: str) -> tuple[FinalResult, str] | None:
        """The stored result and its customer's email, or None when the store has no such message."""
        answer = await self.ask(HistoryQuery(op="result", message_id=message_id))
        if answer.result is None or answer.customer_email is None:
            return None
        return answer.result, answer.customer_email

    async def claim(self, session_id: str, customer_email: str) -> str:
        """The session's owner, made `customer_email` when it had none (durable: the history file)."""
        answer = await self.ask(
            HistoryQuery(op="claim", session_id=session_id, customer_email=customer_email)
        )
        if answer.customer_email is None:
            raise HistoryUnavailable("history service returned no session owner")
        return answer.customer_email

    # ------------------------------------------------------------ escalations (the agent API)

    async def escalations(
        self, *, state: EscalationState | None, limit: int, cursor: str | None
    ) -> tuple[list[EscalationRecord], str | None]:
        """One page of the queue (most urgent, then oldest first) and the next page's cursor."""
        answer = await self._escalation_op(
            HistoryQuery(op="escalations", state=state, limit=limit, cursor=cursor)
        )
        return answer.escalations, answer.next_cursor

    async def escalation(self, ref: str) -> EscalationRecord:
        """The record (`EscalationRefused` not_found when there is none)."""
        answer = await self._escalation_op(HistoryQuery(op="escalation", ref=ref))
        if answer.escalation is None:
            raise EscalationRefused("not_found", f"no escalation {ref}")
        return answer.escalation

    async def change_escalation(
        self, ref: str, op: Operation, *, agent: str, text: str | None = None, reply_id: str | None = None
    ) -> EscalationRecord:
        """claim / reply / resolve; the updated record, or `EscalationRefused` (404/409/422)."""
        query = HistoryQuery(op=f"escalation_{op}", ref=ref, agent=agent, text=text, reply_id=reply_id)
        answer = await self._escalation_op(query)
        if answer.escalation is None:
            raise HistoryUnavailable("history service returned no escalation")
        return answer.escalation

    async def _escalation_op(self, query: HistoryQuery) -> HistoryAnswer:
        answer = await self.ask(query)
        if answer.refused is not None:
            raise EscalationRefused(answer.refused, answer.error or answer.refused)
        return answer

    # ------------------------------------------------------------ approvals (the agent API)

    async def approvals(
        self, *, state: ApprovalState | None, limit: int, cursor: str | None, session_id: str | None = None
    ) -> tuple[list[ApprovalRecord], str | None]:
        query = HistoryQuery(
            op="approvals", approval_state=state, limit=limit, cursor=cursor, session_id=session_id
        )
        answer = await self._escalation_op(query)
        return answer.approvals, answer.next_cursor

    async def approval(self, approval_id: str) -> ApprovalRecord:
        answer = await self._escalation_op(HistoryQuery(op="approval", approval_id=approval_id))
        if answer.approval is None:
            raise EscalationRefused("not_found", f"no approval {approval_id}")
        return answer.approval

    async def decide_approval(
        self, approval_id: str, verdict: Verdict, *, agent: str, amount: float | None, reason: str | None
    ) -> ApprovalRecord:
        op = "approval_approve" if verdict == "approve" else "approval_deny"
        query = HistoryQuery(op=op, approval_id=approval_id, agent=agent, amount=amount, text=reason)
        answer = await self._escalation_op(query)
        if answer.approval is None:
            raise HistoryUnavailable("history service returned no approval")
        return answer.approval
