"""Runs approved actions: the consumer of `Subjects.approvals_execute`, beside execution_coordinator.

A person approved a `pending_review` action (history service → durable command). This runs it once,
in the execution_coordinator process — the one component allowed to change orders (commerce egress,
NATS permissions) — with the approval's own idempotency key (`approvals.mutation_key`), so the
commerce API applies it once whatever is redelivered or clicked twice. The result goes back on
`Subjects.approvals_outcome` (JetStream, msg id `<id>:outcome`) for the history service to record
and tell the customer; the command is acked only after that publish. A refusal by the API (the
order shipped meanwhile) is a result too; an unreachable API is retried by redelivery. As in
execution_coordinator, a cancellation counts as done only when the API says `cancelled` (a 202
"pending" is reported as not confirmed), and the customer's cached context is invalidated after
every call, answered or not, so the next message sees the order as it now is.

Started by `bus.process.ActorProcess` and `local.mesh.LocalMesh` next to execution_coordinator's host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from actormesh_runtime.approvals import CANCEL, ApprovalCommand, ApprovalOutcome, ApprovalRecord, mutation_key
from actormesh_runtime.bus.pull import PullFeed, pull_forever
from actormesh_runtime.bus.reconcile import restore_consumer
from actormesh_runtime.cancellation import cancel_and_wait
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.clients.commerce import (
    ApiRejected,
    CommerceClient,
    acquire_commerce_client,
    release_commerce_client,
)
from actormesh_runtime.policy.decision import account_status_words, status_restricted
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.storage.cache import ContextCache, acquire_context_cache, release_context_cache

from .publish import MSG_ID_HEADER

log = logging.getLogger(__name__)

FETCH_WAIT_S = 1.0
RETRY_DELAY_S = 5.0


def executor_consumer_config(subjects: Subjects) -> ConsumerConfig:
    name = subjects.approvals_executor_consumer
    return ConsumerConfig(
        name=name,
        durable_name=name,
        description=f"ActorMesh {subjects.mesh}: approved actions, run by execution_coordinator",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=60.0,
        max_deliver=-1,
        filter_subject=subjects.approvals_execute,
    )


async def run_approved(
    client: CommerceClient, record: ApprovalRecord, cache: ContextCache
) -> ApprovalOutcome:
    """The mutation for an approved record. Raises `TransientError` when the API cannot be reached."""
    decision = record.decision
    if decision is None or decision.verdict != "approve":
        return ApprovalOutcome(
            approval_id=record.id, status="refused", detail="This request was not approved."
        )
    order = record.order.order_id
    customer = await client.customer_by_email(record.customer_email)
    if customer is None:
        return ApprovalOutcome(
            approval_id=record.id,
            status="refused",
            detail=f"We could not find the account that {order} belongs to.",
        )
    what = "cancellation" if record.action == CANCEL else "refund"
    if status_restricted(customer.status):
        # Suspended (or closed, ...) since the request was filed: the person approved an active
        # account's request. As execution_coordinator's precheck, no change on a restricted account.
        words = account_status_words(customer.status)
        return ApprovalOutcome(
            approval_id=record.id,
            status="refused",
            detail=f"Your {what} for {order} was approved, but your account is {words}, so order"
            " changes need a member of our support team.",
        )
    amount = decision.amount or 0.0
    if record.action != CANCEL and amount < 0.01:
        return ApprovalOutcome(
            approval_id=record.id,
            status="refused",
            detail=f"Your refund for {order} was approved without an amount; our support team will"
            " check on it.",
        )
    reason = f"approved by {decision.by}"
    try:
        if record.action == CANCEL:
            body = await client.mutate_order(
                order, "cancel", customer_id=customer.customer_id, reason=reason, key=mutation_key(record)
            )
            if str(body.get("status", "")).strip().lower() != "cancelled":
                return ApprovalOutcome(
                    approval_id=record.id,
                    status="refused",
                    detail=f"Your cancellation of {order} was approved, but our order system has not"
                    " confirmed it yet; our support team will check on it.",
                )
        else:
            await client.issue_refund(
                order,
                customer_id=customer.customer_id,
                amount=amount,
                reason=reason,
                key=mutation_key(record),
            )
    except ApiRejected as exc:
        return ApprovalOutcome(
            approval_id=record.id,
            status="refused",
            detail=f"Your {what} for {order} was approved, but it could not be completed: {exc.detail}",
        )
    finally:
        # Also when no answer came (the change may have happened all the same) or the API refused.
        await cache.invalidate(record.customer_email)
    return ApprovalOutcome(approval_id=record.id, status="done", detail="done")


class ApprovalExecutor:
    def __init__(self, nc: NATS, subjects: Subjects, deps: ActorDeps) -> None:
        self.nc = nc
        self.subjects = subjects
        self.deps = deps
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None
        self._client: CommerceClient | None = None
        self._cache: ContextCache | None = None

    async def start(self) -> None:
        js = self.nc.jetstream()
        self._sub = await js.pull_subscribe(
            self.subjects.approvals_execute,
            durable=self.subjects.approvals_executor_consumer,
            stream=self.subjects.stream,
            config=executor_consumer_config(self.subjects),
        )
        self._client = acquire_commerce_client(self.deps)
        self._cache = acquire_context_cache(self.deps)
        self._task = asyncio.create_task(self._loop(), name="approval-executor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        if self._client is not None:
            self._client = None
            await release_commerce_client(self.deps)
        if self._cache is not None:
            self._cache = None
            await release_context_cache(self.deps)

    async def _loop(self) -> None:
        js = self.nc.jetstream()
        config = executor_consumer_config(self.subjects)
        # Created again as declared should it vanish: approved actions would wait unrun, in silence.
        await pull_forever(
            PullFeed(self._sub, self.nc), 8, FETCH_WAIT_S, self._handle,
            restore=lambda: restore_consumer(js, self.subjects.stream, config),
        )  # fmt: skip

    async def _handle(self, msg: Any) -> None:
        try:
            command = ApprovalCommand.model_validate_json(msg.data)
        except ValidationError:
            log.error("invalid approval command terminated")
            await msg.term()
            return
        assert self._client is not None
        assert self._cache is not None
        record = command.approval
        try:
            outcome = await run_approved(self._client, record, self._cache)
            await self.nc.jetstream().publish(
                self.subjects.approvals_outcome,
                outcome.model_dump_json().encode(),
                stream=self.subjects.stream,
                headers={MSG_ID_HEADER: f"{record.id}:outcome"},
            )
        except Exception as exc:  # TransientError (the API is away) or the bus: redelivered later
            log.warning("approved action not run yet", extra={"id": record.id, "error": repr(exc)[:300]})
            with contextlib.suppress(Exception):
                await msg.nak(delay=RETRY_DELAY_S)
            return
        await msg.ack()
        log.info("approved action run", extra={"id": record.id, "status": outcome.status})
