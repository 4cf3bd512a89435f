"""decision_router: escalation rules, planned actions, safety gates, targeting and the slip it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from actormesh_runtime.actors.decision_router import DecisionRouter
from actormesh_runtime.catalog import DEFAULT_ROUTE, ESCALATION_TAIL, ActorName
from actormesh_runtime.envelope import (
    ActionType,
    CustomerContext,
    Decision,
    Intent,
    IntentResult,
    Screening,
    Sentiment,
    SentimentLabel,
    Urgency,
)
from actormesh_runtime.policy import decision as decision_policy
from actormesh_runtime.policy.decision import (
    NOTE_INJECTION,
    NOTE_UNKNOWN_CUSTOMER,
    REASON_ABUSIVE,
    REASON_HUMAN,
    REASON_LEGAL,
    REASON_NO_INTENT,
    REASON_SUSPENDED,
    REASON_SUSPENDED_ACCOUNT,
    REASON_VIP,
    decide,
    low_confidence_reason,
)
from actormesh_runtime.resources import ActorDeps
from tests.support.commerce import NOW, context_for, envelope_for, intent, sentiment, unit_settings

JOHN = "john.doe@example.com"  # premium: ORD-10001 delivered 12d, ORD-10002 shipped, ORD-10003 delivered 45d
JANE = "jane.smith@example.com"  # vip: ORD-20001 processing, ORD-20002 shipped (exception)
BOB = "bob.wilson@example.com"  # standard: ORD-30001 pending
MIA = "mia.park@example.com"  # suspended account
NOBODY = "nobody@example.com"
THRESHOLD = 0.45
NEG = SentimentLabel.NEGATIVE


def run(
    email: str,
    it: IntentResult | None,
    st: Sentiment | None = None,
    *,
    injection: bool = False,
) -> Decision:
    return decide(
        sentiment=st or sentiment(),
        intent=it,
        context=context_for(email),
        screening=Screening(prompt_injection=injection),
        threshold=THRESHOLD,
        now=NOW,
    )


# ---------------------------------------------------------------- escalation rules


@pytest.mark.parametrize(
    ("email", "it", "st", "reasons"),
    [
        pytest.param(
            JOHN,
            intent(Intent.ORDER_STATUS),
            sentiment(wants_human=True),
            [REASON_HUMAN],
            id="asks-for-a-human",
        ),
        pytest.param(
            JOHN, intent(Intent.ESCALATION_REQUEST), sentiment(), [REASON_HUMAN], id="escalation-intent"
        ),
        pytest.param(
            JOHN,
            intent(Intent.DELIVERY_ISSUE),
            sentiment(NEG, legal_threat=True),
            [REASON_LEGAL],
            id="legal-threat",
        ),
        pytest.param(
            JOHN, intent(Intent.DELIVERY_ISSUE), sentiment(NEG, abusive=True), [REASON_ABUSIVE], id="abusive"
        ),
        pytest.param(
            JANE,
            intent(Intent.DELIVERY_ISSUE),
            sentiment(NEG, Urgency.HIGH),
            [REASON_VIP],
            id="vip-high-negative",
        ),
        pytest.param(
            JANE,
            intent(Intent.DELIVERY_ISSUE),
            sentiment(NEG, Urgency.CRITICAL),
            [REASON_VIP],
            id="vip-critical-negative",
        ),
        pytest.param(
            JANE,
            intent(Intent.DELIVERY_ISSUE),
            sentiment(NEG, Urgency.MEDIUM),
            [],
            id="vip-medium-negative-no",
        ),
        pytest.param(
            JANE,
            intent(Intent.DELIVERY_ISSUE),
            sentiment(SentimentLabel.NEUTRAL, Urgency.HIGH),
            [],
            id="vip-high-neutral-no",
        ),
        pytest.param(
            JOHN,
            intent(Intent.DELIVERY_ISSUE),
            sentiment(NEG, Urgency.CRITICAL),
            [],
            id="premium-critical-negative-no",
        ),
        pytest.param(
            JOHN,
            intent(Intent.ORDER_STATUS, 0.30),
            sentiment(),
            [low_confidence_reason(0.30, THRESHOLD)],
            id="low-confidence",
        ),
        pytest.param(
            JOHN, intent(Intent.ORDER_STATUS, THRESHOLD), sentiment(), [], id="confidence-at-threshold-no"
        ),
        pytest.param(JOHN, None, sentiment(), [REASON_NO_INTENT], id="no-intent"),
        pytest.param(
            JOHN,
            intent(Intent.GENERAL_QUESTION, 0.2),
            sentiment(NEG, abusive=True, wants_human=True),
            [REASON_HUMAN, REASON_ABUSIVE, low_confidence_reason(0.2, THRESHOLD)],
            id="several-rules",
        ),
        pytest.param(
            NOBODY,
            intent(Intent.ORDER_STATUS),
            sentiment(NEG, Urgency.CRITICAL),
            [],
            id="unknown-customer-not-vip",
        ),
        # Only a person can change a suspended account's orders: a handoff (with a record), not a refusal.
        pytest.param(
            MIA, intent(Intent.CANCELLATION_REQUEST), sentiment(), [REASON_SUSPENDED], id="suspended-cancel"
        ),
        pytest.param(
            MIA, intent(Intent.BILLING_ISSUE), sentiment(), [REASON_SUSPENDED], id="suspended-refund"
        ),
        pytest.param(
            MIA,
            intent(Intent.ACCOUNT_ISSUE),
            sentiment(),
            [REASON_SUSPENDED_ACCOUNT],
            id="suspended-account-issue",
        ),
        pytest.param(MIA, intent(Intent.DELIVERY_ISSUE), sentiment(), [], id="suspended-may-track"),
        pytest.param(JOHN, intent(Intent.ACCOUNT_ISSUE), sentiment(), [], id="active-account-issue-answered"),
        pytest.param(MIA, intent(Intent.ORDER_STATUS), sentiment(), [], id="suspended-may-ask"),
    ],
)
def test_escalation_rules(email: str, it: IntentResult | None, st: Sentiment, reasons: list[str]) -> None:
    decision = run(email, it, st)
    assert decision.escalate is bool(reasons)
    assert decision.reasons[: len(reasons)] == reasons
    if decision.escalate:
        assert decision.planned_actions == []


@pytest.mark.parametrize(
    "status", ["closed", "banned", "deleted", "frozen", "pending_verification", "", None]
)
@pytest.mark.parametrize(
    ("it", "reasons"),
    [
        pytest.param(intent(Intent.CANCELLATION_REQUEST), [REASON_SUSPENDED], id="cancel"),
        pytest.param(intent(Intent.RETURN_REQUEST), [REASON_SUSPENDED], id="return"),
        pytest.param(intent(Intent.BILLING_ISSUE), [REASON_SUSPENDED], id="refund"),
        pytest.param(intent(Intent.ACCOUNT_ISSUE), [REASON_SUSPENDED_ACCOUNT], id="account-issue"),
        pytest.param(intent(Intent.DELIVERY_ISSUE), [], id="may-track"),
        pytest.param(intent(Intent.ORDER_STATUS), [], id="may-ask"),
    ],
)
def test_an_account_that_is_not_active_is_handled_as_a_suspended_one(
    status: str | None, it: IntentResult, reasons: list[str]
) -> None:
    """Before: only "suspended" was restricted; a closed, banned or deleted account (any status the
    rules do not know) had its orders cancelled and refunds filed as if it were active."""
    context = context_for(JANE).model_copy(update={"account_status": status})
    decision = decide(
        sentiment=sentiment(),
        intent=it,
        context=context,
        screening=Screening(),
        threshold=THRESHOLD,
        now=NOW,
    )
    assert (decision.escalate, decision.reasons) == (bool(reasons), reasons)
    if not reasons:
        assert set(decision.planned_actions) <= decision_policy.READ_ONLY_ACTIONS


# ---------------------------------------------------------------- actions and gates


@pytest.mark.parametrize(
    ("email", "it", "st", "injection", "actions", "notes"),
    [
        pytest.param(
            JANE,
            intent(Intent.CANCELLATION_REQUEST),
            None,
            False,
            [ActionType.CANCEL_ORDER],
            [],
            id="cancellation",
        ),
        pytest.param(
            JOHN,
            intent(Intent.RETURN_REQUEST),
            None,
            False,
            [ActionType.CREATE_RETURN_LABEL],
            [],
            id="return",
        ),
        pytest.param(
            JOHN,
            intent(Intent.BILLING_ISSUE),
            None,
            False,
            [ActionType.CREATE_REFUND_REQUEST],
            [],
            id="billing-refund-request",
        ),
        pytest.param(
            JOHN,
            intent(Intent.DELIVERY_ISSUE),
            None,
            False,
            [ActionType.TRACKING_LOOKUP],
            [],
            id="delivery-tracking",
        ),
        pytest.param(JOHN, intent(Intent.ORDER_STATUS), None, False, [], [], id="order-status-no-action"),
        pytest.param(JOHN, intent(Intent.COMPLIMENT), None, False, [], [], id="compliment-no-action"),
        pytest.param(
            JOHN,
            intent(Intent.PRODUCT_ISSUE),
            sentiment(NEG, complaint=True),
            False,
            [ActionType.ADD_NOTE],
            [],
            id="complaint-note",
        ),
        pytest.param(
            JOHN,
            intent(Intent.DELIVERY_ISSUE),
            sentiment(NEG, complaint=True),
            False,
            [ActionType.TRACKING_LOOKUP, ActionType.ADD_NOTE],
            [],
            id="delivery-complaint",
        ),
        pytest.param(
            JANE,
            intent(Intent.CANCELLATION_REQUEST),
            None,
            True,
            [],
            [NOTE_INJECTION],
            id="injection-never-acts",
        ),
        pytest.param(
            JOHN,
            intent(Intent.PRODUCT_ISSUE),
            sentiment(NEG, complaint=True),
            True,
            [],
            [NOTE_INJECTION],
            id="injection-no-note-either",
        ),
        pytest.param(
            NOBODY,
            intent(Intent.CANCELLATION_REQUEST),
            None,
            False,
            [],
            [NOTE_UNKNOWN_CUSTOMER],
            id="unknown-customer-no-action",
        ),
    ],
)
def test_planned_actions(
    email: str,
    it: IntentResult,
    st: Sentiment | None,
    injection: bool,
    actions: list[ActionType],
    notes: list[str],
) -> None:
    decision = run(email, it, st, injection=injection)
    assert not decision.escalate
    assert decision.planned_actions == actions
    assert decision.reasons == notes


# ---------------------------------------------------------------- targeting


@pytest.mark.parametrize(
    ("email", "it", "target", "clarify"),
    [
        pytest.param(JANE, intent(Intent.CANCELLATION_REQUEST), "ORD-20001", False, id="unique-cancellable"),
        pytest.param(BOB, intent(Intent.CANCELLATION_REQUEST), "ORD-30001", False, id="unique-pending"),
        pytest.param(JOHN, intent(Intent.CANCELLATION_REQUEST), None, False, id="nothing-cancellable"),
        pytest.param(JOHN, intent(Intent.RETURN_REQUEST), "ORD-10001", False, id="only-one-in-window"),
        pytest.param(JOHN, intent(Intent.DELIVERY_ISSUE), "ORD-10002", False, id="only-one-in-transit"),
        pytest.param(JOHN, intent(Intent.BILLING_ISSUE), None, True, id="several-refundable-ask"),
        pytest.param(
            JOHN,
            intent(Intent.BILLING_ISSUE, orders=("ORD-10003",)),
            "ORD-10003",
            False,
            id="named-order-wins",
        ),
        pytest.param(
            JOHN,
            intent(Intent.RETURN_REQUEST, tracking=("TRK100000003",)),
            "ORD-10003",
            False,
            id="named-by-tracking-number",
        ),
        pytest.param(
            JOHN,
            intent(Intent.CANCELLATION_REQUEST, orders=("ORD-20001",)),
            None,
            False,
            id="named-order-of-another-customer",
        ),
        pytest.param(
            JOHN,
            intent(Intent.RETURN_REQUEST, orders=("ORD-99999", "ORD-10001")),
            "ORD-10001",
            False,
            id="first-owned-named-order",
        ),
    ],
)
def test_target_order(email: str, it: IntentResult, target: str | None, clarify: bool) -> None:
    decision = run(email, it)
    assert decision.target_order_id == target
    assert decision.needs_clarification is clarify


# ---------------------------------------------------------------- the actor and the slip


REST = [ActorName.RESPONSE_GENERATOR, ActorName.GUARDRAIL_VALIDATOR, ActorName.RESPONSE_AGGREGATOR]


def _at_router(email: str, it: IntentResult | None, st: Sentiment, injection: bool = False):  # type: ignore[no-untyped-def]
    env = envelope_for(email, now=NOW, screening=Screening(prompt_injection=injection))
    env.sentiment, env.intent, env.context = st, it, context_for(email)
    env.slip.index = list(DEFAULT_ROUTE).index(ActorName.DECISION_ROUTER)
    return env


def _router() -> DecisionRouter:
    return DecisionRouter(ActorDeps(settings=unit_settings(), publisher=None))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("email", "it", "st", "injection", "remaining"),
    [
        pytest.param(
            JANE,
            intent(Intent.CANCELLATION_REQUEST),
            sentiment(),
            False,
            [ActorName.EXECUTION_COORDINATOR, *REST],
            id="action-inserts-coordinator",
        ),
        pytest.param(JOHN, intent(Intent.ORDER_STATUS), sentiment(), False, REST, id="answer-only"),
        pytest.param(
            JOHN,
            intent(Intent.ORDER_STATUS),
            sentiment(wants_human=True),
            False,
            list(ESCALATION_TAIL),
            id="escalation-tail",
        ),
        pytest.param(
            JANE, intent(Intent.CANCELLATION_REQUEST), sentiment(), True, REST, id="injection-no-coordinator"
        ),
    ],
)
async def test_router_rewrites_only_the_rest_of_the_slip(
    email: str, it: IntentResult, st: Sentiment, injection: bool, remaining: list[ActorName]
) -> None:
    env = _at_router(email, it, st, injection)
    done_before = env.slip.steps[: env.slip.index + 1]
    router = _router()
    await router.handle(env)
    assert env.slip.steps[: env.slip.index + 1] == done_before
    assert env.slip.remaining == remaining
    assert env.slip.current is ActorName.DECISION_ROUTER
    assert env.decision is not None
    # Replaying the same envelope (redelivery) gives the same slip and decision.
    decision = env.decision
    await router.handle(env)
    assert env.slip.remaining == remaining
    assert env.decision == decision


async def test_router_uses_the_configured_threshold() -> None:
    env = _at_router(JOHN, intent(Intent.ORDER_STATUS, 0.6), sentiment())
    strict = DecisionRouter(
        ActorDeps(settings=unit_settings(escalation_confidence_threshold=0.7), publisher=None)
    )  # type: ignore[arg-type]
    await strict.handle(env)
    assert env.decision is not None
    assert env.decision.escalate
    assert env.decision.reasons == [low_confidence_reason(0.6, 0.7)]


def test_unknown_customer_context_is_safe() -> None:
    decision = decide(
        sentiment=sentiment(),
        intent=intent(Intent.RETURN_REQUEST),
        context=CustomerContext(found=False, email=NOBODY),
        screening=Screening(),
        threshold=THRESHOLD,
        now=NOW,
    )
    assert (decision.escalate, decision.planned_actions) == (False, [])


@pytest.mark.parametrize(
    ("it", "message", "injection", "target", "candidates"),
    [
        pytest.param(
            intent(Intent.GENERAL_QUESTION), "Where are my headphones?", False, "ORD-10001", [], id="general"
        ),
        pytest.param(
            intent(Intent.ORDER_STATUS), "Has my laptop stand shipped?", False, "ORD-10002", [], id="status"
        ),
        pytest.param(
            intent(Intent.ORDER_STATUS),
            "Where are my headphones and my notebook set?",
            False,
            None,
            ["ORD-10001", "ORD-10003"],
            id="several-match-ask",
        ),
        pytest.param(
            intent(Intent.ORDER_STATUS, orders=("ORD-10002",)),
            "Where is ORD-10002, with my headphones?",
            False,
            None,
            [],
            id="an-order-id-wins",
        ),
        pytest.param(
            intent(Intent.GENERAL_QUESTION),
            "Where are my headphones?",
            True,
            None,
            [],
            id="injection-flagged",
        ),
        pytest.param(
            intent(Intent.COMPLIMENT), "I love my headphones!", False, None, [], id="not-an-order-question"
        ),
    ],
)
def test_item_only_questions_resolve_to_an_order(
    it: IntentResult, message: str, injection: bool, target: str | None, candidates: list[str]
) -> None:
    decision = decide(
        sentiment=sentiment(),
        intent=it,
        context=context_for(JOHN),
        screening=Screening(prompt_injection=injection),
        threshold=THRESHOLD,
        now=NOW,
        message=message,
    )
    assert (decision.target_order_id, decision.candidate_order_ids) == (target, candidates)
    assert decision.needs_clarification is bool(candidates)
    assert decision.planned_actions == []


@pytest.mark.parametrize(
    "name",
    [n for n in dir(decision_policy) if n.startswith("REASON_")] + ["NOTE_INJECTION"],
)
def test_each_recorded_reason_reads_as_docs_actors_says(name: str) -> None:
    """The reasons a person reads on an escalation are documented word for word (docs/actors.md)."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "actors.md").read_text()
    section = " ".join(docs.split("## decision_router", 1)[1].split("\n## ", 1)[0].split())
    assert f"`{getattr(decision_policy, name)}`" in section


def test_a_complaint_note_does_not_take_the_target_of_the_action() -> None:
    decision = run(JANE, intent(Intent.CANCELLATION_REQUEST), sentiment(NEG, complaint=True))
    assert decision.planned_actions == [ActionType.CANCEL_ORDER, ActionType.ADD_NOTE]
    assert decision.target_order_id == "ORD-20001"  # the cancellable order, not "no order" (a note's)
