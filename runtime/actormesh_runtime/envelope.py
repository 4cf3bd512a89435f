"""The envelope: the one message every actor receives, enriches and passes on.

Rules every actor follows (tests in tests/unit/test_envelope.py hold them):
- an actor writes only its own section and appends to `trace`; it never clears another section,
  so replaying an envelope after a crash produces the same result;
- only a router (decision_router, guardrail_validator) changes the route, and only the steps after
  the current one (`RoutingSlip.replace_remaining`);
- the error path (`RoutingSlip.divert_to_error_handler`) is taken on permanent failure or when
  deliveries run out.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actormesh_runtime.approvals import ApprovalRecord
from actormesh_runtime.catalog import DEFAULT_ROUTE, ERROR_ROUTE, ActorName
from actormesh_runtime.escalations import REF_PATTERN, EscalationRecord, FollowUp
from actormesh_runtime.ids import random_hex
from actormesh_runtime.wire_enum import WireEnum


class _Model(BaseModel):
    # No infinities or NaNs: JSON has none, pydantic writes them as null, and the next hop could not
    # read the envelope back (a float field is not nullable): refused where it is built instead.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# ---------------------------------------------------------------- routing


class RoutingSlip(_Model):
    steps: list[ActorName]
    index: int = 0
    error_handler: list[ActorName] = Field(default_factory=lambda: list(ERROR_ROUTE))
    on_error_path: bool = False

    @model_validator(mode="after")
    def _index_in_range(self) -> RoutingSlip:
        if not 0 <= self.index < len(self.steps):
            raise ValueError(f"routing slip index {self.index} outside steps {len(self.steps)}")
        return self

    @property
    def current(self) -> ActorName:
        return self.steps[self.index]

    @property
    def next_step(self) -> ActorName | None:
        return self.steps[self.index + 1] if self.index + 1 < len(self.steps) else None

    @property
    def remaining(self) -> list[ActorName]:
        """Steps after the current one."""
        return self.steps[self.index + 1 :]

    def replace_remaining(self, steps: list[ActorName]) -> None:
        """Rewrite what comes after the current step; what is done stays as it was."""
        self.steps = [*self.steps[: self.index + 1], *steps]

    def advance(self) -> ActorName | None:
        """Move to the next step and return it, or None when the slip is finished."""
        if self.index + 1 >= len(self.steps):
            return None
        self.index += 1
        return self.current

    def divert_to_error_handler(self) -> ActorName:
        """Replace the rest of the route with the error handler and make its first step current.

        If the failing actor is itself on the error path, the remaining error steps are kept, so
        a failing escalation_router still reaches response_aggregator and the caller gets a reply.
        """
        if self.on_error_path:
            handler = [s for s in self.error_handler if s not in self.steps[: self.index + 1]]
            handler = handler or [ActorName.RESPONSE_AGGREGATOR]
        else:
            handler = list(self.error_handler)
        self.steps = [*self.steps[: self.index + 1], *handler]
        self.on_error_path = True
        self.index += 1
        return self.current


def _root_traceparent() -> str:
    """A new W3C trace root, for envelopes started without a caller's context (tests, tools)."""
    return f"00-{random_hex(32)}-{random_hex(16)}-01"


class Headers(_Model):
    traceparent: str = Field(
        default_factory=_root_traceparent,
        description="W3C context of the last span that handled the envelope: the gateway's request span, "
        "then each hop's (observability.tracing.hop_span). Never validated here: a malformed one starts "
        "a new trace at the next hop instead of failing the envelope.",
    )
    tracestate: str | None = Field(
        None,
        # Left out of the JSON when unset: replicas of an older version (during a rollout) refuse
        # unknown fields, and most callers send no tracestate.
        exclude_if=lambda value: value is None,
        description="The caller's W3C tracestate, passed on unchanged.",
    )
    deadline: float = Field(description="Unix time after which nobody waits for this envelope")
    attempt: int = Field(default=1, description="Delivery attempt of the current step (1 = first)")
    replay: int = Field(default=0, description="Times `actormesh dlq replay` re-published this envelope")

    @property
    def rerun(self) -> bool:
        """A later delivery of this step: a retry, a lost ack, or (fusion, direct hops) a whole chain
        run again from its first step; an earlier run may already have done some of the work."""
        return self.attempt > 1


class ReplyTo(_Model):
    """Where the final result and per-hop progress go (core NATS, best effort); None = nobody waits."""

    result_subject: str | None = None
    progress_subject: str | None = None


# ---------------------------------------------------------------- screening (gateway/ask, before anything)


class Screening(_Model):
    pii_redacted: bool = False
    redactions: list[Literal["card", "ssn"]] = Field(default_factory=list)
    prompt_injection: bool = False
    injection_patterns: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------- enrichment sections


