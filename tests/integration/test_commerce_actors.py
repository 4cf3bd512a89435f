"""context_retriever → decision_router → execution_coordinator against the mock APIs over real HTTP.

Sentiment and intent are set by hand (those actors have their own tests); everything from the
customer lookup to the side effect goes through real sockets on random ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from actormesh_runtime.actors.context_retriever import ContextRetriever
from actormesh_runtime.actors.decision_router import DecisionRouter
from actormesh_runtime.actors.execution_coordinator import ExecutionCoordinator
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import ActionStatus, Envelope, Intent, IntentResult, SentimentLabel, Urgency
from actormesh_runtime.mocks.server import MockPorts, MocksHandle, serve_mocks
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings
from tests.support.commerce import envelope_for, intent, sentiment

pytestmark = pytest.mark.integration


@dataclass
class Mesh:
    mocks: MocksHandle
    settings: RuntimeSettings
    retriever: ContextRetriever
    router: DecisionRouter
    coordinator: ExecutionCoordinator

    async def through(self, env: Envelope) -> Envelope:
        """Run the envelope from context_retriever up to (and including) the coordinator if routed there."""
        env.slip.index = env.slip.steps.index(ActorName.CONTEXT_RETRIEVER)
        await self.retriever.handle(env)
        env.slip.advance()
        await self.router.handle(env)
        if env.slip.advance() is ActorName.EXECUTION_COORDINATOR:
            # What the bus would carry to the next step: the envelope serialized and decoded.
            env = Envelope.from_bytes(env.to_bytes())
            await self.coordinator.handle(env)
        return env

    async def order_status(self, order_id: str) -> str:
        async with httpx.AsyncClient(base_url=self.mocks.orders_api_url) as client:
            return str((await client.get(f"/orders/{order_id}")).json()["status"])


@pytest.fixture
async def mesh() -> AsyncIterator[Mesh]:
    mocks = await serve_mocks("127.0.0.1", MockPorts(0, 0, 0))
    settings = RuntimeSettings(
        mesh_name="commerce-it",
        customer_api_url=mocks.customer_api_url,
        orders_api_url=mocks.orders_api_url,
        tracking_api_url=mocks.tracking_api_url,
    )
    deps = ActorDeps(settings=settings, publisher=None, whole_mesh=True)  # type: ignore[arg-type]
    actors = (ContextRetriever(deps), DecisionRouter(deps), ExecutionCoordinator(deps))
    for actor in actors:
        await actor.start()
    yield Mesh(mocks, settings, *actors)
    for actor in actors:
        await actor.stop()
    assert deps.extras == {}, "the shared client and cache are closed by the last actor"
    await mocks.stop()


def message(email: str, it: IntentResult, **sentiment_args: object) -> Envelope:
    env = envelope_for(email, "please help")
    env.sentiment = sentiment(**sentiment_args)  # type: ignore[arg-type]
    env.intent = it
    return env


async def test_vip_cancellation_is_executed(mesh: Mesh) -> None:
    env = await mesh.through(message("jane.smith@example.com", intent(Intent.CANCELLATION_REQUEST)))
    assert env.decision is not None
    assert env.decision.target_order_id == "ORD-20001"
    [outcome] = env.actions
    assert (outcome.status, outcome.order_id) == (ActionStatus.DONE, "ORD-20001")
    assert await mesh.order_status("ORD-20001") == "cancelled"
    # The next message sees the change (the coordinator invalidated the cached context).
    after = await mesh.through(message("jane.smith@example.com", intent(Intent.ORDER_STATUS)))
    assert after.context is not None
    assert {o.order_id: o.status for o in after.context.orders}["ORD-20001"] == "cancelled"


async def test_standard_cancellation_files_a_request(mesh: Mesh) -> None:
    env = await mesh.through(message("bob.wilson@example.com", intent(Intent.CANCELLATION_REQUEST)))
    [outcome] = env.actions
    assert outcome.status is ActionStatus.PENDING_REVIEW
    assert await mesh.order_status("ORD-30001") == "pending"


async def test_redelivered_coordinator_acts_exactly_once(mesh: Mesh) -> None:
    env = await mesh.through(message("john.doe@example.com", intent(Intent.RETURN_REQUEST)))
    [first] = env.actions
    assert (first.status, first.order_id) == (ActionStatus.DONE, "ORD-10001")
    label_id = first.data["label_id"]

    # Redelivery: the same envelope (same message id) reaches the coordinator again, twice at once.
    replay = Envelope.from_bytes(env.model_copy(update={"actions": []}).to_bytes())
    twin = Envelope.from_bytes(replay.to_bytes())
    await asyncio.gather(mesh.coordinator.handle(replay), mesh.coordinator.handle(twin))
    for again in (replay, twin):
        [outcome] = again.actions
        assert (outcome.status, outcome.data["label_id"]) == (ActionStatus.DONE, label_id)

    assert mesh.mocks.state.effects == 1
    labels = [r for r in mesh.mocks.state.records.values() if r["kind"] == "return_label"]
    assert len(labels) == 1
    assert await mesh.order_status("ORD-10001") == "return_started"

    # A new message is a new request: the API now refuses a second label for the same order.
    fresh = await mesh.through(
        message("john.doe@example.com", intent(Intent.RETURN_REQUEST, orders=("ORD-10001",)))
    )
    assert fresh.actions[0].status is ActionStatus.REFUSED
    assert mesh.mocks.state.effects == 1


@pytest.mark.parametrize(
    ("email", "it"),
    [
        pytest.param("john.doe@example.com", intent(Intent.RETURN_REQUEST), id="return-label"),
        pytest.param("jane.smith@example.com", intent(Intent.CANCELLATION_REQUEST), id="cancel"),
    ],
)
async def test_a_chain_run_again_from_its_first_step_answers_what_the_first_run_did(
    mesh: Mesh, email: str, it: IntentResult
) -> None:
    """A step after the coordinator failed, and the whole chain ran again (hop fusion, direct hops):
    the customer lookup now reads the order as the first run changed it. The rerun must report the
    first run's outcome (with the label's link), not "already issued", and change nothing again."""
    original = message(email, it)
    first = await mesh.through(Envelope.from_bytes(original.to_bytes()))
    [done] = first.actions
    assert done.status is ActionStatus.DONE
    rerun = Envelope.from_bytes(original.to_bytes())
    rerun.headers.attempt = 2  # the origin's second delivery: every step of the rerun runs as attempt 2
    [again] = (await mesh.through(rerun)).actions
    assert again.model_dump() == done.model_dump()
    assert mesh.mocks.state.effects == 1


async def test_escalation_skips_the_coordinator(mesh: Mesh) -> None:
    env = await mesh.through(
        message(
            "jane.smith@example.com",
            intent(Intent.CANCELLATION_REQUEST),
            label=SentimentLabel.NEGATIVE,
            urgency=Urgency.CRITICAL,
        )
    )
    assert env.decision is not None
    assert env.decision.escalate
    assert env.slip.remaining == [ActorName.RESPONSE_AGGREGATOR]  # escalation_router is current
    assert env.actions == []
    assert await mesh.order_status("ORD-20001") == "processing"


async def test_unknown_customer_gets_no_foreign_data(mesh: Mesh) -> None:
    env = await mesh.through(
        message("nobody@example.com", intent(Intent.CANCELLATION_REQUEST, orders=("ORD-20001",)))
    )
    assert env.context is not None
    assert env.context.found is False
    assert env.actions == []
    assert "CUST-" not in env.model_dump_json()
    assert mesh.mocks.state.effects == 0


async def test_delivery_problem_reads_tracking_only(mesh: Mesh) -> None:
    env = await mesh.through(message("jane.smith@example.com", intent(Intent.DELIVERY_ISSUE)))
    [outcome] = env.actions
    assert outcome.status is ActionStatus.DONE
    assert outcome.data["status"] == "exception"
    assert outcome.data["tracking_number"] == "TRK200000001"
    assert mesh.mocks.state.effects == 0
