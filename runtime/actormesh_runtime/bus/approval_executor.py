"""Runs approved actions: the consumer of `Subjects.approvals_execute`, beside execution_coordinator.

A person approved a `pending_review` action (history service → durable command). This runs it once,
in the execution_coordinator process — the one component allowed to change orders (commerce egress,
NATS permissions) — with the approval's own idempotency key (`approvals.mutation_key`), so the
commerce API applies it once whatever is redelivered or clicked twice. The result goes back on
`Subjects.approvals_outcome` (JetStream, msg id `<id>:outcome`) for the history service to record
and tell the customer; the command is acked only after that publish. A refusal by the API (the
order shipped meanwhile) is a result too; an unreachable API is retried by redelivery until it
answers. A reply that cannot be read (a body that is not JSON or not the shape the API promises: a
proxy's error page with a 200, say) or any other error is retried `MAX_DELIVER` deliveries at most,
`REDELIVERY_BACKOFF_S` apart as on the bus, then given up for good: the result is `failed` with the
reason, which the history service records and tells like any other, logged at error and counted
(`actormesh_approval_actions_failed_total`). The same for a command this process cannot read, when it
names its approval. As in
execution_coordinator, a cancellation counts as done only when the API says `cancelled` (a 202
"pending" is reported as not confirmed), and the customer's cached context is invalidated after
every call, answered or not, so the next message sees the order as it now is.

Started by `bus.process.ActorProcess` and `local.mesh.LocalMesh` next to execution_coordinator's host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter
from pydantic import ValidationError

from actormesh_runtime.approvals import (
    APPROVAL_ID_PATTERN,
    CANCEL,
    FAILED,
    ApprovalCommand,
    ApprovalOutcome,
    ApprovalRecord,
    mutation_key,
)
from actormesh_runtime.bus.host import backoff_for
from actormesh_runtime.bus.pull import PullFeed, delivery_of, pull_forever
from actormesh_runtime.bus.reconcile import restore_consumer
from actormesh_runtime.cancellation import cancel_and_wait
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.clients.commerce import (
    ApiRejected,
    CommerceClient,
    acquire_commerce_client,
    release_commerce_client,
)
from actormesh_runtime.errors import PermanentError, TransientError
from actormesh_runtime.observability.emails import pseudonymise_emails
from actormesh_runtime.policy.decision import account_status_words, status_restricted
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.screening import describe_invalid
from actormesh_runtime.storage.cache import ContextCache, acquire_context_cache, release_context_cache

from .publish import MSG_ID_HEADER

log = logging.getLogger(__name__)

FETCH_WAIT_S = 1.0
RETRY_DELAY_S = 5.0
"""Between deliveries while the commerce API (or the bus) cannot be reached: retried until it can."""

GIVEN_UP = Counter(
    "actormesh_approval_actions_failed_total",
    "Approved actions given up on: a reply that could not be read (or another error) on every one of"
    " MAX_DELIVER deliveries, or a command that could not be read.",
    ["reason"],
)


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
    client: CommerceClient,
    record: ApprovalRecord,
    cache: ContextCache,
    sending: Callable[[], None] = lambda: None,
) -> ApprovalOutcome:
    """The mutation for an approved record. Raises `TransientError` when the API cannot be reached.
    `sending` is called just before the mutation request goes out: a failure raised before it changed
    nothing."""
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
    sending()
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


TRACKED_COMMANDS = 1024
"""Commands whose failures `ApprovalExecutor` remembers at most (the oldest are forgotten first): far
more than are ever retried at once, bounded all the same."""
STOP_WAIT_S = 5.0
"""How long `ApprovalExecutor.stop` lets the running command finish and the open pull request be handed
back before it cancels."""


@dataclass
class _Tries:
    """What this process saw of one command (one stream sequence)."""

    first_delivery: int
    failures: int = 0
    """Deliveries that failed otherwise than by an unreachable API (`TransientError`)."""
    sent: bool = False
    """Whether a delivery got as far as sending the mutation request."""


class _Attempts:
    """The failures that count towards giving a command up, per stream sequence, in this process only
    (a restart starts every count afresh: at most MAX_DELIVER more calls under the same key). The
    JetStream delivery count cannot serve: it also counts the deliveries nak'ed while the API was away,
    so after a long enough outage the first unreadable reply would give up at once."""

    def __init__(self, limit: int = TRACKED_COMMANDS) -> None:
        self._limit = limit
        self._by_seq: OrderedDict[int, _Tries] = OrderedDict()
        self._sent: OrderedDict[str, None] = OrderedDict()
        """Approvals whose mutation a delivery of any copy of its command sent (the sweep hands an
        approval over again as a new message)."""

    def seen(self, seq: int, deliveries: int) -> _Tries:
        tries = self._by_seq.get(seq)
        if tries is None:
            tries = self._by_seq[seq] = _Tries(first_delivery=deliveries)
        self._by_seq.move_to_end(seq)
        while len(self._by_seq) > self._limit:
            self._by_seq.popitem(last=False)
        return tries

    def sending(self, tries: _Tries, approval_id: str) -> None:
        tries.sent = True
        self._sent[approval_id] = None
        self._sent.move_to_end(approval_id)
        while len(self._sent) > self._limit:
            self._sent.popitem(last=False)

    def surely_unsent(self, tries: _Tries, approval_id: str) -> bool:
        """True only when this process saw every delivery of the command (from the first) and none of
        any copy of it sent the mutation: otherwise it may have been applied."""
        return tries.first_delivery == 1 and not tries.sent and approval_id not in self._sent

    def done(self, seq: int) -> None:
        self._by_seq.pop(seq, None)


class ApprovalExecutor:
    def __init__(self, nc: NATS, subjects: Subjects, deps: ActorDeps) -> None:
        self.nc = nc
        self.subjects = subjects
        self.deps = deps
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._sub: Any = None
        self._client: CommerceClient | None = None
        self._cache: ContextCache | None = None
        self._attempts = _Attempts()

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
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="approval-executor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            # The loop ends on its own after the command it runs, handing back what its open pull
            # request still delivers (else those wait out the ack wait); cancelled only if it hangs.
            self._stopping.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), STOP_WAIT_S)
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
            stopping=self._stopping,
        )  # fmt: skip

    async def _handle(self, msg: Any) -> None:
        try:
            command = ApprovalCommand.model_validate_json(msg.data)
        except ValidationError as exc:
            await self._unreadable(msg, exc)
            return
        assert self._client is not None
        assert self._cache is not None
        record = command.approval
        deliveries, seq = delivery_of(msg)
        tries = self._attempts.seen(seq, deliveries)
        given_up_as = None
        try:
            outcome = await run_approved(
                self._client, record, self._cache, lambda: self._attempts.sending(tries, record.id)
            )
        except TransientError as exc:  # the API is away: it is waited for, however long
            await self._later(msg, record.id, exc, RETRY_DELAY_S)
            return
        except Exception as exc:  # a reply that cannot be read, or a bug: the same call may well fail again
            tries.failures += 1
            if tries.failures < self.deps.settings.max_deliver:
                await self._later(msg, record.id, exc, backoff_for(self.deps.settings, tries.failures))
                return
            unsent = self._attempts.surely_unsent(tries, record.id)
            outcome, given_up_as = given_up(record, exc, tries.failures, sent=not unsent), _kind(exc)
        if await self._report(msg, record.id, outcome, given_up_as):
            await msg.ack()
            self._attempts.done(seq)
            log.info("approved action run", extra={"id": record.id, "status": outcome.status})

    async def _report(
        self, msg: Any, approval_id: str, outcome: ApprovalOutcome, given_up_as: str | None = None
    ) -> bool:
        """Publish the result (False: not published, the command is redelivered later); `given_up_as`:
        the reason a `failed` one is counted under, once it is out."""
        try:
            await self.nc.jetstream().publish(
                self.subjects.approvals_outcome,
                # Without `reason` when there is none: a history service of the release before reads
                # every result but a failure (rolling upgrades).
                outcome.model_dump_json(exclude_none=True).encode(),
                stream=self.subjects.stream,
                headers={MSG_ID_HEADER: f"{approval_id}:outcome"},
            )
        except Exception as exc:  # the bus: redelivered later (the call again, under the same key)
            await self._later(msg, approval_id, exc, RETRY_DELAY_S)
            return False
        if given_up_as is not None:
            GIVEN_UP.labels(given_up_as).inc()
            log.error("approved action given up", extra={"id": approval_id, "reason": outcome.reason or ""})
        return True

    async def _later(self, msg: Any, approval_id: str, exc: BaseException, delay: float) -> None:
        log.warning("approved action not run yet", extra={"id": approval_id, "error": _describe(exc)})
        with contextlib.suppress(Exception):
            await msg.nak(delay=delay)

    async def _unreadable(self, msg: Any, exc: ValidationError) -> None:
        """A command this process cannot read will not read better when redelivered. One that only
        carries fields this release does not know is a later release's (a rolling upgrade): terminated
        without a result, so that the history service's sweep hands the approval over again, to an
        upgraded executor. Any other that names its approval closes it as failed (the customer and the
        agents are told; the sweep would otherwise hand it over again every duplicate window); the rest
        are terminated."""
        approval_id = named_approval(msg.data)
        newer = from_a_later_release(exc)
        if approval_id is None or newer:
            GIVEN_UP.labels(NEWER_COMMAND if newer else INVALID_COMMAND).inc()
            log.error(
                "approval command of a later release terminated"
                if newer
                else "invalid approval command terminated",
                extra={"id": approval_id or "", "error": _describe(exc)},
            )
            await msg.term()
            return
        outcome = ApprovalOutcome(
            approval_id=approval_id,
            status=FAILED,
            detail="Your request was approved, but it could not be carried out automatically; our"
            " support team will check on it.",
            reason=f"{INVALID_COMMAND}: {_describe(exc)}",
        )
        if await self._report(msg, approval_id, outcome, INVALID_COMMAND):
            await msg.term()


INVALID_COMMAND = "invalid_command"
NEWER_COMMAND = "newer_command"
UNREADABLE_REPLY = "unreadable_reply"
ERROR = "error"


def given_up(
    record: ApprovalRecord, exc: BaseException, failures: int, *, sent: bool = True
) -> ApprovalOutcome:
    """The result of an approved action that failed on its last try otherwise than by an API's
    refusal. Unless it surely failed before the mutation request was sent (`sent` False), the change
    may have been made (the API may have done it and only its answer was unreadable), so the customer
    hears that it is not confirmed, and a `failed` refund keeps counting against the order's total
    (`approvals.approved_refunds`): nothing is approved on top of it."""
    what = "cancellation" if record.action == CANCEL else "refund"
    return ApprovalOutcome(
        approval_id=record.id,
        status=FAILED,
        detail=f"Your {what} for {record.order.order_id} was approved, but we could not confirm it with"
        " our order system; our support team will check on it.",
        reason=f"{_kind(exc)}: {_describe(exc)} (failure {failures})",
        sent=None if sent else False,
    )


def from_a_later_release(exc: ValidationError) -> bool:
    """Whether a command failed validation only for fields this release does not know."""
    return all(error["type"] == "extra_forbidden" for error in exc.errors())


def named_approval(data: bytes) -> str | None:
    """The approval id an unreadable command names, if it names one."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    approval = body.get("approval") if isinstance(body, dict) else None
    found = approval.get("id") if isinstance(approval, dict) else None
    return found if isinstance(found, str) and re.fullmatch(APPROVAL_ID_PATTERN, found) else None


def _kind(exc: BaseException) -> str:
    # The commerce client raises a `PermanentError` for an answer that is not what the API promises
    # (its refusals, `ApiRejected`, are results of `run_approved`, never raised here).
    return UNREADABLE_REPLY if isinstance(exc, PermanentError) else ERROR


def _describe(exc: BaseException) -> str:
    # Log lines and the audit trail: an exception may quote what it was given (an email address, the
    # customer's words in a record that failed validation).
    if isinstance(exc, ValidationError):
        return describe_invalid(exc)[:300]
    text = str(exc) if isinstance(exc, PermanentError | TransientError) else repr(exc)
    return pseudonymise_emails(text)[:300]