class SentimentLabel(WireEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Urgency(WireEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Sentiment(_Model):
    label: SentimentLabel
    score: float = Field(ge=-1.0, le=1.0)
    urgency: Urgency
    complaint: bool = False
    abusive: bool = False
    legal_threat: bool = False
    wants_human: bool = False


class Intent(WireEnum):
    ORDER_STATUS = "order_status"
    DELIVERY_ISSUE = "delivery_issue"
    PRODUCT_ISSUE = "product_issue"
    RETURN_REQUEST = "return_request"
    CANCELLATION_REQUEST = "cancellation_request"
    BILLING_ISSUE = "billing_issue"
    ACCOUNT_ISSUE = "account_issue"
    ESCALATION_REQUEST = "escalation_request"
    COMPLIMENT = "compliment"
    GENERAL_QUESTION = "general_question"


class Entities(_Model):
    order_ids: list[str] = Field(default_factory=list)
    tracking_numbers: list[str] = Field(default_factory=list)
    amounts: list[float] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)


class IntentResult(_Model):
    intent: Intent
    confidence: float = Field(ge=0.0, le=1.0)
    entities: Entities = Field(default_factory=Entities)
    method: Literal["rules", "llm"] = "rules"
    llm_fallback_reason: str | None = None


class OrderItem(_Model):
    name: str
    quantity: int = 1
    unit_price: float


class TrackingInfo(_Model):
    tracking_number: str
    carrier: str
    status: str
    detail: str | None = None
    estimated_delivery: str | None = None
    delivered_at: str | None = None


class Order(_Model):
    order_id: str
    customer_id: str
    status: str
    placed_at: str
    items: list[OrderItem]
    total: float
    carrier: str | None = None
    tracking_number: str | None = None
    shipped_at: str | None = None
    delivered_at: str | None = None
    tracking: TrackingInfo | None = None


class CustomerContext(_Model):
    found: bool
    customer_id: str | None = None
    name: str | None = None
    email: str
    tier: Literal["standard", "premium", "vip"] | None = None
    account_status: str | None = None
    orders: list[Order] = Field(default_factory=list)
    orders_total: int | None = Field(
        None,
        ge=0,
        # Left out when unset (every context but a huge history's): a replica of an older version,
        # during a rollout, refuses unknown fields.
        exclude_if=lambda value: value is None,
        description="Set when `orders` holds only the newest of the customer's orders: how many they "
        "have in all. A deliberate cut, not a failure, so unlike `errors` it does not keep the context "
        "out of the cache.",
    )
    errors: list[str] = Field(
        default_factory=list, description="Upstream calls that failed (partial context)"
    )
    cached: bool = False


class ActionType(WireEnum):
    CANCEL_ORDER = "cancel_order"
    CREATE_RETURN_LABEL = "create_return_label"
    CREATE_REFUND_REQUEST = "create_refund_request"
    ADD_NOTE = "add_note"
    TRACKING_LOOKUP = "tracking_lookup"


class ActionStatus(WireEnum):
    DONE = "done"
    PENDING_REVIEW = "pending_review"
    REFUSED = "refused"
    SKIPPED = "skipped"


class Decision(_Model):
    escalate: bool
    reasons: list[str] = Field(default_factory=list)
    planned_actions: list[ActionType] = Field(default_factory=list)
    target_order_id: str | None = None
    needs_clarification: bool = False
    """Several eligible orders and none named: no action, the reply asks which."""
    candidate_order_ids: list[str] = Field(default_factory=list)
    """With needs_clarification: the eligible orders the reply lists (policy.orders.select_target)."""


class ActionOutcome(_Model):
    type: ActionType
    order_id: str | None = None
    status: ActionStatus
    detail: str
    idempotency_key: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    """E.g. return label id, request id, tracking status: what the reply may quote."""


class DraftResponse(_Model):
    text: str
    method: Literal["template", "llm"] = "template"
    attempt: int = 1
    regenerate_reasons: list[str] = Field(default_factory=list)
    llm_fallback_reason: str | None = None
    """Set when an LLM is configured but the template was used (timeout, error, empty reply)."""


class GuardrailVerdict(_Model):
    approved: bool
    reasons: list[str] = Field(default_factory=list)
    action: Literal["approved", "regenerate", "replaced", "escalate"] = "approved"
    replacement: str | None = None
    """With action "replaced": the safe reply the customer gets instead of the draft."""


class Escalation(_Model):
    reference_id: str = Field(pattern=f"^{REF_PATTERN}$")
    estimated_wait_minutes: int | None = None
    """From the real queue; None when there is no honest number (nobody available, no data)."""
    reasons: list[str] = Field(default_factory=list)
    error_mode: bool = False
    reply: str | None = None
    """The calm handoff reply (or, in error mode, the apology) the customer gets."""
    record: EscalationRecord | None = None
    """What the history service stores for a person to pick up (`escalations.EscalationRecord`)."""


class ErrorInfo(_Model):
    actor: ActorName
    reason: str
    permanent: bool


class TraceEntry(_Model):
    actor: ActorName
    ms: float
    attempt: int = 1


# ---------------------------------------------------------------- the public result contract


class SentimentSummary(_Model):
    label: SentimentLabel
    score: float


class ActionSummary(_Model):
    type: ActionType
    order_id: str | None
    status: ActionStatus
    detail: str


class MethodSummary(_Model):
    intent: Literal["rules", "llm"]
    response: Literal["template", "llm"]


class FinalResult(_Model):
    """What the caller receives (the gateway returns it as JSON). A public contract: add, never rename."""

    message_id: str
    session_id: str
    response: str
    intent: Intent | None
    intent_confidence: float | None
    sentiment: SentimentSummary | None
    urgency: Urgency | None
    escalated: bool
    reference_id: str | None
    actions: list[ActionSummary]
    flags: list[str]
    method: MethodSummary
    trace: list[TraceEntry]
    processing_ms: float


# ---------------------------------------------------------------- the envelope


def new_message_id() -> str:
    return f"msg-{random_hex(32)}"


class Envelope(_Model):
    message_id: str = Field(default_factory=new_message_id)
    session_id: str
    customer_email: str
    message: str = Field(description="The customer's message after screening (redacted)")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    slip: RoutingSlip = Field(default_factory=lambda: RoutingSlip(steps=list(DEFAULT_ROUTE)))
    headers: Headers
    reply: ReplyTo = Field(default_factory=ReplyTo)

    screening: Screening = Field(default_factory=Screening)
    sentiment: Sentiment | None = None
    intent: IntentResult | None = None
    context: CustomerContext | None = None
    decision: Decision | None = None
    actions: list[ActionOutcome] = Field(default_factory=list)
    draft: DraftResponse | None = None
    guardrail: GuardrailVerdict | None = None
    escalation: Escalation | None = None
    followups: list[FollowUp] = Field(default_factory=list)
    """context_retriever: the customer's own escalations the message names (`ESC-…`), from the store."""
    error: ErrorInfo | None = None
    final: FinalResult | None = None
    trace: list[TraceEntry] = Field(default_factory=list)

    @classmethod
    def start(
        cls,
        *,
        session_id: str,
        customer_email: str,
        message: str,
        screening: Screening,
        budget_s: float,
        reply: ReplyTo | None = None,
        message_id: str | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> Envelope:
        """A fresh envelope on the default route, with a deadline `budget_s` from now, continuing the
        trace `traceparent` names (the gateway's request span), or starting one."""
        headers = Headers(deadline=time.time() + budget_s, tracestate=tracestate)
        if traceparent:
            headers.traceparent = traceparent
        return cls(
            message_id=message_id or new_message_id(),
            session_id=session_id,
            customer_email=customer_email,
            message=message,
            screening=screening,
            headers=headers,
            reply=reply or ReplyTo(),
        )

    def to_bytes(self) -> bytes:
        # The serializer's own bytes: model_dump_json() decodes them to a str that .encode() would copy
        # back (two passes over ~3 KB, at every hop).
        return self.__pydantic_serializer__.to_json(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        return cls.model_validate_json(data)

    def dedup_id(self, step: ActorName | None = None) -> str:
        """JetStream `Nats-Msg-Id` for publishing this envelope to `step` (default: the current one).

        Unique per (message, position on the slip, step), so a republish after a crash is dropped
        by the stream's duplicate window, while a legitimately repeated step (regeneration) is not.
        """
        target = step or self.slip.current
        base = f"{self.message_id}:{self.slip.index}:{target.value}"
        # A replayed envelope walks positions the first run already published within the window.
        return f"{base}:r{self.headers.replay}" if self.headers.replay else base


# ---------------------------------------------------------------- side messages


class ProgressEvent(_Model):
    """Published by the bus host on `envelope.reply.progress_subject` after each hop (core NATS)."""

    message_id: str
    actor: ActorName
    status: Literal["done", "retrying", "failed"]
    ms: float
    attempt: int = 1


class HistoryEvent(_Model):
    """Emitted by response_aggregator to the history subject (JetStream); the history service stores it.

    `customer_message` is the screened (redacted) text: nothing unredacted is ever stored.
    """

    message_id: str
    session_id: str
    customer_email: str
    customer_message: str
    received_at: datetime
    completed_at: datetime
    result: FinalResult
    escalation: EscalationRecord | None = None
    """Set when the mesh escalated: stored with the turns, in the same transaction (idempotent on ref)."""
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    """Actions waiting for a person's approval: stored with the turns, idempotent on their id."""
    replay: int = Field(
        0,
        ge=0,
        # Left out when 0 (every event but a replay's): a history service of an older version, during
        # a rollout, refuses unknown fields.
        exclude_if=lambda value: value == 0,
    )
    """`headers.replay` of the run that ended here: a dead letter replayed by `actormesh dlq replay`
    runs the message again after its first run was stored (as an error answer, mostly), and its own
    outcome replaces that answer in the store (`history.store`)."""
