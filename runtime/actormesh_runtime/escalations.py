"""Escalation records: what a person sees when the mesh hands a conversation over, and its life cycle.

The mesh creates a record on every escalation (escalation_router builds it; response_aggregator sends
it inside the `HistoryEvent`); the history service stores it (idempotent on `ref`) and is the only
process that changes it afterwards (claim, reply, resolve), through the state machine here. Gateways
and the `actormesh escalations` client read it; the agent console shows it. The JSON shape of
`EscalationRecord` is the contract in docs/escalations.md.

Also here, because actors and the history service both speak it: the small request/reply protocol on
`Subjects.escalations_lookup` (a customer's follow-up on a reference; the queue behind a new one).
A low floor: pydantic and the standard library only.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from actormesh_runtime.priority import Priority
from actormesh_runtime.wire_enum import WireEnum

REF_PATTERN = r"ESC-[0-9a-f]{8,16}"
"""Accepted: 8 to 16 hex digits. This release mints 8 (`reference_id`); every validator (records, the
envelope, cursors, the gateway's paths) accepts up to 16 so that a later release may mint longer refs
while pods of this one still run (a rolling upgrade: an id the previous release rejects must never be
emitted — docs/escalations.md, "Reference ids")."""
REF_RE = re.compile(r"\bESC-([0-9a-f]{8,16})\b", re.IGNORECASE)
MAX_REF_ATTEMPTS = 16
"""Candidate refs per message (`reference_id` attempts 0..15) before a record is given up as unstorable."""
SUMMARY_MAX_CHARS = 500
REPLY_MAX_CHARS = 4000
NOTE_MAX_CHARS = 2000
AGENT_MAX_CHARS = 200
REPLAY_SETTLED_NOTE = (
    "Settled automatically: a replay of the failed message (actormesh dlq replay) answered the customer,"
    " so nobody needs to follow up on this error."
)
"""The resolution note of an error escalation the history service resolved because a replay of its
dead letter answered the message (`history.escalations.EscalationStore.settle_replayed`)."""


def fit_summary(text: str) -> str:
    """`text` cut to SUMMARY_MAX_CHARS. The store redacts a summary before writing it, which may make
    it longer (NFKC turns "…" into "...", a placeholder may outgrow what it replaces); a summary over
    the limit once failed every read of the queue and every announce of the history batch."""
    if len(text) <= SUMMARY_MAX_CHARS:
        return text
    return text[: SUMMARY_MAX_CHARS - 3] + "..."


CURSOR_PATTERN = r"^[0-3]\|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\|ESC-[0-9a-f]{8,16}$"
"""A queue page's cursor: priority rank | created_at | ref of the previous page's last record."""


def reference_id(message_id: str, attempt: int = 0) -> str:
    """The escalation reference of `message_id`: `ESC-` + 8 hex digits of SHA-256(message id), or, when
    that ref is held by another message's record (32 bits collide: ~1 % among 10,000 records), of
    SHA-256(f"{message_id}:{attempt}") for attempt 1, 2, … Deterministic: a chain run again, and the
    history store placing a record, derive the same candidates in the same order."""
    seed = message_id if attempt == 0 else f"{message_id}:{attempt}"
    return "ESC-" + hashlib.sha256(seed.encode()).hexdigest()[:8]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EscalationState(WireEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


class EscalationReason(WireEnum):
    """Why the mesh escalated: one code per record (the most serious rule that fired)."""

    LEGAL_THREAT = "legal_threat"
    ABUSE = "abuse"
    UPSET_VIP = "upset_vip"
    HUMAN_REQUESTED = "human_requested"
    SUSPENDED_ACCOUNT = "suspended_account"
    GUARDRAIL = "guardrail"
    ERROR = "error"
    LOW_CONFIDENCE = "low_confidence"


class Customer(_Model):
    email: str
    tier: Literal["standard", "premium", "vip"] | None = None


class EscalationFacts(_Model):
    """What the mesh knew when it escalated, so the agent does not have to ask again."""

    orders: list[dict[str, Any]] = Field(default_factory=list)
    tracking: list[dict[str, Any]] = Field(default_factory=list)
    actions: list[dict[str, Any]] = Field(default_factory=list)


REPLY_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"


class AgentReply(_Model):
    agent: str
    text: str
    at: datetime
    reply_id: str | None = None
    """The sender's key for this reply: the same key again (a retry after a lost answer) adds nothing."""


class EscalationRecord(_Model):
    """One escalation (the contract in docs/escalations.md and /work/coord/INTERFACES.md)."""

    ref: str = Field(pattern=f"^{REF_PATTERN}$")
    session_id: str
    message_id: str
    customer: Customer
    reason: EscalationReason
    reasons: list[str] = Field(default_factory=list, description="Every rule that fired, in words")
    priority: Priority
    summary: str = Field(max_length=SUMMARY_MAX_CHARS)
    facts: EscalationFacts = Field(default_factory=EscalationFacts)
    state: EscalationState = EscalationState.OPEN
    created_at: datetime
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution_note: str | None = None
    replies: list[AgentReply] = Field(default_factory=list)


# ---------------------------------------------------------------- the state machine

Operation = Literal["claim", "reply", "resolve"]


class TransitionRefused(Exception):
    """The operation is not allowed in the record's state (HTTP 409); the message says why."""


def check_transition(record: EscalationRecord, op: Operation, agent: str) -> bool:
    """Whether `op` by `agent` changes `record`; raises `TransitionRefused` when it is not allowed.

    open → claimed (claim) → resolved (resolve); a reply needs the record claimed by the replying
    agent; resolve is allowed from open too (a duplicate closed unanswered). Claiming again by the
    agent who holds it changes nothing (False: a double click is not an error).
    """
    state = record.state
    if state is EscalationState.RESOLVED:
        raise TransitionRefused(f"{record.ref} is resolved; nothing can be {_past(op)} any more")
    if op == "claim":
        if state is EscalationState.CLAIMED:
            if record.claimed_by == agent:
                return False
            raise TransitionRefused(f"{record.ref} is already claimed by {record.claimed_by}")
        return True
    if op == "reply":
        if state is EscalationState.OPEN:
            raise TransitionRefused(f"{record.ref} is open; claim it before replying")
        if record.claimed_by != agent:
            raise TransitionRefused(f"{record.ref} is claimed by {record.claimed_by}, not {agent}")
        return True
    return True


def _past(op: Operation) -> str:
    return {"claim": "claimed", "reply": "replied", "resolve": "resolved"}[op]


def apply_transition(
    record: EscalationRecord,
    op: Operation,
    agent: str,
    *,
    text: str | None = None,
    reply_id: str | None = None,
    now: datetime | None = None,
) -> EscalationRecord:
    """The record after `op` (a new object; `record` is unchanged), or `record` itself when nothing
    changes (a claim by its holder, a reply whose `reply_id` it holds already). Raises
    `TransitionRefused`."""
    if not check_transition(record, op, agent):
        return record
    if op == "reply" and reply_id is not None and any(r.reply_id == reply_id for r in record.replies):
        return record
    at = now or datetime.now(UTC)
    if op == "claim":
        return record.model_copy(
            update={"state": EscalationState.CLAIMED, "claimed_by": agent, "claimed_at": at}
        )
    if op == "reply":
        reply = AgentReply(agent=agent, text=text or "", at=at, reply_id=reply_id)
        return record.model_copy(update={"replies": [*record.replies, reply]})
    return record.model_copy(
        update={"state": EscalationState.RESOLVED, "resolved_at": at, "resolution_note": text or None}
    )


def find_refs(text: str) -> list[str]:
    """The escalation references a message names (normalised `ESC-` + 8 to 16 hex digits), first
    mention first."""
    return list(dict.fromkeys(f"ESC-{m.group(1).lower()}" for m in REF_RE.finditer(text)))


# ---------------------------------------------------------------- lookups by the mesh (actors)


class EscalationLookup(_Model):
    """An actor's question to the history service on `Subjects.escalations_lookup`."""

    op: Literal["status", "queue"]
    refs: list[str] = Field(default_factory=list, max_length=5)
    """`status`: the records asked about; `queue`: the escalation being created (its reference is
    derived from the message id), so a chain run again is answered the queue in front of it."""
    customer_email: str | None = None
    """`status`: only this customer's records are answered (anyone else's look like missing ones)."""
    priority: Priority | None = None
    """`queue`: the priority of the escalation being created."""


class QueueSnapshot(_Model):
    """The queue a new escalation joins: the inputs of the wait estimate."""

    ahead: int = Field(ge=0, description="Open escalations at this priority or a more urgent one")
    agents_active: int = Field(ge=0, description="Agents who replied in the last hour")
    handling_minutes: float | None = Field(
        None, description="Mean claim-to-resolve time of the last day's resolved escalations"
    )


class FollowUp(_Model):
    """What a customer may learn about one of their own references (never the agent's notes)."""

    ref: str
    found: bool
    state: EscalationState | None = None
    claimed: bool = False
    agent: str | None = None
    last_reply: str | None = None
    last_reply_at: datetime | None = None
    created_at: datetime | None = None
    lookup_failed: bool = False
    """The history service did not answer: nothing is known (said so, never guessed)."""
    queue: QueueSnapshot | None = None
    """While open: the escalations ahead of this one and the agents answering (the wait)."""

    @property
    def pending(self) -> bool:
        """Found and still with our team (open or claimed)."""
        return self.found and self.state in (EscalationState.OPEN, EscalationState.CLAIMED)


class LookupAnswer(_Model):
    ok: bool = True
    error: str | None = None
    followups: list[FollowUp] = Field(default_factory=list)
    queue: QueueSnapshot | None = None
    ref_message_id: str | None = None
    """`queue`: the message whose record holds the asked ref, when one does (None: the ref is free, or
    an older history service that does not say). escalation_router takes the next candidate
    (`reference_id(message_id, attempt + 1)`) when it is another message's. Sent only when set: a
    previous release's router (which forbids unknown fields) parses every other answer as before."""


def follow_up_of(record: EscalationRecord | None, ref: str) -> FollowUp:
    if record is None:
        return FollowUp(ref=ref, found=False)
    last = record.replies[-1] if record.replies else None
    return FollowUp(
        ref=record.ref,
        found=True,
        state=record.state,
        claimed=record.claimed_by is not None,
        agent=record.claimed_by,
        last_reply=last.text if last else None,
        last_reply_at=last.at if last else None,
        created_at=record.created_at,
    )


# ---------------------------------------------------------------- events (for notifiers and gateways)

Change = Literal["created", "claimed", "replied", "resolved", "reclassified"]
"""`reclassified`: a dead-letter replay handed over an open `error` escalation's message properly; the
record now carries the replay's reason, reasons, priority, summary and facts (same ref, still open)."""


class EscalationEvent(_Model):
    """Published by the history service on `escalations.created` / `escalations.updated` after the
    change is committed. `reply` is set for `replied` (gateways deliver it to the customer)."""

    type: Literal["escalation.created", "escalation.updated"]
    change: Change
    escalation: EscalationRecord
    reply: AgentReply | None = None
