"""execution_coordinator against the mock apps in-process: outcomes, side effects, replay, stale context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from actormesh_runtime.actors.execution_coordinator import ExecutionCoordinator, label_link
from actormesh_runtime.clients.commerce import release_commerce_client
from actormesh_runtime.envelope import (
    ActionOutcome,
    ActionStatus,
    ActionType,
    Envelope,
    Intent,
    IntentResult,
    Screening,
    Sentiment,
    SentimentLabel,
)
from actormesh_runtime.mocks.state import MockState
from actormesh_runtime.policy.decision import decide
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.storage.cache import acquire_context_cache, release_context_cache
from tests.support.commerce import (
    context_for,
    deps_with_client,
    envelope_for,
    intent,
    mock_transports,
    mounted_client,
    sentiment,
    unit_settings,
)


@dataclass
class Rig:
    actor: ExecutionCoordinator
    state: MockState
    deps: ActorDeps

    def order_status(self, order_id: str) -> str:
        return self.state.data.orders[order_id].status


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    state = MockState()
    settings = unit_settings()
    deps = deps_with_client(settings, mounted_client(settings, mock_transports(state)))
    actor = ExecutionCoordinator(deps)
    await actor.start()
    yield Rig(actor, state, deps)
    await actor.stop()
    await release_commerce_client(deps)


def prepared(
    email: str,
    it: IntentResult,
    st: Sentiment | None = None,
    message_id: str | None = None,
    *,
    attempt: int = 1,
    live: MockState | None = None,
) -> Envelope:
    """An envelope as it reaches the coordinator: context from the mock tables (with the orders'
    statuses as `live` has them now, if given), decision from the policy."""
    now = datetime.now(UTC)
    env = envelope_for(email, "help with my order", message_id=message_id, now=now)
    env.headers.attempt = attempt
    env.sentiment, env.intent, env.context = st or sentiment(), it, context_for(email, now)
    if live is not None:
        for order in env.context.orders:
            order.status = live.data.orders[order.order_id].status
    env.decision = decide(
        sentiment=env.sentiment,
        intent=it,
        context=env.context,
        screening=Screening(),
        threshold=0.45,
        now=now,
        rerun=attempt > 1,
    )
    return env


async def run(rig: Rig, env: Envelope) -> list[ActionOutcome]:
    await rig.actor.handle(env)
    return env.actions


JOHN, JANE, BOB, MIA = (f"{n}@example.com" for n in ("john.doe", "jane.smith", "bob.wilson", "mia.park"))


@pytest.mark.parametrize(
    ("email", "it", "status", "order_id", "says", "effects", "order_after"),
    [
        pytest.param(
            JANE,
            intent(Intent.CANCELLATION_REQUEST),
            ActionStatus.DONE,
            "ORD-20001",
            "has been cancelled",
            1,
            "cancelled",
            id="vip-cancel-executed",
        ),
        pytest.param(
            BOB,
            intent(Intent.CANCELLATION_REQUEST),
            ActionStatus.PENDING_REVIEW,
            "ORD-30001",
            "pending review",
            1,
            "pending",
            id="standard-cancel-request",
        ),
        pytest.param(
            JOHN,
            intent(Intent.CANCELLATION_REQUEST, orders=("ORD-10002",)),
            ActionStatus.REFUSED,
            "ORD-10002",
            "return it",
            0,
            "shipped",
            id="shipped-cancel-refused",
        ),
        pytest.param(
            JOHN,
            intent(Intent.CANCELLATION_REQUEST),
            ActionStatus.REFUSED,
            None,
            "only before they ship",
            0,
            None,
            id="nothing-cancellable",
        ),
        pytest.param(
            JOHN,
            intent(Intent.RETURN_REQUEST),
            ActionStatus.DONE,
            "ORD-10001",
            "return label",
            1,
            "return_started",
            id="return-label-created",
        ),
        pytest.param(
            JOHN,
            intent(Intent.RETURN_REQUEST, orders=("ORD-10003",)),
            ActionStatus.REFUSED,
            "ORD-10003",
            "30 days",
            0,
            "delivered",
            id="return-after-window-refused",
        ),
        pytest.param(
            JOHN,
            intent(Intent.BILLING_ISSUE, orders=("ORD-10001",)),
            ActionStatus.PENDING_REVIEW,
            "ORD-10001",
            "refund request",
            1,
            "delivered",
            id="refund-request-filed",
        ),
        pytest.param(
            JOHN,
            intent(Intent.BILLING_ISSUE),
            ActionStatus.SKIPPED,
            None,
            "which one",
            0,
            None,
            id="several-orders-ask-which",
        ),
        pytest.param(
            JOHN,
            intent(Intent.CANCELLATION_REQUEST, orders=("ORD-20001",)),
            ActionStatus.REFUSED,
            None,
            "could not find ORD-20001",
            0,
            None,
            id="other-customers-order-refused",
        ),
        pytest.param(
            JANE,
            intent(Intent.DELIVERY_ISSUE),
            ActionStatus.DONE,
            "ORD-20002",
            "exception",
            0,
            "shipped",
            id="tracking-lookup-read-only",
        ),
    ],
)
async def test_action_outcomes(
    rig: Rig,
    email: str,
    it: IntentResult,
    status: ActionStatus,
    order_id: str | None,
    says: str,
    effects: int,
    order_after: str | None,
) -> None:
    [outcome] = await run(rig, prepared(email, it))
    assert (outcome.status, outcome.order_id) == (status, order_id)
    assert says in outcome.detail
    assert rig.state.effects == effects
    if order_after is not None and order_id is not None:
        assert rig.order_status(order_id) == order_after
    assert "$" not in outcome.detail  # never an amount


async def test_complaint_adds_a_note_beside_the_tracking_lookup(rig: Rig) -> None:
    env = prepared(JOHN, intent(Intent.DELIVERY_ISSUE), sentiment(SentimentLabel.NEGATIVE, complaint=True))
    tracking, note = await run(rig, env)
    assert (tracking.type, tracking.status, tracking.data["tracking_number"]) == (
        ActionType.TRACKING_LOOKUP,
        ActionStatus.DONE,
        "TRK100000002",
    )
    assert (note.type, note.status) == (ActionType.ADD_NOTE, ActionStatus.DONE)
    [record] = rig.state.records.values()
    assert record["kind"] == "note"
    assert env.message_id in record["text"]


@pytest.mark.parametrize(
    ("email", "it", "st", "effects"),
    [
        pytest.param(JANE, intent(Intent.CANCELLATION_REQUEST), None, 1, id="cancel"),
        pytest.param(BOB, intent(Intent.CANCELLATION_REQUEST), None, 1, id="cancellation-request"),
        pytest.param(JOHN, intent(Intent.RETURN_REQUEST), None, 1, id="return-label"),
        pytest.param(JOHN, intent(Intent.BILLING_ISSUE, orders=("ORD-10001",)), None, 1, id="refund-request"),
        pytest.param(
            JANE,
            intent(Intent.DELIVERY_ISSUE),
            sentiment(SentimentLabel.NEGATIVE, complaint=True),
            1,
            id="account-note",
        ),
    ],
)
async def test_redelivery_repeats_no_side_effect(
    rig: Rig, email: str, it: IntentResult, st: Sentiment | None, effects: int
) -> None:
    env = prepared(email, it, st)
    redelivered = env.model_copy(deep=True)  # what the stream redelivers: the envelope before this step
    first = await run(rig, env)
    assert rig.state.effects == effects
    again = await run(rig, redelivered)
    assert rig.state.effects == effects, "a redelivered envelope repeated a side effect"
    assert [o.model_dump(exclude={"detail"}) for o in again] == [
        o.model_dump(exclude={"detail"}) for o in first
    ]
    assert all(o.idempotency_key for o in first if o.type is not ActionType.TRACKING_LOOKUP)


@pytest.mark.parametrize(
    ("email", "it"),
    [
        pytest.param(JANE, intent(Intent.CANCELLATION_REQUEST), id="cancel"),
        pytest.param(JOHN, intent(Intent.RETURN_REQUEST), id="return-label-unnamed"),
        pytest.param(JOHN, intent(Intent.RETURN_REQUEST, orders=("ORD-10001",)), id="return-label-named"),
    ],
)
async def test_a_chain_run_again_reports_what_its_first_run_did(
    rig: Rig, email: str, it: IntentResult
) -> None:
    """A later step failed after this one, and the chain ran again from its first step (fusion, direct
    hops, a retry): its context is read again, with the order as the first run left it. It must still
    report the first run's outcome (the label's link, the cancellation), not "already done"."""
    [first] = await run(rig, prepared(email, it, message_id="msg-rerun"))
    assert first.status is ActionStatus.DONE
    rerun = prepared(email, it, message_id="msg-rerun", attempt=2, live=rig.state)
    [again] = await run(rig, rerun)
    assert again.model_dump() == first.model_dump()
    assert rig.state.effects == 1


async def test_a_rerun_on_an_order_someone_else_changed_is_refused_as_before(rig: Rig) -> None:
    await run(rig, prepared(JOHN, intent(Intent.RETURN_REQUEST, orders=("ORD-10001",)), message_id="msg-1"))
    other = prepared(
        JOHN,
        intent(Intent.RETURN_REQUEST, orders=("ORD-10001",)),
        message_id="msg-2",
        attempt=2,
        live=rig.state,
    )
    [outcome] = await run(rig, other)
    assert outcome.status is ActionStatus.REFUSED
    assert outcome.detail == "A return label was already issued for ORD-10001."  # the policy's words
    assert rig.state.effects == 1


async def test_a_new_message_on_a_changed_order_is_refused_by_the_api(rig: Rig) -> None:
    await run(rig, prepared(JANE, intent(Intent.CANCELLATION_REQUEST), message_id="msg-1"))
    # Context still says "processing" (e.g. from a cache), but the order was cancelled meanwhile.
    [outcome] = await run(rig, prepared(JANE, intent(Intent.CANCELLATION_REQUEST), message_id="msg-2"))
    assert outcome.status is ActionStatus.REFUSED
    assert "cancelled" in outcome.detail
    assert rig.state.effects == 1


async def test_a_change_invalidates_the_cached_context(rig: Rig) -> None:
    cache = acquire_context_cache(rig.deps)
    try:
        await cache.put(context_for(JANE), (await cache.read(JANE)).generation)
        await run(rig, prepared(JANE, intent(Intent.CANCELLATION_REQUEST)))
        assert await cache.get(JANE) is None
    finally:
        await release_context_cache(rig.deps)


async def test_nothing_planned_leaves_the_envelope_alone(rig: Rig) -> None:
    env = prepared(JOHN, intent(Intent.ORDER_STATUS))
    assert await run(rig, env) == []
    assert rig.state.effects == 0


async def test_return_label_link_from_the_api_is_in_the_detail_and_data(rig: Rig) -> None:
    [outcome] = await run(rig, prepared(JOHN, intent(Intent.RETURN_REQUEST, orders=("ORD-10001",))))
    [record] = [r for r in rig.state.records.values() if r["kind"] == "return_label"]
    assert outcome.status is ActionStatus.DONE
    assert f" {record['label_url']} " in outcome.detail  # followed by a space: no period glued to it
    assert outcome.data["label_url"] == record["label_url"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param("https://returns.example.com/labels/ORD-1", True, id="https"),
        pytest.param("http://localhost:8080/labels/ORD-1", True, id="http"),
        pytest.param("javascript:alert(1)", False, id="script-url"),
        pytest.param("https://x.example/a b", False, id="whitespace"),
        pytest.param(None, False, id="absent"),
        pytest.param(42, False, id="not-a-string"),
    ],
)
def test_only_plain_http_label_links_are_shown(value: object, shown: bool) -> None:
    assert (label_link(value) is not None) is shown
