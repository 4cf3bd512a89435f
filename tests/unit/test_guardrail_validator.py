"""guardrail_validator policy: what a draft may not say, and regenerate-once-then-replace-or-escalate."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actormesh_runtime.actors.guardrail_validator import GuardrailValidator, check, unknown_ids
from actormesh_runtime.actors.intent_analyzer import classify
from actormesh_runtime.catalog import DEFAULT_ROUTE, ActorName
from actormesh_runtime.envelope import DraftResponse, Envelope, Sentiment, SentimentLabel, Urgency
from actormesh_runtime.escalations import EscalationState, FollowUp
from actormesh_runtime.replies import templates
from tests.support.envelopes import JOHN, make_deps, make_envelope


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Hello John, I see the issue with ORD-10002.", id="hello-and-issue"),
        pytest.param("Thanks for your assistance; we assess every return.", id="assistance-assess"),
        pytest.param("Our shell, class and passport cases are sold out.", id="shell-class-pass"),
        pytest.param("Returns are accepted within 30 days of delivery.", id="correct-return-policy"),
        pytest.param("We offer a 30-day return window.", id="30-day-window"),
        pytest.param(
            "Shipping is free on orders over $50. Free shipping over $50 applies.", id="correct-shipping"
        ),
        pytest.param("Electronics come with a 1-year warranty.", id="correct-warranty"),
        pytest.param("The warranty is 12 months on electronics.", id="warranty-in-months"),
        pytest.param(
            "I've filed a refund request for ORD-10001; our billing team will review it.",
            id="refund-request-filed",
        ),
        pytest.param(
            "ORD-10003 was delivered 45 days ago, outside our 30-day return window.",
            id="days-ago-is-not-a-policy",
        ),
        pytest.param(f"I couldn't find an account for {JOHN}.", id="customer-own-email"),
        pytest.param("Your order total was $149.00.", id="plain-price"),
        pytest.param(
            "ORD-10001, ORD-10002 and ORD-10003 (TRK100000001, TRK100000002) ship from our ISO 9001 site.",
            id="ids-and-look-alike-words",
        ),
        # What a draft says about a refund it may not give: the request, the card, who reviews it.
        pytest.param("I'll send your refund request to the billing team.", id="send-refund-request"),
        pytest.param("We\u2019ve received your refund request for review.", id="received-refund-request"),
        pytest.param("I'm not able to issue a refund in chat.", id="not-able-to-refund"),
        pytest.param("We charged your credit card on May 3.", id="credit-card"),
        pytest.param("I understand you want your money back.", id="wants-money-back"),
        pytest.param(
            "If your refund is approved, it goes back to your original payment method.",
            id="refund-approved-as-a-condition",
        ),
    ],
)
def test_clean_drafts_pass(text: str) -> None:
    assert check(text, JOHN) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("Your card 4111 1111 1111 1111 was charged.", "pii: card number", id="card"),
        pytest.param("Your card 4lll 1111 1111 1111 was charged.", "pii: card number", id="card-l-for-1"),
        pytest.param("Card on file: 4III-IIII-IIII-IIII.", "pii: card number", id="card-I-for-1"),
        pytest.param("We charged 5S55 5555 5555 4444 today.", "pii: card number", id="card-S-for-5"),
        pytest.param("Your SSN 123-45-6789 is on file.", "pii: social security number", id="ssn"),
        pytest.param(
            "Jane (jane.smith@example.com) had the same problem.",
            "pii: email address other than the customer's",
            id="other-email",
        ),
        pytest.param("What the hell happened here.", "profanity: hell", id="hell"),
        pytest.param("Damn, that's unlucky.", "profanity: damn", id="damn"),
        pytest.param("That was a stupid question.", "profanity: stupid", id="stupid"),
        pytest.param("Feel free to sue us.", "profanity: sue", id="sue"),
        pytest.param("We will refund you today.", "refund promised", id="we-will-refund"),
        # First person singular: the LLM drafts as "I" as often as "we".
        pytest.param("I will refund you today.", "refund promised", id="i-will-refund"),
        pytest.param("I'll refund the full amount to your card.", "refund promised", id="i-ll-refund"),
        pytest.param("I can credit your account for the delay.", "refund promised", id="i-can-credit"),
        pytest.param("I have refunded your order.", "refund promised", id="i-have-refunded"),
        # "reimburse" shares no keyword with the others: it must open the gate on its own.
        pytest.param("We will reimburse the shipping fee.", "refund promised", id="we-will-reimburse"),
        pytest.param("You will be reimbursed by Friday.", "refund promised", id="you-will-be-reimbursed"),
        pytest.param("We'll issue you a full refund.", "refund promised", id="issue-full-refund"),
        pytest.param("You will receive a refund within 3 days.", "refund promised", id="you-will-receive"),
        pytest.param("Your refund has been approved.", "refund promised", id="refund-approved"),
        pytest.param("You'll get a refund of $49.99.", "amount promised", id="refund-of-amount"),
        # Done deals in the phrasings models use (these once all passed): contractions, "went ahead
        # and", typographic apostrophes, passives about the order or the money.
        pytest.param("I've issued a full refund to your card.", "refund promised", id="i-ve-issued"),
        pytest.param("We\u2019ll refund you today.", "refund promised", id="typographic-apostrophe"),
        pytest.param("I\u2019ve refunded your order.", "refund promised", id="i-ve-refunded-typographic"),
        pytest.param("We're refunding the full amount today.", "refund promised", id="we-re-refunding"),
        pytest.param("I'd be happy to refund you right away.", "refund promised", id="happy-to-refund"),
        pytest.param("I'm issuing a refund for your order now.", "refund promised", id="i-m-issuing"),
        pytest.param("I went ahead and processed a refund for you.", "refund promised", id="went-ahead-and"),
        pytest.param("I've approved your refund.", "refund promised", id="i-ve-approved"),
        pytest.param("We'll get that refunded for you.", "refund promised", id="get-that-refunded"),
        pytest.param("I'll make sure you get your money back.", "refund promised", id="make-sure-you-get"),
        pytest.param("I can give you your money back.", "refund promised", id="give-money-back"),
        pytest.param("Good news: your order has been refunded.", "refund promised", id="order-refunded"),
        pytest.param("You've been refunded in full.", "refund promised", id="you-ve-been-refunded"),
        pytest.param("You're getting a full refund.", "refund promised", id="you-re-getting"),
        pytest.param("Your money will be returned to your card.", "refund promised", id="money-returned"),
        pytest.param("Your refund is on its way.", "refund promised", id="refund-on-its-way"),
        pytest.param("Here is a $20 voucher for the trouble.", "amount promised", id="voucher"),
        pytest.param("We guarantee it arrives tomorrow.", "guarantee", id="guarantee"),
        pytest.param("I promise it will be fine.", "guarantee", id="promise"),
        pytest.param("It will definitely arrive on Monday.", "guarantee", id="definitely-arrive"),
        pytest.param(
            "You can return it within 14 days.",
            "policy contradiction: returns are accepted within 30 days",
            id="14-day-returns",
        ),
        pytest.param(
            "You have a 14-day refund window.",
            "policy contradiction: returns are accepted within 30 days",
            id="14-day-refund",
        ),
        pytest.param(
            "We have a 60-day return policy.",
            "policy contradiction: returns are accepted within 30 days",
            id="60-day-return",
        ),
        pytest.param(
            "Sorry, we don't accept returns.",
            "policy contradiction: returns are accepted within 30 days",
            id="no-returns",
        ),
        pytest.param(
            "Free shipping on orders over $25.",
            "policy contradiction: shipping is free over $50",
            id="wrong-shipping-threshold",
        ),
        pytest.param(
            "Electronics have a 2-year warranty.",
            "policy contradiction: electronics have a 1-year warranty",
            id="2-year-warranty",
        ),
        pytest.param(
            "It has a lifetime warranty.",
            "policy contradiction: electronics have a 1-year warranty",
            id="lifetime-warranty",
        ),
    ],
)
def test_rejections(text: str, reason: str) -> None:
    assert reason in check(text, JOHN)


def _with_draft(text: str, attempt: int = 1, urgency: Urgency = Urgency.LOW) -> Envelope:
    envelope = make_envelope("Where is my order?", with_context=True)
    envelope.slip.index = DEFAULT_ROUTE.index(ActorName.GUARDRAIL_VALIDATOR)
    envelope.sentiment = Sentiment(label=SentimentLabel.NEUTRAL, score=0.0, urgency=urgency)
    envelope.intent = classify(envelope.message)
    envelope.draft = DraftResponse(text=text, method="llm", attempt=attempt)
    return envelope


async def test_approved_draft_keeps_the_route() -> None:
    envelope = _with_draft("Your order ORD-10002 is out for delivery.")
    await GuardrailValidator(make_deps()).handle(envelope)
    assert envelope.guardrail is not None
    assert (envelope.guardrail.approved, envelope.guardrail.action) == (True, "approved")
    assert envelope.slip.remaining == [ActorName.RESPONSE_AGGREGATOR]


async def test_first_rejection_regenerates_with_reasons() -> None:
    envelope = _with_draft("We will refund you $50, guaranteed.")
    done = envelope.slip.steps[: envelope.slip.index + 1]
    await GuardrailValidator(make_deps()).handle(envelope)
    verdict = envelope.guardrail
    assert verdict is not None
    assert (verdict.approved, verdict.action) == (False, "regenerate")
    assert "refund promised" in verdict.reasons
    assert "guarantee" in verdict.reasons
    assert envelope.slip.steps[: envelope.slip.index + 1] == done  # history untouched
    assert envelope.slip.remaining == [
        ActorName.RESPONSE_GENERATOR,
        ActorName.GUARDRAIL_VALIDATOR,
        ActorName.RESPONSE_AGGREGATOR,
    ]


@pytest.mark.parametrize(
    ("urgency", "action", "remaining"),
    [
        pytest.param(
            Urgency.LOW, "replaced", [ActorName.RESPONSE_AGGREGATOR], id="calm-customer-gets-template"
        ),
        pytest.param(
            Urgency.MEDIUM, "replaced", [ActorName.RESPONSE_AGGREGATOR], id="medium-urgency-gets-template"
        ),
        pytest.param(
            Urgency.HIGH,
            "escalate",
            [ActorName.ESCALATION_ROUTER, ActorName.RESPONSE_AGGREGATOR],
            id="urgent-customer-gets-a-human",
        ),
        pytest.param(
            Urgency.CRITICAL,
            "escalate",
            [ActorName.ESCALATION_ROUTER, ActorName.RESPONSE_AGGREGATOR],
            id="critical-customer-gets-a-human",
        ),
    ],
)
async def test_second_rejection(urgency: Urgency, action: str, remaining: list[ActorName]) -> None:
    envelope = _with_draft("We will refund you, I promise.", attempt=2, urgency=urgency)
    await GuardrailValidator(make_deps()).handle(envelope)
    verdict = envelope.guardrail
    assert verdict is not None
    assert (verdict.approved, verdict.action) == (False, action)
    assert "refund promised" in verdict.reasons, "the verdict keeps why the draft was rejected"
    assert envelope.slip.remaining == remaining
    if action == "replaced":
        assert verdict.replacement is not None
        assert "ORD-10002" in verdict.replacement  # the safe template still uses the real data
        assert check(verdict.replacement, JOHN) == []


async def test_no_draft_is_never_approved() -> None:
    envelope = _with_draft("unused")
    envelope.draft = None
    await GuardrailValidator(make_deps()).handle(envelope)
    verdict = envelope.guardrail
    assert verdict is not None
    assert (verdict.approved, verdict.action, verdict.reasons) == (
        False,
        "replaced",
        ["no draft to validate"],
    )


async def test_without_a_sentiment_a_second_rejection_is_replaced() -> None:
    envelope = _with_draft("We will refund you, I promise.", attempt=2)
    envelope.sentiment = None
    await GuardrailValidator(make_deps()).handle(envelope)
    assert envelope.guardrail is not None
    assert envelope.guardrail.action == "replaced"


async def test_a_template_that_fails_the_checks_is_not_used_as_the_replacement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    envelope = _with_draft("We will refund you, I promise.", attempt=2)
    monkeypatch.setattr(templates, "compose", lambda env: "We guarantee a refund of $500.")
    await GuardrailValidator(make_deps()).handle(envelope)
    verdict = envelope.guardrail
    assert verdict is not None
    assert verdict.replacement == templates.safe_reply(envelope)
    assert check(verdict.replacement, JOHN) == []


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("We'll give you a 15% discount on your next order.", id="we-will-give-discount"),
        pytest.param("I can offer you a discount code for the trouble.", id="i-can-offer-code"),
        pytest.param("I've applied a one-time coupon to your account.", id="i-have-applied-coupon"),
        pytest.param("I'm sending you a voucher by email.", id="i-am-sending-voucher"),
        pytest.param("We have added store credit to your account.", id="we-added-store-credit"),
        pytest.param("You'll receive a promo code within the hour.", id="you-will-receive-promo"),
        pytest.param("You have been given a gift card as an apology.", id="you-have-been-given"),
        pytest.param("You are eligible for a discount on ORD-10001.", id="you-are-eligible"),
        pytest.param("A 10% discount has been applied to your order.", id="impersonal-applied"),
        pytest.param("Store credit will be added to your account today.", id="impersonal-will-be-added"),
        pytest.param("Here's a coupon for your next purchase.", id="heres-a-coupon"),
        pytest.param("Your promo code is SORRY15.", id="your-code-is"),
        pytest.param("Use code SAVE20 at checkout.", id="use-code"),
        pytest.param("As an apology, enjoy 20% off your next order.", id="percent-off-next-order"),
        pytest.param("There's a $10 store credit waiting for you.", id="amount-store-credit"),
        pytest.param("We'd like to offer a discount of $15.", id="discount-of-amount"),
        # No other keyword of the gate (code, off, discount...): "promo" alone must open it.
        pytest.param("We'll send you a promo for your next order.", id="promo-alone"),
    ],
)
def test_discount_promises_are_rejected(text: str) -> None:
    assert "discount promised" in check(text, JOHN)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "You mentioned a discount code; I'm not able to apply discounts in chat.",
            id="quoted-and-declined",
        ),
        pytest.param("The coupon you mentioned can't be used on ORD-10001.", id="customer-coupon-quoted"),
        pytest.param("I see you used the promo code SPRING at checkout.", id="customer-code-quoted"),
        pytest.param("We can't offer vouchers or store credit in chat.", id="we-cannot-offer"),
        pytest.param("I cannot give you a discount, but I can check your order.", id="i-cannot-give"),
        pytest.param("I've added a note about the coupon you asked about.", id="note-about-coupon"),
        pytest.param("You asked whether you'll get a discount; our team decides that.", id="asked-whether"),
        pytest.param("Your credit card has been charged $149.00 for ORD-20002.", id="credit-card-charge"),
        pytest.param("Discount codes can't be applied after an order is placed.", id="impersonal-cannot"),
    ],
)
def test_mentions_of_discounts_that_promise_nothing_pass(text: str) -> None:
    assert check(text, JOHN) == []


@pytest.mark.parametrize(
    "agent_said",
    [
        "We will refund you today.",
        "I've issued a full refund for ORD-10002; it shows on your card in 3-5 days.",
        "Damn courier lost it; a replacement ships today.",
    ],
)
async def test_a_follow_up_quotes_the_agent_even_when_the_mesh_could_not_say_it(agent_said: str) -> None:
    """A person may promise what the mesh may not, and a follow-up quotes that person's latest reply
    word for word (docs/escalations.md). The guardrail once checked the quote as if the mesh had
    written it: the customer asking about their reference got the generic safe reply instead."""
    envelope = make_envelope("What's happening with ESC-1234abcd?", with_context=True)
    envelope.slip.index = DEFAULT_ROUTE.index(ActorName.GUARDRAIL_VALIDATOR)
    envelope.sentiment = Sentiment(label=SentimentLabel.NEUTRAL, score=0.0, urgency=Urgency.LOW)
    envelope.intent = classify(envelope.message)
    envelope.followups = [
        FollowUp(
            ref="ESC-1234abcd",
            found=True,
            state=EscalationState.CLAIMED,
            claimed=True,
            agent="ann@shop.example",
            last_reply=agent_said,
            last_reply_at=datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
        )
    ]
    envelope.draft = DraftResponse(text=templates.compose(envelope), method="template")
    assert agent_said in envelope.draft.text
    await GuardrailValidator(make_deps()).handle(envelope)
    assert envelope.guardrail is not None
    assert (envelope.guardrail.approved, envelope.guardrail.action) == (True, "approved")


async def test_what_the_mesh_adds_around_a_quote_is_still_checked() -> None:
    envelope = make_envelope("What's happening with ESC-1234abcd?", with_context=True)
    envelope.followups = [
        FollowUp(ref="ESC-1234abcd", found=True, state=EscalationState.CLAIMED, last_reply="On it.")
    ]
    envelope.draft = DraftResponse(
        text='Their latest reply was: "On it." We will refund you today.', method="template"
    )
    await GuardrailValidator(make_deps()).handle(envelope)
    assert envelope.guardrail is not None
    assert "refund promised" in envelope.guardrail.reasons


@pytest.mark.parametrize("name", ["Sue Park", "Dick Turner"])
async def test_a_customer_named_like_a_hostile_word_gets_their_reply(name: str) -> None:
    """The greeting "Hi Sue." once read as the hostile word "sue": every reply to a Sue, the template's
    too, failed the guardrail, and she got the generic safe reply (no order data) whatever she asked."""
    envelope = _with_draft("")
    assert envelope.context is not None
    envelope.context.name = name
    envelope.draft = DraftResponse(text=templates.compose(envelope), method="template")
    assert envelope.draft.text.startswith(f"Hi {name.split()[0]}.")
    await GuardrailValidator(make_deps()).handle(envelope)
    assert envelope.guardrail is not None
    assert (envelope.guardrail.approved, envelope.guardrail.action) == (True, "approved")


def test_a_name_excuses_only_itself() -> None:
    assert check("Hi Sue. We will refund you.", JOHN, own_names=["Sue"]) == ["refund promised"]
    assert check("Hi Sue, damn.", JOHN, own_names=["Sue"]) == ["profanity: damn"]
    assert check("Hi Sue.", JOHN) == ["profanity: sue"]


def test_an_llm_draft_names_only_the_ids_the_mesh_has() -> None:
    envelope = make_envelope("Is ORD-12345 mine?", with_context=True)
    assert envelope.context is not None
    order = envelope.context.orders[0]
    known = f"{order.order_id} ({order.tracking_number or 'no tracking'}); ORD-12345 is not on your account."
    assert unknown_ids(envelope, known) == []
    invented = "ORD-55555 ships today, tracking TRK000000001, and ord-555556 too."
    assert unknown_ids(envelope, invented) == [
        "unknown order id: ORD-55555",
        "unknown order id: ORD-555556",
        "unknown tracking number: TRK000000001",
    ]
