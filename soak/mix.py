"""The conversation mix of the soak: every intent and every side-effecting action on the mock APIs.

Each kind names what it must produce (intent, and the side-effecting actions the answer must report),
so the checker can tell "asked for and done once" from "asked for and missing". Cancelling and
returning change an order for good, so only the first such conversation per order is `done`; every
later one is refused — by the policy when the customer's context already shows the change, or by
the API's 409 — and must still leave exactly one effect behind. Refund requests and complaint notes
are new records every time, so they prove "exactly once" for every conversation that asks.
"""

from __future__ import annotations

from dataclasses import dataclass

from actormesh_runtime.envelope import ActionType, Intent

JOHN, JANE, BOB, MIA = (
    "john.doe@example.com",
    "jane.smith@example.com",
    "bob.wilson@example.com",
    "mia.park@example.com",
)

SIDE_EFFECTS: frozenset[ActionType] = frozenset(
    {
        ActionType.CANCEL_ORDER,
        ActionType.CREATE_RETURN_LABEL,
        ActionType.CREATE_REFUND_REQUEST,
        ActionType.ADD_NOTE,
    }
)


@dataclass(frozen=True)
class Kind:
    name: str
    email: str
    text: str
    intent: Intent
    asks: tuple[ActionType, ...] = ()
    """Side-effecting actions the answer must report (whatever their outcome)."""
    escalates: bool = False


MIX: tuple[Kind, ...] = (
    Kind("order_status", JOHN, "Where is my order ORD-10002? I ordered it last week.", Intent.ORDER_STATUS),
    Kind("delivery_issue", JOHN, "My package ORD-10002 still has not arrived, it is late and I need it",
         Intent.DELIVERY_ISSUE),
    Kind("cancel", BOB, "Please cancel my order ORD-30001, I changed my mind.", Intent.CANCELLATION_REQUEST,
         (ActionType.CANCEL_ORDER,)),
    Kind("cancel_vip", JANE, "Please cancel my order ORD-20001, I no longer need it.",
         Intent.CANCELLATION_REQUEST, (ActionType.CANCEL_ORDER,)),
    Kind("return", JOHN, "I want to return the headphones from ORD-10001, they don't fit well.",
         Intent.RETURN_REQUEST, (ActionType.CREATE_RETURN_LABEL,)),
    Kind("refund", BOB, "I was charged twice for ORD-30001, I need a refund for the extra charge",
         Intent.BILLING_ISSUE, (ActionType.CREATE_REFUND_REQUEST,)),
    Kind("refund_vip", JANE, "I was billed twice for order ORD-20002, please refund the duplicate charge.",
         Intent.BILLING_ISSUE, (ActionType.CREATE_REFUND_REQUEST,)),
    Kind("escalation", JOHN, "This is ridiculous, I want to speak to a manager right now!",
         Intent.ESCALATION_REQUEST, escalates=True),
    Kind("product_complaint", JOHN,
         "The headphones from ORD-10001 arrived broken, the left side is silent. Terrible quality.",
         Intent.PRODUCT_ISSUE, (ActionType.ADD_NOTE,)),
    Kind("general", JOHN, "What is your return policy for electronics?", Intent.GENERAL_QUESTION),
    Kind("compliment", JANE, "Thank you, your service is great and I love the keyboard!", Intent.COMPLIMENT),
    Kind("account", MIA, "I can't log in, my account was suspended. Can you help?", Intent.ACCOUNT_ISSUE),
)  # fmt: skip


def kind_of(seq: int) -> Kind:
    return MIX[seq % len(MIX)]
