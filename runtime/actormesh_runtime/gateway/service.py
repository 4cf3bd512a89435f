"""The gateway's process-wide state and the chat flow shared by HTTP and WebSocket.

`Gateway` owns the NATS connection (connected in the background, so the process serves liveness while
NATS is still starting), the reply router, the history client and the session store. `submit` screens
the text first — nothing else sees or stores the raw message — then builds the envelope with this
instance's reply subjects and puts it on the bus; `wait` bounds the wait by REQUEST_TIMEOUT_S.
`start_chat` is the chat flow both channels use: with an `Idempotency-Key` it replays a finished
answer, joins an attempt already published, or submits under the key's derived message id
(`gateway/idempotency.py`); without one it claims the session and submits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS

from actormesh_runtime.bus.connection import open_bus
from actormesh_runtime.bus.publish import submit
from actormesh_runtime.cancellation import cancel_requested, cancel_until_done
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.envelope import Envelope, FinalResult, ReplyTo
from actormesh_runtime.gateway.auth import AuthError, Principal
from actormesh_runtime.gateway.escalation_feed import EscalationFeed
from actormesh_runtime.gateway.idempotency import (
    HEADER,
    RECORD_TTL_S,
    IdempotencyConflict,
    IdempotencyRecord,
    idempotent_message_id,
    idempotent_session_id,
    request_fingerprint,
)
from actormesh_runtime.gateway.models import ChatRequest, new_session_id
from actormesh_runtime.gateway.reply_router import Pending, ProgressListener, ReplyRouter
from actormesh_runtime.history.protocol import HistoryClient
from actormesh_runtime.ids import random_hex
from actormesh_runtime.observability import tracing
from actormesh_runtime.screening import screen
from actormesh_runtime.settings import RuntimeSettings
from actormesh_runtime.storage.session import SessionStore, open_session_store

log = logging.getLogger(__name__)

RECONNECT_PAUSE_S = 1.0
HISTORY_CHECK_S = 5.0
STOP_WRITES_S = 2.0
"""How long `stop` lets idempotency records still being written finish before the store closes."""
FINISHED_LOOKUP_S = 3.0
"""At most this long asking the history store for a keyed chat's stored answer before it is published
or joined: the history client's own timeout, set here too so that nothing below it can hold the
request longer (a store slower than this counts as having no answer: docs/gateway.md, the bounds)."""


class Unavailable(Exception):
    """The bus cannot take the message right now (HTTP 503)."""


@dataclass
class Submitted:
    """A chat on the bus that this request waits for (submitted by it, or by an earlier attempt)."""

    message_id: str
    session_id: str
    pending: Pending
    duplicate: bool = False
    """The stream had this message id already: an earlier attempt published it."""
    started_at: float | None = None
    """When `start_chat` began (loop time): `wait`'s REQUEST_TIMEOUT_S counts from there, so the
    look-ups before the publish are inside it (None: from when `wait` is called)."""


def new_instance_id() -> str:
    return f"gw-{random_hex(12)}"


class Gateway:
    """Everything one gateway process shares between requests. `start()` returns at once."""

    def __init__(
        self, settings: RuntimeSettings, *, nc: NATS | None = None, instance_id: str | None = None
    ) -> None:
        self.settings = settings
        self.subjects = Subjects(settings.mesh_name)
        self.instance_id = instance_id or settings.gateway_instance_id or new_instance_id()
        self.replies = ReplyRouter(self.subjects, self.instance_id)
        self.escalation_feed = EscalationFeed(self.subjects)
        self.sessions: SessionStore = open_session_store(settings)
        self._nc = nc
        self._owns_nc = nc is None
        self._ready = asyncio.Event()
        self._stream_ok = False
        self._connector: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        """Idempotency records being written for requests that may have left (`_start_keyed`)."""
        self.history: HistoryClient | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_forever(), name="gateway-connect")

    async def wait_ready(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=timeout_s)
        return self._ready.is_set()

    async def stop(self) -> None:
        if self._connector is not None:
            await cancel_until_done(self._connector)  # nats-py's connect may lose one cancel
        if self._writes:  # each is bounded by the store's own timeouts; the sessions close below
            await asyncio.wait(set(self._writes), timeout=STOP_WRITES_S)
        await self.replies.stop()
        await self.escalation_feed.stop()
        if self._owns_nc and self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()
        self._nc = None
        await self.sessions.close()

    async def _connect_forever(self) -> None:
        """Connect, provision the streams and subscribe to replies; retry until it works."""
        while True:
            try:
                name = f"actormesh-gateway-{self.instance_id}"
                self._nc = await open_bus(self.settings, name=name, nc=self._nc)
                self._stream_ok = True
                await self.replies.start(self._nc)
                await self.escalation_feed.start(self._nc)
                self.history = HistoryClient(self._nc, self.subjects)
                self._ready.set()
                log.info("gateway connected", extra={"instance_id": self.instance_id})
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if cancel_requested():  # stop()'s cancel turned into an error below us: end, don't retry
                    raise asyncio.CancelledError from exc
                log.warning("gateway not connected yet", extra={"error": repr(exc)})
                if self._owns_nc and self._nc is not None and not self._nc.is_connected:
                    with contextlib.suppress(Exception):
                        await self._nc.close()
                    self._nc = None
                await asyncio.sleep(RECONNECT_PAUSE_S)

    async def readiness(self) -> dict[str, bool]:
        """Dependency → ok. The stream is checked live, so a deleted stream shows up."""
        nats_ok = self._nc is not None and self._nc.is_connected and self._ready.is_set()
        stream_ok = False
        if nats_ok and self._nc is not None:
            try:
                await self._nc.jetstream().stream_info(self.subjects.stream)
                stream_ok = True
            except Exception:
                stream_ok = False
        return {"nats": nats_ok, "stream": stream_ok}

    # ------------------------------------------------------------ chat

    async def claim_session(
        self, principal: Principal, request: ChatRequest, default_session_id: str | None = None
    ) -> str:
        """The session id to use; with auth on, a session already owned by another customer is refused.

        With auth on, ownership is claimed in the history store (durable, shared by every replica, never
        evicted) and a store that does not answer refuses the chat (`HistoryUnavailable`, 503): a check
        that cannot be made is never skipped. In anonymous mode anyone may act as anyone, so the
        session state is only kept in the session store (Redis or in-process), as a hint.
        """
        session_id = request.session_id or default_session_id or new_session_id()
        if principal.email is not None:
            owner = await self.history_client().claim(session_id, request.customer_email)
            if owner != request.customer_email:
                raise AuthError(403, "session_id belongs to another customer")
            return session_id
        state = await self.sessions.get(session_id)
        if not state:
            await self.sessions.set(session_id, {"customer_email": request.customer_email})
        return session_id

    async def start_chat(
        self,
        principal: Principal,
        request: ChatRequest,
        idempotency_key: str | None = None,
        *,
        session_as_sent: str | None,
        key_field: str = HEADER,
        on_progress: ProgressListener | None = None,
    ) -> Submitted | FinalResult:
        """The chat flow of HTTP and WebSocket: a `Submitted` to `wait` for, or, for a key whose chat
        already finished, its `FinalResult` (a replay). `session_as_sent` is the session id the client
        named (None: none), which the key's fingerprint covers.

        With a key the message id is derived from it. A record of the key with another request's
        fingerprint → `IdempotencyConflict`. A record (the chat is in the stream) → wait for that
        chat, never publish again: the reply goes to the replica that published it, and `wait`'s
        history checks answer any other one. No record → submit; a publish an earlier attempt made
        but never recorded is dropped by JetStream's duplicate window. The record is written only once
        the publish is acked, and the session store failing never fails the chat.
        """
        started_at = asyncio.get_running_loop().time()
        if idempotency_key is None:
            session_id = await self.claim_session(principal, request)
            submitted = await self.submit(request, session_id, on_progress=on_progress)
        else:
            outcome = await self._start_keyed(
                principal, request, idempotency_key, session_as_sent, key_field, on_progress
            )
            if isinstance(outcome, FinalResult):
                return outcome
            submitted = outcome
        submitted.started_at = started_at
        return submitted

    async def _start_keyed(
        self,
        principal: Principal,
        request: ChatRequest,
        idempotency_key: str,
        session_as_sent: str | None,
        key_field: str,
        on_progress: ProgressListener | None,
    ) -> Submitted | FinalResult:
        message_id = idempotent_message_id(request.customer_email, idempotency_key)
        fingerprint = request_fingerprint(request, session_as_sent)
        record = await self._keyed_record(message_id)
        if record is not None and record.fingerprint != fingerprint:
            raise IdempotencyConflict(key_field)
        finished = await self._finished_result(message_id, request.customer_email)
        if finished is not None:
            return finished
        if record is not None:
            return self._join(message_id, request.customer_email, record.session_id, on_progress)
        # Without a session id every attempt derives the same one: two attempts racing past the record
        # check then publish one envelope (JetStream keeps the first) and report its session.
        derived = idempotent_session_id(message_id, self.settings.jwt_secret)
        session_id = await self.claim_session(principal, request, derived)
        submitted = await self.submit(request, session_id, message_id=message_id, on_progress=on_progress)
        now = datetime.now(UTC)
        record = IdempotencyRecord(fingerprint=fingerprint, session_id=session_id, submitted_at=now)
        # Also after a duplicate publish (an attempt whose record was lost, or this attempt's own publish
        # retried): the record is what keeps later retries from publishing at all; but then only where
        # none is, so a racing attempt from another session cannot replace the first one's. Its own
        # task, kept until done, so a client leaving now does not cut the write short.
        write = asyncio.create_task(self._record_key(message_id, record, only_if_absent=submitted.duplicate))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        try:
            await asyncio.shield(write)
        except BaseException:
            self._release(submitted, on_progress)
            raise
        return submitted

    def _release(self, submitted: Submitted, on_progress: ProgressListener | None) -> None:
        """Give up a submitted chat's wait before it began (its request was cancelled)."""
        self.replies.abandon(submitted.pending)
        if on_progress is not None:
            self.replies.unlisten(submitted.message_id, on_progress)

    def _join(
        self, message_id: str, customer_email: str, session_id: str, on_progress: ProgressListener | None
    ) -> Submitted:
        """Wait for a chat an earlier attempt put on the bus (an in-flight retry waits for the same
        answer rather than getting 409: it is what a client whose connection dropped needs)."""
        pending = self.replies.expect(message_id, customer_email)
        if on_progress is not None:
            self.replies.listen(message_id, on_progress)
        log.info("joined an earlier attempt", extra={"message_id": message_id, "session_id": session_id})
        return Submitted(message_id, session_id, pending, duplicate=True)

    async def _keyed_record(self, message_id: str) -> IdempotencyRecord | None:
        try:
            found = await self.sessions.get_keyed(message_id)
            return IdempotencyRecord.model_validate(found) if found is not None else None
        except Exception as exc:  # the key's record is an optimisation over JetStream's de-duplication
            log.warning("idempotency record not read", extra={"message_id": message_id, "error": repr(exc)})
            return None

    async def _record_key(self, message_id: str, record: IdempotencyRecord, *, only_if_absent: bool) -> None:
        try:
            if only_if_absent and await self.sessions.get_keyed(message_id) is not None:
                return
            await self.sessions.set_keyed(message_id, record.model_dump(mode="json"), RECORD_TTL_S)
        except Exception as exc:
            log.warning("idempotency record not kept", extra={"message_id": message_id, "error": repr(exc)})

    async def _finished_result(self, message_id: str, customer_email: str) -> FinalResult | None:
        """The keyed chat's stored answer, if it has one. History not answering counts as no answer:
        what follows is safe without it while the key's record lives or within the duplicate window
        (past both, a retry may start the chat again: docs/gateway.md, the bounds)."""
        try:
            async with asyncio.timeout(FINISHED_LOOKUP_S):
                found = await self.find_result(message_id)
        except Exception as exc:  # TimeoutError included: the wait asks the store again
            log.warning("stored result not checked", extra={"message_id": message_id, "error": repr(exc)})
            return None
        if found is None or found[1] != customer_email:
            return None
        tracing.annotate({"actormesh.message_id": message_id, "actormesh.result_source": "replayed"})
        return found[0]

    async def submit(
        self,
        request: ChatRequest,
        session_id: str,
        *,
        message_id: str | None = None,
        on_progress: ProgressListener | None = None,
    ) -> Submitted:
        if self._nc is None or not self._ready.is_set() or not self._nc.is_connected:
            raise Unavailable("not connected to NATS")
        text, screening = screen(request.message)
        reply = ReplyTo(
            result_subject=self.replies.result_subject,
            progress_subject=self.replies.progress_subject if on_progress is not None else None,
        )
        trace = tracing.current()  # the request's span: every hop of this conversation is in its trace
        envelope = Envelope.start(
            session_id=session_id,
            customer_email=request.customer_email,
            message=text,
            screening=screening,
            budget_s=self.settings.conversation_deadline_s,
            reply=reply,
            message_id=message_id,
            traceparent=trace.traceparent if trace is not None else None,
            tracestate=trace.tracestate if trace is not None else None,
        )
        tracing.annotate({"actormesh.message_id": envelope.message_id, "actormesh.session_id": session_id})
        pending = self.replies.expect(envelope.message_id, request.customer_email)
        if on_progress is not None:
            self.replies.listen(envelope.message_id, on_progress)
        try:
            ack = await submit(self._nc.jetstream(), self.subjects, envelope)
        except BaseException as exc:  # cancelled included (a WebSocket closed): nothing may stay pending
            if on_progress is not None:
                self.replies.unlisten(envelope.message_id, on_progress)
            if isinstance(exc, Exception):
                self.replies.forget(pending)
                raise Unavailable(f"could not publish: {type(exc).__name__}") from exc
            # Cancelled while the acknowledgement was awaited: the envelope may be in the stream, so
            # its result is kept for `GET /api/messages/{id}` as for any request that left.
            self.replies.abandon(pending)
            raise
        extra = {"message_id": envelope.message_id, "session_id": session_id, "duplicate": ack.duplicate}
        log.info("submitted", extra=extra)
        return Submitted(envelope.message_id, session_id, pending, duplicate=bool(ack.duplicate))

    async def wait(self, submitted: Submitted) -> FinalResult:
        """The result within REQUEST_TIMEOUT_S, else `TimeoutError` (the result is kept when it comes).

        Every `HISTORY_CHECK_S` without a reply it also asks the history store: a result published
        while this replica was reconnecting to NATS reached nobody (results are core NATS), but the
        aggregator's history event is in JetStream and gets stored (found by `make soak`); and a
        redelivered last step that cannot learn what the first run stored sends no reply at all
        (`actors.response_aggregator`): this check answers with the stored turn.
        """
        loop = asyncio.get_running_loop()
        started = loop.time() if submitted.started_at is None else submitted.started_at
        deadline = started + self.settings.request_timeout_s
        pending = submitted.pending
        try:
            while deadline - loop.time() > HISTORY_CHECK_S:
                done, _ = await asyncio.wait({pending.future}, timeout=HISTORY_CHECK_S)
                if done:
                    break
                stored = await self._stored_result(pending.message_id, deadline - loop.time())
                if stored is not None:
                    self.replies.forget(pending)
                    tracing.annotate({"actormesh.result_source": "history"})
                    return stored
        except BaseException:  # cancelled: the caller left (a WebSocket closed mid-chat)
            self.replies.abandon(pending)
            raise
        try:
            result = await self.replies.wait(pending, max(0.0, deadline - loop.time()))
        except TimeoutError:
            tracing.annotate({"actormesh.result_source": "none (timeout)"})
            raise
        tracing.annotate({"actormesh.result_source": "reply"})
        return result

    async def _stored_result(self, message_id: str, budget_s: float) -> FinalResult | None:
        """The stored result, asked for within what is left of the request's time (the history
        client's own timeout could otherwise carry the wait past REQUEST_TIMEOUT_S)."""
        if self.history is None:
            return None
        try:
            async with asyncio.timeout(budget_s):
                found = await self.history.result(message_id)
        except Exception:  # history unavailable or too slow: the reply may still come
            return None
        return found[0] if found is not None else None

    # ------------------------------------------------------------ reads

    async def find_result(self, message_id: str) -> tuple[FinalResult, str] | None:
        """A finished result from this replica's late results, else from the history store."""
        late = self.replies.late_result(message_id)
        if late is not None:
            return late
        if self.history is None:
            raise Unavailable("not connected to NATS")
        return await self.history.result(message_id)

    def history_client(self) -> HistoryClient:
        if self.history is None:
            raise Unavailable("not connected to NATS")
        return self.history

    def describe(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "mesh": self.subjects.mesh,
            "in_flight": self.replies.in_flight,
        }
